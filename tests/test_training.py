"""The training loop as a user runs it: outputs, resume, kills, NaNs, configs."""

import glob
import json
import os
import signal
import subprocess
import sys
import time

from absl.testing import absltest
from absl.testing import parameterized
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax import data as data_lib
from factorvae_jax import objectives
from factorvae_jax.evaluation import evaluate
from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae as vae_objective
from factorvae_jax.training import loop
from factorvae_jax.training import run_recorder
from factorvae_jax import builder
from factorvae_jax.builder import Checkpointer
from factorvae_jax.builder import run_config
from factorvae_jax.utils import run_dir

# Every test here trains with the real loop (slow tier).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "experiments", "configs")
MODEL_CONFIGS = ("factorvae_dsprites", "vae_dsprites", "betavae_dsprites",
                 "annealedvae_dsprites", "betatcvae_dsprites",
                 "dipvaei_dsprites", "dipvaeii_dsprites")


def _test_config(**overrides):
  config = factorvae_dsprites.get_config("test")
  with config.unlocked():
    config.final_eval = False
    config.eval_every_steps = 0
    for key, value in overrides.items():
      node = config
      *parents, leaf = key.split(".")
      for p in parents:
        node = node[p]
      node[leaf] = value
  return config


def _params(workdir):
  """The newest checkpoint's state as numpy leaves."""
  config = run_config.load_config(workdir)
  shape = data_lib.make_dataset(config.data).observation_shape
  step_config = builder.build_step_config(config, shape, axis_name=None)
  template = builder.init_state(config, step_config, shape)
  ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), 5)
  state = ckpt.restore(template)
  ckpt.close()
  return state


def _assert_states_identical(test, a, b):
  test.assertEqual(int(a.step), int(b.step))
  leaves_a = jax.tree.leaves(jax.device_get(a))
  leaves_b = jax.tree.leaves(jax.device_get(b))
  test.assertEqual(len(leaves_a), len(leaves_b))
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


class TrainAndEvaluateTest(absltest.TestCase):

  def test_test_config_writes_every_output(self):
    workdir = self.create_tempdir().full_path
    config = _test_config(final_eval=True, eval_every_steps=20,
                          num_steps=20, checkpoint_every_steps=5)
    state = loop.train_and_evaluate(config, workdir)
    self.assertEqual(int(state.step), 20)
    self.assertEqual(run_dir.checkpoint_steps(workdir), [15, 20])  # keep 2
    with open(os.path.join(workdir, "data_source.json")) as f:
      self.assertIn("procedural", json.load(f)["source"])
    with open(os.path.join(workdir, "results.json")) as f:
      results = json.load(f)
    self.assertEqual(results["checkpoint_step"], 20)
    self.assertIn("procedural", results["dataset"]["source"])
    self.assertIn("factor_vae/eval_accuracy", results["scores"])
    self.assertIn("dci/disentanglement", results["scores"])
    self.assertIn("dci", results["stage_seconds"])
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      lines = [json.loads(l) for l in f]
    logged = [l for l in lines if "loss" in l]
    self.assertEqual([l["step"] for l in logged], [5, 10, 15, 20])
    for key in ("reconstruction", "kl", "tc_estimate", "disc_loss",
                "disc_accuracy", "elbo", "kl_per_dim/0", "kl_per_dim/3"):
      self.assertIn(key, logged[-1])
    self.assertTrue(any("eval/mig" in l for l in lines))
    self.assertTrue(glob.glob(os.path.join(workdir, "tensorboard", "*")))
    for kind in ("reconstructions", "traversals"):
      self.assertTrue(os.path.exists(
          os.path.join(workdir, "images", f"{kind}_00000020.png")))
    # Re-evaluating the workdir (what experiments.evaluate does) reproduces
    # the end-of-training numbers: the evaluation seed is fixed.
    again = evaluate.evaluate_workdir(workdir, sizes="tiny")
    self.assertEqual(again["checkpoint_step"], 20)
    for name, value in results["scores"].items():
      self.assertAlmostEqual(again["scores"][name], value, places=6, msg=name)

  def test_resume_is_bitwise_exact(self):
    straight = self.create_tempdir().full_path
    resumed = self.create_tempdir().full_path
    loop.train_and_evaluate(_test_config(num_steps=20), straight)
    loop.train_and_evaluate(_test_config(num_steps=10), resumed)
    # A different dispatch size on resume must not change the result.
    loop.train_and_evaluate(_test_config(num_steps=20, steps_per_dispatch=10,
                                         log_every_steps=10,
                                         image_every_steps=10), resumed)
    _assert_states_identical(self, _params(straight), _params(resumed))

  def test_resume_refuses_a_different_experiment(self):
    workdir = self.create_tempdir().full_path
    loop.train_and_evaluate(_test_config(num_steps=10), workdir)
    with self.assertRaisesRegex(ValueError, r"model\.gamma.*new --workdir"):
      loop.train_and_evaluate(
          _test_config(num_steps=20, **{"model.gamma": 10.0}), workdir)
    self.assertEqual(int(_params(workdir).step), 10)


_NAN_STEP = 12


def _loss_nan_from_step(outputs, hparams, step, axis_name):
  loss, metrics = vae_objective.VAE.compute_loss(outputs, hparams, step,
                                                 axis_name)
  loss = jnp.where(step >= _NAN_STEP, jnp.nan, loss)
  metrics = dict(metrics, loss=loss)
  return loss, metrics


_NAN_OBJECTIVE = base.Objective("test_nan_from_step_12", (),
                                _loss_nan_from_step)
objectives.OBJECTIVES.setdefault(_NAN_OBJECTIVE.name, _NAN_OBJECTIVE)


class NonFiniteLossTest(absltest.TestCase):

  def test_nan_stops_training_and_keeps_last_good_checkpoint(self):
    workdir = self.create_tempdir().full_path
    config = _test_config(num_steps=40, **{"model.name": _NAN_OBJECTIVE.name})
    with self.assertRaisesRegex(run_recorder.NonFiniteLossError,
                                rf"step {_NAN_STEP}: loss=nan") as cm:
      loop.train_and_evaluate(config, workdir)
    self.assertIn("last good checkpoint is step 10", str(cm.exception))
    state = _params(workdir)
    self.assertEqual(int(state.step), 10)
    for leaf in jax.tree.leaves(state):
      self.assertTrue(np.all(np.isfinite(np.asarray(leaf, np.float64))))


def _run_cli(args, **kwargs):
  return subprocess.Popen(
      [sys.executable, "-m", "experiments.run", *args], cwd=REPO,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


class CommandLineTest(absltest.TestCase):

  def _test_args(self, workdir, num_steps):
    return [f"--config={CONFIG_DIR}/factorvae_dsprites.py:test",
            f"--workdir={workdir}", f"--config.num_steps={num_steps}",
            "--config.final_eval=False", "--config.eval_every_steps=0",
            "--config.image_every_steps=1000"]

  def test_kill_mid_training_then_resume_is_exact(self):
    workdir = self.create_tempdir().full_path
    proc = _run_cli(self._test_args(workdir, 1_000_000))
    ckpt_dir = os.path.join(workdir, "checkpoints")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
      done = [d for d in glob.glob(os.path.join(ckpt_dir, "*"))
              if os.path.basename(d).isdigit()]
      if len(done) >= 2:
        break
      time.sleep(0.05)
    self.assertIsNone(proc.poll(), proc.stdout.read() if proc.poll() else "")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = Checkpointer(ckpt_dir, 2)
    last = killed_at.latest_step()
    killed_at.close()
    self.assertIsNotNone(last)
    target = last + 20
    out = subprocess.run(
        [sys.executable, "-m", "experiments.run",
         *self._test_args(workdir, target)], cwd=REPO, capture_output=True,
        text=True, timeout=600)
    self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
    self.assertIn(f"Resumed from step {last}", out.stderr)
    straight = self.create_tempdir().full_path
    loop.train_and_evaluate(
        _test_config(num_steps=target, image_every_steps=1000), straight)
    _assert_states_identical(self, _params(straight), _params(workdir))
    # Lines logged after the last checkpoint of the killed run are not
    # duplicated by the resumed run.
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      steps = [json.loads(l)["step"] for l in f if '"loss"' in l]
    self.assertEqual(steps, sorted(set(steps)))

  def test_unknown_key_and_wrong_type_are_rejected(self):
    workdir = self.create_tempdir().full_path
    for flag, expected in (("--config.model.gamm=40", "gamm"),
                           ("--config.model.gamma=abc", "gamma")):
      out = subprocess.run(
          [sys.executable, "-m", "experiments.run",
           f"--config={CONFIG_DIR}/factorvae_dsprites.py:test",
           f"--workdir={workdir}", flag], cwd=REPO, capture_output=True,
          text=True, timeout=120)
      self.assertNotEqual(out.returncode, 0)
      self.assertIn(expected, out.stderr)
      self.assertFalse(os.path.exists(os.path.join(workdir, "checkpoints")))


class EveryModelTrainsTest(parameterized.TestCase):

  @parameterized.parameters(*MODEL_CONFIGS)
  def test_two_steps(self, config_name):
    module = __import__(f"experiments.configs.{config_name}",
                        fromlist=["get_config"])
    config = module.get_config("test")
    with config.unlocked():
      config.num_steps = 2
      config.steps_per_dispatch = 2
      config.log_every_steps = 2
      config.image_every_steps = 2
      config.checkpoint_every_steps = 2
      config.eval_every_steps = 0
      config.final_eval = False
    workdir = self.create_tempdir().full_path
    state = loop.train_and_evaluate(config, workdir)
    self.assertEqual(int(state.step), 2)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      last = [json.loads(l) for l in f][-1]
    for key in ("loss", "reconstruction", "kl", "elbo"):
      self.assertTrue(np.isfinite(float(last[key])), (key, last))
    self.assertEqual(bool(state.disc_params), config.model.name == "factor_vae")


class ThreeChannelDataTest(absltest.TestCase):

  def test_shapes3d_file_trains_a_three_channel_model(self):
    from tests import test_data_shapes3d as shapes_fixture
    _, labels, images = shapes_fixture.make_rows()
    path = shapes_fixture.write_h5(
        os.path.join(self.create_tempdir().full_path, "3dshapes.h5"), labels,
        images)
    workdir = self.create_tempdir().full_path
    config = _test_config(num_steps=2, steps_per_dispatch=2, log_every_steps=2,
                          image_every_steps=2, checkpoint_every_steps=2,
                          **{"data.name": "shapes3d", "data.source": "h5",
                             "data.path": path})
    state = loop.train_and_evaluate(config, workdir)
    decoder = state.vae_params["decoder"]["params"]
    last = sorted(k for k in decoder if k.startswith("ConvTranspose2x"))[-1]
    self.assertEqual(decoder[last]["kernel"].shape[-1], 3)
    with open(os.path.join(workdir, "data_source.json")) as f:
      self.assertIn(path, json.dumps(json.load(f)))
    self.assertTrue(os.path.exists(
        os.path.join(workdir, "images", "traversals_00000002.png")))

  def test_host_side_data_gives_the_same_training_and_resumes(self):
    from tests import test_data_shapes3d as shapes_fixture
    _, labels, images = shapes_fixture.make_rows()
    path = shapes_fixture.write_h5(
        os.path.join(self.create_tempdir().full_path, "3dshapes.h5"), labels,
        images)

    def config(num_steps, on_device):
      return _test_config(
          num_steps=num_steps, steps_per_dispatch=2, log_every_steps=2,
          image_every_steps=8, checkpoint_every_steps=2,
          **{"data.name": "shapes3d", "data.source": "h5", "data.path": path,
             "data.on_device": on_device})

    on_device = loop.train_and_evaluate(config(8, True),
                                        self.create_tempdir().full_path)
    # The host path, stopped after 4 steps and resumed to 8.
    workdir = self.create_tempdir().full_path
    loop.train_and_evaluate(config(4, False), workdir)
    on_host = loop.train_and_evaluate(config(8, False), workdir)
    _assert_states_identical(self, on_host, on_device)
    self.assertEqual(int(on_host.step), 8)


if __name__ == "__main__":
  absltest.main()
