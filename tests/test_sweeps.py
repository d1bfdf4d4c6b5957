"""Sweeps: definitions, sharding, claims, the runner, aggregation, and a tiny
sweep end to end (two processes, a kill, a SIGTERM, aggregation)."""

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time

from absl.testing import absltest
import chex
import jax
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from experiments.sweeps import common
from experiments.sweeps import cpu_comparison
from experiments.sweeps import dlib_study
from experiments.sweeps import factorvae_study
from factorvae_jax import sweeps
from factorvae_jax.builder.trained_model import load_trained_model
from factorvae_jax.sweeps import aggregate
from factorvae_jax.sweeps import claims
from factorvae_jax.sweeps import figures
from factorvae_jax.sweeps import runner
from factorvae_jax.sweeps import sharding
from factorvae_jax.sweeps import snapshot
from factorvae_jax.sweeps import status
from factorvae_jax.utils import run_dir
from factorvae_jax.training import preemption
from factorvae_jax.utils.files import write_json_atomically
from tests import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY = os.path.join(REPO, "experiments", "sweeps", "factorvae_study.py")
TEST_SWEEP = STUDY + ":test"


def _test_runs():
  return sweeps.expand(sweeps.load_sweep(TEST_SWEEP))


class DefinitionTest(absltest.TestCase):

  def test_factorvae_study_is_kim_and_mnih_grid(self):
    runs = sweeps.expand(factorvae_study.get_sweep())
    self.assertLen(runs, 2 * 6 * 10)
    gammas = sorted({r.hparams["gamma"] for r in runs
                     if r.model == "factor_vae"})
    betas = sorted({r.hparams["beta"] for r in runs if r.model == "beta_vae"})
    self.assertEqual(gammas, [10, 20, 30, 40, 50, 100])
    self.assertEqual(betas, [1, 2, 4, 6, 8, 16])
    run = runs[13]
    self.assertEqual(run.name, "factor_vae/gamma=20/seed=3")
    self.assertEqual(run.config.model.gamma, 20.0)
    self.assertEqual(run.config.seed, 3)
    self.assertEqual(run.config.num_steps, 300_000)

  def test_dlib_study_grids_and_seed_count(self):
    self.assertEqual(dlib_study.study_grids(), {
        "beta_vae": {"beta": [1, 2, 4, 6, 8, 16]},
        "annealed_vae": {"c_max": [5, 10, 25, 50, 75, 100]},
        "factor_vae": {"gamma": [10, 20, 30, 40, 50, 100]},
        "dip_vae_i": {"lambda_od": [1, 2, 5, 10, 20, 50]},
        "dip_vae_ii": {"lambda_od": [1, 2, 5, 10, 20, 50]},
        "beta_tcvae": {"beta": [1, 2, 4, 6, 8, 10]},
    })
    runs = sweeps.expand(dlib_study.get_sweep())
    self.assertLen(runs, 6 * 6 * 50)
    self.assertLen(sweeps.expand(dlib_study.get_sweep("seeds=3")), 6 * 6 * 3)
    fvae = next(r for r in runs if r.model == "factor_vae")
    self.assertEqual(fvae.config.model.architecture, "dlib")
    self.assertFalse(fvae.config.model.second_batch)
    annealed = next(r for r in runs if r.model == "annealed_vae")
    self.assertEqual(annealed.config.model.gamma, 1000.0)

  def test_study_on_another_dataset_and_its_files(self):
    runs = sweeps.expand(dlib_study.get_sweep(
        "test,seeds=1,dataset=shapes3d,data_path=/data/3dshapes.h5"))
    self.assertLen(runs, 12)
    for run in runs:
      self.assertEqual(run.config.data.name, "shapes3d")
      self.assertEqual(run.config.data.source, "h5")
      self.assertEqual(run.config.data.path, "/data/3dshapes.h5")
      self.assertEqual(run.config.model.architecture, "dlib")
    default = sweeps.expand(dlib_study.get_sweep("test,seeds=1"))
    self.assertEqual({r.config.data.name for r in default}, {"dsprites"})
    with self.assertRaisesRegex(ValueError, "shapes3d"):
      dlib_study.get_sweep("test,dataset=shapes_3d")
    with self.assertRaisesRegex(ValueError, "once"):
      dlib_study.get_sweep("test,dataset=cars3d,dataset=smallnorb")
    self.assertEqual(
        [r.config.num_steps for r in sweeps.expand(
            cpu_comparison.get_sweep("steps=700,seeds=1"))], [700] * 3)

  def test_test_variant_and_arguments(self):
    runs = _test_runs()
    self.assertLen(runs, 2 * 2 * 2)
    self.assertEqual([r.index for r in runs], list(range(8)))
    self.assertLen({r.name for r in runs}, 8)
    self.assertLen(sweeps.expand(sweeps.load_sweep(STUDY + ":test,seeds=3")),
                   12)
    self.assertLen(sweeps.expand(sweeps.load_sweep(STUDY + ":quick,seeds=1")),
                   12)
    for bad in ("fast", "seeds=0", "seeds=x"):
      with self.assertRaisesRegex(ValueError, "seeds=|variant"):
        sweeps.load_sweep(f"{STUDY}:{bad}")
    with self.assertRaisesRegex(FileNotFoundError, "does not exist"):
      sweeps.load_sweep("experiments/sweeps/nope.py")

  def test_bad_override_and_repeated_run_are_refused(self):
    config = factorvae_study.get_sweep("test").grids[0].config
    with self.assertRaisesRegex(ValueError, "'gama'.*gamma"):
      sweeps.expand(sweeps.Sweep("s", [sweeps.Grid(config,
                                                   [{"model.gama": 1.0}])]))
    with config.unlocked():
      config.final_eval = False
    with self.assertRaisesRegex(ValueError, "final_eval=True"):
      sweeps.expand(sweeps.Sweep("s", [sweeps.Grid(config, [{"seed": 0}])]))
    with config.unlocked():
      config.final_eval = True
    with self.assertRaisesRegex(ValueError, "both 'factor_vae/gamma=1/seed=0'"):
      sweeps.expand(sweeps.Sweep("s", [sweeps.product(config, {"gamma": [1, 1]},
                                                      [0])]))


class ShardingTest(absltest.TestCase):

  def test_shares_partition_the_runs(self):
    items = list(range(11))
    shares = [sharding.shard(items, i, 3) for i in range(3)]
    self.assertEqual(sorted(sum(shares, [])), items)
    self.assertEqual(shares[1], [1, 4, 7, 10])

  def test_task_from_scheduler_environment(self):
    slurm = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1",
             "SLURM_ARRAY_TASK_MAX": "8"}
    self.assertEqual(sharding.resolve_task(None, None, slurm), (4, 8))
    slurm["SLURM_ARRAY_TASK_COUNT"] = "8"
    self.assertEqual(sharding.resolve_task(None, None, slurm), (4, 8))
    k8s = {"JOB_COMPLETION_INDEX": "2", "NUM_TASKS": "4"}
    self.assertEqual(sharding.resolve_task(None, None, k8s), (2, 4))
    self.assertEqual(sharding.resolve_task(1, 3, k8s), (1, 3))  # Flags win.
    self.assertEqual(sharding.resolve_task(None, None, {}), (0, 1))
    with self.assertRaisesRegex(ValueError, "NUM_TASKS"):
      sharding.resolve_task(None, None, {"JOB_COMPLETION_INDEX": "0"})
    with self.assertRaisesRegex(ValueError, r"not in \[0, 2\)"):
      sharding.resolve_task(2, 2, {})
    with self.assertRaisesRegex(ValueError, "both be given"):
      sharding.resolve_task(0, None, {})


class ClaimTest(absltest.TestCase):

  def test_claim_is_exclusive_until_released(self):
    workdir = self.create_tempdir().full_path
    claim = claims.try_claim(workdir, task=3)
    self.assertIsNotNone(claim)
    self.assertIsNone(claims.try_claim(workdir))
    self.assertEqual(claims.read_claim(workdir)["task"], 3)
    claim.release()
    self.assertIsNone(claims.read_claim(workdir))
    again = claims.try_claim(workdir)
    self.assertIsNotNone(again)
    again.release()

  def test_claim_of_a_dead_process_is_taken_over(self):
    workdir = self.create_tempdir().full_path
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with open(claims.claim_path(workdir, 0), "w") as f:
      json.dump({**claims.owner_identity(), "pid": dead.pid,
                 "pid_start": None, "token": "old"}, f)
    claim = claims.try_claim(workdir)
    self.assertIsNotNone(claim)
    self.assertNotEqual(claims.read_claim(workdir)["token"], "old")
    claim.release()

  def test_claim_without_heartbeat_is_taken_over(self):
    workdir = self.create_tempdir().full_path
    path = claims.claim_path(workdir, 0)
    with open(path, "w") as f:  # A live-looking claim from another machine.
      json.dump({"host": "elsewhere", "pid": 1, "token": "old"}, f)
    self.assertIsNone(claims.try_claim(workdir, timeout_s=60, heartbeat_s=1))
    old = time.time() - 120
    os.utime(path, (old, old))
    claim = claims.try_claim(workdir, timeout_s=60, heartbeat_s=1)
    self.assertIsNotNone(claim)
    claim.release()

  def test_heartbeat_keeps_a_claim_fresh(self):
    workdir = self.create_tempdir().full_path
    claim = claims.try_claim(workdir, timeout_s=1.0, heartbeat_s=0.1)
    time.sleep(1.5)
    self.assertIsNone(claims.try_claim(workdir, timeout_s=1.0,
                                       heartbeat_s=0.1))
    claim.release()

  def test_one_winner_when_many_take_over_a_stale_claim(self):
    workdir = self.create_tempdir().full_path
    with open(claims.claim_path(workdir, 0), "w") as f:
      json.dump({"host": "elsewhere", "pid": 1, "token": "old"}, f)
    old = time.time() - 1000
    os.utime(claims.claim_path(workdir, 0), (old, old))
    won, barrier = [], threading.Barrier(8)

    def contend():
      barrier.wait()
      claim = claims.try_claim(workdir, timeout_s=60, heartbeat_s=1)
      if claim is not None:
        won.append(claim)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    self.assertLen(won, 1)
    won[0].release()


class SnapshotTest(absltest.TestCase):

  def test_changed_definition_is_refused_with_the_fix(self):
    sweep_dir = self.create_tempdir().full_path
    runs = _test_runs()
    snapshot.check_and_write(sweep_dir, TEST_SWEEP, runs)
    snapshot.check_and_write(sweep_dir, TEST_SWEEP, runs)  # Same: fine.
    more = sweeps.expand(sweeps.load_sweep(STUDY + ":test,seeds=3"))
    with self.assertRaisesRegex(snapshot.SweepChangedError,
                                "4 run.s. added.*--update_sweep"):
      snapshot.check_and_write(sweep_dir, STUDY + ":test,seeds=3", more)
    snapshot.check_and_write(sweep_dir, STUDY + ":test,seeds=3", more,
                             update=True)
    self.assertLen(snapshot.read_snapshot(sweep_dir)["runs"], 12)
    # A config field added to the code since the snapshot is no edit.
    stored = snapshot.read_snapshot(sweep_dir)
    for record in stored["runs"]:
      del record["config"]["optim"]["adam_eps"]
    write_json_atomically(snapshot.snapshot_path(sweep_dir), stored)
    snapshot.check_and_write(sweep_dir, STUDY + ":test,seeds=3", more)
    config = more[0].config
    with config.unlocked():
      config.optim.vae_learning_rate = 1.0
    with self.assertRaisesRegex(snapshot.SweepChangedError,
                                "vae_learning_rate.*new --sweep_dir"):
      snapshot.check_and_write(sweep_dir, "edited", more, update=True)


def _fake_done(workdir, step=20, scores=None, history=True):
  """Writes the files a finished run leaves, without training."""
  os.makedirs(os.path.join(workdir, "checkpoints", str(step)), exist_ok=True)
  with open(os.path.join(workdir, "metrics.jsonl"), "w") as f:
    for s in (10, 20):
      f.write(json.dumps({"step": s, "reconstruction": 100.0 - s,
                          "kl": s / 10, "tc_estimate": 0.5}) + "\n")
      if history:
        f.write(json.dumps({"step": s, "eval/mig": s / 100,
                            "eval/factor_vae/eval_accuracy": s / 50}) + "\n")
    f.write('{"step": 20, "recon')  # Cut short by a kill.
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"scores": scores, "checkpoint_step": step, "seconds": 1.5}, f)


class RunnerTest(absltest.TestCase):
  """The runner with a fake trainer (no JAX): skipping, claims, failures."""

  def setUp(self):
    super().setUp()
    self.sweep_dir = self.create_tempdir().full_path
    self.runs = _test_runs()
    self.groups = []

  def _trainer(self, fail=(), interrupt=()):
    def train(runs, sweep_dir):
      self.groups.append([r.name for r in runs])
      for run in runs:
        self.assertEqual(claims.read_claim(run.workdir(sweep_dir))["pid"],
                         os.getpid())
        if run.index in interrupt:
          raise KeyboardInterrupt("SIGTERM")
        if run.index in fail:
          raise FloatingPointError("diverged")
        _fake_done(run.workdir(sweep_dir), scores={"mig": 0.1})
    return train

  def test_trains_share_once_and_skips_done_and_claimed(self):
    held = claims.try_claim(self.runs[2].workdir(self.sweep_dir))
    summary = runner.run_share(self.runs, self.sweep_dir, 0, 2,
                               train_group=self._trainer())
    held.release()
    self.assertEqual(summary.trained, [self.runs[i].name for i in (0, 4, 6)])
    self.assertEqual(summary.claimed_elsewhere, [self.runs[2].name])
    summary = runner.run_share(self.runs, self.sweep_dir, 0, 2,
                               train_group=self._trainer())
    self.assertEqual(summary.trained, [self.runs[2].name])
    self.assertLen(summary.already_done, 3)
    events = run_dir.read_run_log(self.runs[0].workdir(self.sweep_dir))
    self.assertEqual([e["event"] for e in events], ["start", "done"])
    self.assertIsNone(claims.read_claim(self.runs[0].workdir(self.sweep_dir)))

  def test_failure_is_recorded_and_others_continue(self):
    summary = runner.run_share(self.runs, self.sweep_dir,
                               train_group=self._trainer(fail=(1,)))
    self.assertEqual(summary.failed, [self.runs[1].name])
    self.assertLen(summary.trained, 7)
    run_status = status.run_status(self.runs[1].workdir(self.sweep_dir))
    self.assertEqual(run_status.state, status.FAILED)
    self.assertIn("diverged", str(run_status))
    summary = runner.run_share(self.runs, self.sweep_dir,
                               train_group=self._trainer())
    self.assertEqual(summary.skipped_failed, [self.runs[1].name])
    summary = runner.run_share(self.runs, self.sweep_dir, retry_failed=True,
                               train_group=self._trainer())
    self.assertEqual(summary.trained, [self.runs[1].name])

  def test_interrupt_releases_claims_and_logs(self):
    with self.assertRaises(KeyboardInterrupt):
      runner.run_share(self.runs, self.sweep_dir, runs_per_group=2,
                       train_group=self._trainer(interrupt=(2,)))
    for run in self.runs[:4]:
      self.assertIsNone(claims.read_claim(run.workdir(self.sweep_dir)))
    events = run_dir.read_run_log(self.runs[2].workdir(self.sweep_dir))
    self.assertEqual([e["event"] for e in events], ["start", "interrupted"])

  def test_stop_between_runs_claims_nothing_more(self):
    stop_after = {"groups": 1}

    def should_stop():
      return len(self.groups) >= stop_after["groups"]

    with self.assertRaises(KeyboardInterrupt):
      runner.run_share(self.runs, self.sweep_dir, runs_per_group=2,
                       train_group=self._trainer(), should_stop=should_stop)
    self.assertEqual(self.groups, [[self.runs[0].name, self.runs[1].name]])
    for run in self.runs:
      self.assertIsNone(claims.read_claim(run.workdir(self.sweep_dir)))
    self.assertEqual(status.run_status(self.runs[2].workdir(
        self.sweep_dir)).state, status.NEW)

  def test_trainer_returning_without_results_marks_the_run_failed(self):
    def train(runs, sweep_dir):
      for run in runs:
        if run.index != 3:
          _fake_done(run.workdir(sweep_dir), scores={})
    summary = runner.run_share(self.runs, self.sweep_dir, runs_per_group=4,
                               train_group=train)
    self.assertEqual(summary.failed, [self.runs[3].name])
    self.assertLen(summary.trained, 7)
    self.assertIn("without writing results.json",
                  str(status.run_status(self.runs[3].workdir(self.sweep_dir))))

  def test_groups_hold_runs_of_one_model(self):
    runner.run_share(self.runs, self.sweep_dir, runs_per_group=3,
                     train_group=self._trainer())
    self.assertEqual([len(g) for g in self.groups], [3, 1, 3, 1])
    for group in self.groups:
      self.assertLen({name.split("/")[0] for name in group}, 1)

  def test_listing_shows_status_and_claims(self):
    _fake_done(self.runs[0].workdir(self.sweep_dir), scores={})
    os.makedirs(os.path.join(self.runs[1].workdir(self.sweep_dir),
                             "checkpoints", "10"))
    held = claims.try_claim(self.runs[1].workdir(self.sweep_dir), task=1)
    lines = status.listing(self.runs, self.sweep_dir)
    held.release()
    self.assertLen(lines, 8)
    self.assertRegex(lines[0], r"^00000 +factor_vae +gamma=10 +seed=0 +\S+"
                               r"factor_vae/gamma=10/seed=0 +done$")
    self.assertRegex(lines[1], r"partial at step 10 \(training on .*task 1")
    self.assertRegex(lines[7], r"beta_vae +beta=16 +seed=1 .* new$")


class AggregateTest(absltest.TestCase):

  def test_partial_sweep_with_a_broken_result(self):
    sweep_dir = self.create_tempdir().full_path
    runs = _test_runs()
    snapshot.check_and_write(sweep_dir, TEST_SWEEP, runs)
    for run in runs[:6]:
      _fake_done(run.workdir(sweep_dir), scores={
          "mig": 0.1 * run.seed + 0.01 * run.index,
          "factor_vae/eval_accuracy": 0.5 + 0.05 * run.index,
          "beta_vae/eval_accuracy": 0.9 - 0.05 * run.index,
          "dci/disentanglement": "NaN"})
    broken = os.path.join(runs[5].workdir(sweep_dir), "results.json")
    with open(broken, "w") as f:
      f.write('{"scores": ')
    results = aggregate.collect(sweep_dir)
    self.assertLen(results.rows, 5)
    self.assertEqual(results.broken[0][0], broken)
    self.assertEqual([m[0] for m in results.missing],
                     [runs[6].name, runs[7].name])
    self.assertIn(broken, aggregate.report(results, sweep_dir))
    path = aggregate.write_csv(results, os.path.join(sweep_dir, "r.csv"))
    with open(path) as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, 5)
    self.assertEqual(rows[1]["name"], runs[1].name)
    self.assertEqual(rows[1]["gamma"], "10.0")
    self.assertEqual(rows[1]["beta"], "")
    self.assertEqual(rows[1]["reconstruction"], "80.0")
    self.assertEqual(rows[1]["dci/disentanglement"], "nan")
    # Mean and sample std over seeds per model and value; a column with no
    # finite value (DCI here) is left out.
    columns, summary = aggregate.summarise(results)
    self.assertNotIn("dci/disentanglement", columns)
    self.assertEqual([(r["model"], r["hparams"], r["seeds"]) for r in summary],
                     [("factor_vae", "gamma=10", 2),
                      ("factor_vae", "gamma=100", 2), ("beta_vae", "beta=1", 1)])
    spread = (2 * 0.055 ** 2) ** 0.5  # Two values 0.11 apart.
    np.testing.assert_allclose(summary[0]["mig"], (0.055, spread))
    np.testing.assert_allclose(summary[1]["mig"], (0.075, spread))
    self.assertAlmostEqual(summary[2]["mig"][0], 0.04)
    self.assertTrue(np.isnan(summary[2]["mig"][1]))
    text = _read(aggregate.write_summary(results, os.path.join(sweep_dir,
                                                                "s.md")))
    self.assertIn("| factor_vae | gamma=10 | 2 | 80 ± 0 |", text)
    self.assertIn("| beta_vae | beta=1 | 1 | 80 |", text)
    written, skipped = figures.write_figures(results, sweep_dir)
    # The four figures plus the rank correlation of every metric; no run
    # has been scored with UDR (python -m experiments.udr) yet.
    self.assertLen(written, 5)
    self.assertLen(skipped, 1)
    self.assertIn("udr_vs_supervised.png", skipped[0])
    for figure in written:
      self.assertGreater(os.path.getsize(figure), 5000, figure)

  def test_not_a_sweep_dir(self):
    with self.assertRaisesRegex(FileNotFoundError, "not a sweep dir"):
      aggregate.collect(self.create_tempdir().full_path)


# --- End to end: real training in subprocesses. -----------------------------


@pytest.mark.slow
class PackedSweepTest(absltest.TestCase):
  """The sweep's packed trainer: each run as if trained alone."""

  def test_packed_runs_equal_solo_runs_and_a_diverged_run_fails_alone(self):
    from factorvae_jax.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
    base = common.for_variant(factorvae_dsprites.get_config("test"), "test")
    # gamma = NaN makes that model's loss NaN from the first step.
    runs = sweeps.expand(sweeps.Sweep(name="packed", grids=[sweeps.product(
        base, {"gamma": [10.0, 100.0, float("nan")]}, [0])]))
    sweep_dir = self.create_tempdir().full_path
    summary = runner.run_share(runs, sweep_dir, runs_per_group=3,
                               train_group=runner.make_packed_trainer("map"))
    self.assertEqual(summary.trained, [runs[0].name, runs[1].name])
    self.assertEqual(summary.failed, [runs[2].name])
    diverged = status.run_status(runs[2].workdir(sweep_dir))
    self.assertIn("diverged", str(diverged))
    self.assertIn("gamma=nan", runs[2].name)

    solo_dir = self.create_tempdir().full_path
    train_and_evaluate(runs[1].config, solo_dir)
    packed_model = load_trained_model(runs[1].workdir(sweep_dir))
    solo_model = load_trained_model(solo_dir)
    self.assertEqual(packed_model.step, 20)
    chex.assert_trees_all_close(packed_model.vae_params,
                                solo_model.vae_params, rtol=1e-4, atol=1e-5)
    # Not vacuous: the two packed runs (other gamma, same seed) differ.
    other = load_trained_model(runs[0].workdir(sweep_dir))
    self.assertFalse(all(
        np.allclose(a, b) for a, b in zip(
            jax.tree.leaves(other.vae_params),
            jax.tree.leaves(packed_model.vae_params))))
    # Each run's files are a single run's: metrics, images, results.
    for workdir in (runs[1].workdir(sweep_dir), solo_dir):
      with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
      self.assertEqual(results["checkpoint_step"], 20)
      self.assertIn("mig", results["scores"])
      steps = [json.loads(l)["step"] for l in
               _read(os.path.join(workdir, "metrics.jsonl")).splitlines()]
      self.assertEqual(max(steps), 20)
      self.assertTrue(os.listdir(os.path.join(workdir, "images")))

  def test_unpackable_configs_are_refused_before_training(self):
    from factorvae_jax.training.packed_loop import train_and_evaluate_packed  # pylint: disable=g-import-not-at-top
    base = common.for_variant(factorvae_dsprites.get_config("test"), "test")
    other = copy.deepcopy(base)
    with other.unlocked():
      other.model.latent_dim = 5
    tmp = self.create_tempdir().full_path
    with self.assertRaisesRegex(ValueError, "cannot be packed.*separate"):
      train_and_evaluate_packed([base, other], [tmp + "/a", tmp + "/b"])
    host = copy.deepcopy(base)
    with host.unlocked():
      host.data.on_device = False
    with self.assertRaisesRegex(ValueError, "runs_per_group=1"):
      train_and_evaluate_packed([host, host], [tmp + "/c", tmp + "/d"])
    self.assertFalse(os.listdir(tmp))  # Nothing was written.

  def test_packing_groups_runs_that_differ_only_in_seed_and_weight(self):
    runs = sweeps.expand(cpu_comparison.get_sweep("test,seeds=2"))
    keys = [runner.group_key(r) for r in runs]
    by_model = {}
    for run, key in zip(runs, keys):
      by_model.setdefault(run.model, set()).add(key)
    self.assertEqual(sorted(by_model), ["beta_vae", "factor_vae", "vae"])
    self.assertTrue(all(len(v) == 1 for v in by_model.values()), by_model)
    self.assertLen(set(keys), 3)
    # Runs are ordered seed by seed, so a study cut short compares models.
    self.assertEqual([r.model for r in runs[:3]],
                     ["factor_vae", "beta_vae", "vae"])
    self.assertEqual({r.seed for r in runs[:3]}, {0})


def _sweep_command(sweep_dir, cache_dir, *flags):
  return [sys.executable, "-m", "experiments.sweep", f"--sweep={TEST_SWEEP}",
          f"--sweep_dir={sweep_dir}", f"--compilation_cache_dir={cache_dir}",
          *flags]


def _env():
  env = dict(os.environ)
  # One CPU device: the parent test process fakes four for pmap tests.
  env["XLA_FLAGS"] = conftest.SINGLE_DEVICE_XLA_FLAGS
  env["JAX_PLATFORMS"] = "cpu"
  # Cache every program, however quick to compile: a loaded machine makes
  # which ones pass JAX's 1 s default threshold vary.
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def _start(command, log_path):
  log = open(log_path, "w")
  return subprocess.Popen(command, cwd=REPO, env=_env(), stdout=log,
                          stderr=subprocess.STDOUT), log


def _wait_for_partial_run(runs, sweep_dir, process, model, timeout_s):
  """Waits until a run of ``model`` has a checkpoint >= 10 and no results.

  Stopping the tests' processes in a beta_vae run, after the factor_vae runs
  of their share, leaves both models' programs in the compilation cache for
  the processes that follow.
  """
  deadline = time.monotonic() + timeout_s
  runs = [run for run in runs if run.model == model]
  while time.monotonic() < deadline and process.poll() is None:
    for run in runs:
      workdir = run.workdir(sweep_dir)
      step = run_dir.latest_checkpoint_step(workdir)
      if (step is not None and step >= 10 and
          status.run_status(workdir).state == status.PARTIAL):
        return run
    time.sleep(0.05)
  return None


def _read(path):
  with open(path) as f:
    return f.read()


@pytest.mark.slow
class EndToEndTest(absltest.TestCase):

  @classmethod
  def setUpClass(cls):
    super().setUpClass()
    # Shared by the tests (the SIGTERM test runs first and fills it): only
    # the first run of each model compiles.
    cls.cache_dir = absltest.get_default_test_tmpdir() + "/sweep_jax_cache"

  def test_two_tasks_a_kill_a_rerun_and_aggregation(self):
    tmp = self.create_tempdir().full_path
    sweep_dir = os.path.join(tmp, "study")
    runs = _test_runs()
    listing = subprocess.run(
        _sweep_command(sweep_dir, self.cache_dir, "--list"), cwd=REPO,
        env=_env(), capture_output=True, text=True, check=True).stdout
    self.assertLen(listing.splitlines(), 8)
    self.assertTrue(all(l.endswith("new") for l in listing.splitlines()))

    # Task 0 of 2, killed with SIGKILL in the middle of a run.
    # It trains its runs two at a time, packed.
    first, log = _start(_sweep_command(sweep_dir, self.cache_dir,
                                       "--task_index=0", "--num_tasks=2",
                                       "--runs_per_group=2"),
                        os.path.join(tmp, "first.log"))
    killed = _wait_for_partial_run(runs, sweep_dir, first, "beta_vae", 600)
    first.kill()
    first.wait()
    log.close()
    self.assertIsNotNone(killed, _read(os.path.join(tmp, "first.log")))
    self.assertIn("Training 2 runs packed", _read(os.path.join(tmp,
                                                               "first.log")))
    # Its claim stays behind, held by a dead process.
    self.assertIsNotNone(claims.read_claim(killed.workdir(sweep_dir)))
    # The runs it had started and not finished (the killed run's pack).
    unfinished = {
        run.name for run in runs
        if run_dir.read_run_log(run.workdir(sweep_dir)) and
        status.run_status(run.workdir(sweep_dir)).state != status.DONE}
    self.assertIn(killed.name, unfinished)

    # Task 0 of 2 again, and at the same time a process given the whole
    # sweep (overlapping task 0's share by mistake).
    processes = [
        _start(_sweep_command(sweep_dir, self.cache_dir, "--task_index=0",
                              "--num_tasks=2", "--runs_per_group=2"),
               os.path.join(tmp, "t0.log")),
        _start(_sweep_command(sweep_dir, self.cache_dir, "--task_index=0",
                              "--num_tasks=1", "--runs_per_group=1"),
               os.path.join(tmp, "all.log")),
    ]
    for (process, log), name in zip(processes, ("t0.log", "all.log")):
      self.assertEqual(process.wait(timeout=900), 0,
                       _read(os.path.join(tmp, name)))
      log.close()

    for run in runs:
      workdir = run.workdir(sweep_dir)
      events = [e for e in run_dir.read_run_log(workdir)]
      kinds = [e["event"] for e in events]
      self.assertEqual(kinds.count("done"), 1, (run.name, events))
      if run.name in unfinished:
        # Killed during its first attempt; resumed from its checkpoint.
        self.assertEqual(kinds, ["start", "start", "done"])
        if run.name == killed.name:
          self.assertGreaterEqual(events[1]["step"], 10)
      else:
        self.assertEqual(kinds.count("start"), 1, (run.name, events))
      self.assertIsNone(claims.read_claim(workdir))
      self.assertEqual(status.run_status(workdir).state, status.DONE)

    listing = status.listing(runs, sweep_dir)
    self.assertTrue(all(l.endswith("done") for l in listing), listing)

    # Aggregation, with one run's results.json broken.
    broken = os.path.join(runs[7].workdir(sweep_dir), "results.json")
    with open(broken, "w") as f:
      f.write("{")
    out = subprocess.run(
        [sys.executable, "-m", "experiments.aggregate",
         f"--sweep_dir={sweep_dir}"], cwd=REPO, env=_env(),
        capture_output=True, text=True)
    self.assertEqual(out.returncode, 0, out.stderr)
    self.assertIn(broken, out.stdout)
    with open(os.path.join(sweep_dir, "results.csv")) as f:
      rows = list(csv.DictReader(f))
    self.assertLen(rows, 7)
    for row in rows:
      self.assertEqual(row["step"], "20")
      for column in ("mig", "factor_vae/eval_accuracy", "reconstruction",
                     "kl", "wall_time_s"):
        self.assertNotEqual(row[column], "", (column, row))
    self.assertNotEqual(rows[0]["tc_estimate"], "")  # FactorVAE logs it,
    self.assertEqual(rows[-1]["tc_estimate"], "")  # beta-VAE does not.
    self.assertIn("| beta_vae | beta=16 |",
                  _read(os.path.join(sweep_dir, "summary.md")))
    for name in ("metrics_vs_hparam", "reconstruction_vs_factor_vae",
                 "rank_correlation", "metrics_vs_step"):
      path = os.path.join(sweep_dir, f"{name}.png")
      self.assertGreater(os.path.getsize(path), 5000, path)

  def test_sigterm_exits_resumable_and_releases_the_claim(self):
    if not hasattr(preemption, "StopSignals"):
      self.skipTest("training has no stop-signal handling yet "
                    "(factorvae_jax.training.preemption.StopSignals)")
    tmp = self.create_tempdir().full_path
    sweep_dir = os.path.join(tmp, "study")
    runs = _test_runs()
    # Task 1 of 2: runs 1, 3 (factor_vae) and 5, 7 (beta_vae), trained as
    # two packs of two; stopped in the beta_vae pack.
    process, log = _start(
        _sweep_command(sweep_dir, self.cache_dir, "--task_index=1",
                       "--num_tasks=2", "--runs_per_group=2"),
        os.path.join(tmp, "log"))
    stopped = _wait_for_partial_run(runs, sweep_dir, process, "beta_vae",
                                    600)
    process.send_signal(signal.SIGTERM)
    self.assertEqual(process.wait(timeout=300),
                     preemption.EXIT_RESUMABLE, _read(os.path.join(tmp,
                                                                   "log")))
    log.close()
    self.assertIsNotNone(stopped)
    self.assertIn("stopped 2 packed runs", _read(os.path.join(tmp, "log")))
    for run in (runs[1], runs[3]):
      self.assertEqual(status.run_status(run.workdir(sweep_dir)).state,
                       status.DONE)
    for run in (runs[5], runs[7]):  # The pack: both checkpointed.
      workdir = run.workdir(sweep_dir)
      self.assertIsNone(claims.read_claim(workdir))
      self.assertEqual([e["event"] for e in run_dir.read_run_log(workdir)],
                       ["start", "interrupted"])
      self.assertEqual(status.run_status(workdir).state, status.PARTIAL)
      self.assertGreaterEqual(run_dir.latest_checkpoint_step(workdir), 10)
    for run in (runs[0], runs[2], runs[4], runs[6]):  # Task 0's share.
      self.assertEqual(status.run_status(run.workdir(sweep_dir)).state,
                       status.NEW)


if __name__ == "__main__":
  absltest.main()
