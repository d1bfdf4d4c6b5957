"""Claims: atomic takeover, owner identity, a holder that lost its claim,
the interrupt leak, sweep dirs without hard links; and two real sweep
processes (separate PID namespaces; a holder stalled past the timeout)."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from unittest import mock

from absl.testing import absltest
import pytest

from factorvae_jax import sweeps
from factorvae_jax.sweeps import claims
from factorvae_jax.sweeps import runner
from factorvae_jax.sweeps import status
from factorvae_jax.utils import run_dir
from tests import conftest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY_TEST = os.path.join(REPO, "experiments/sweeps/factorvae_study.py:test")

# A sweep of plain VAEs at the :test size, written where a test needs it:
# one model (one program to compile), RUNS seeds, STEPS steps each, and the
# cheapest final evaluation (MIG on the tiny sizes).
_TINY_SWEEP = '''"""Plain VAEs at the :test size, for tests of sweeps on real processes."""

from experiments.configs import vae_dsprites
from experiments.sweeps import common
from factorvae_jax import sweeps


def get_sweep(arg=None):
  del arg
  config = common.for_variant(vae_dsprites.get_config("test"), "test")
  with config.unlocked():
    config.num_steps = {steps}
    config.steps_per_dispatch = {dispatch}
    config.log_every_steps = {log}
    config.checkpoint_every_steps = {checkpoint}
    config.image_every_steps = {steps}
    config.eval_every_steps = 0
    config.final_eval_metrics = ("mig",)
  return sweeps.Sweep(name="tiny", grids=[sweeps.Grid(
      config=config, overrides=[{{"seed": s}} for s in range({runs})])])
'''


def write_tiny_sweep(directory: str, runs: int, steps: int, dispatch: int,
                     log: int, checkpoint: int) -> str:
  """Writes the tiny sweep file into ``directory``; returns its path."""
  path = os.path.join(directory, "tiny_sweep.py")
  with open(path, "w") as f:
    f.write(_TINY_SWEEP.format(runs=runs, steps=steps, dispatch=dispatch,
                               log=log, checkpoint=checkpoint))
  return path


def subprocess_env() -> dict:
  """The environment of a sweep subprocess: one CPU device, every program
  cached in the session's compilation cache (tests/conftest.py)."""
  env = dict(os.environ)
  # The test process fakes four devices; one here, as on a user's machine.
  env["XLA_FLAGS"] = conftest.SINGLE_DEVICE_XLA_FLAGS
  env["JAX_PLATFORMS"] = "cpu"
  env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return env


def skip_or_fail(reason: str) -> None:
  """Skips a test that cannot run here; in CI (``CI`` set) fails instead,
  so a required test never passes by not running."""
  if os.environ.get("CI"):
    pytest.fail(f"{reason} (CI is set, so this test must run)")
  pytest.skip(reason)


def _ages_out(workdir: str, generation: int) -> None:
  old = time.time() - 1000
  os.utime(claims.claim_path(workdir, generation), (old, old))


def _heartbeats(workdir: str) -> list[threading.Thread]:
  return [t for t in threading.enumerate()
          if t.name == f"claim-heartbeat:{workdir}"]


class TakeoverTest(absltest.TestCase):

  def test_takeover_decided_on_an_old_look_never_wins(self):
    workdir = self.create_tempdir().full_path
    first = claims.try_claim(workdir, timeout_s=60, heartbeat_s=30)
    _ages_out(workdir, 0)
    old_look = claims._newest(workdir)  # A slow process sees it stale...
    self.assertTrue(claims.is_stale(old_look[1], 60))
    second = claims.try_claim(workdir, timeout_s=60, heartbeat_s=30)
    self.assertEqual(second.generation, 1)
    self.assertEqual(claims.generations(workdir), [1])
    second.release()  # Generation 2 records the release.
    third = claims.try_claim(workdir, timeout_s=60, heartbeat_s=30)
    self.assertEqual(third.generation, 3)
    self.assertEqual(claims.generations(workdir), [3])
    # ... and acts on its look now: it links generation 1 (removed since),
    # sees generation 3 and backs off.
    with mock.patch.object(claims, "_newest", return_value=old_look):
      self.assertIsNone(claims.try_claim(workdir, timeout_s=60,
                                         heartbeat_s=30))
    self.assertEqual(claims.generations(workdir), [3])
    self.assertEqual(claims.read_claim(workdir)["token"], third.token)
    self.assertFalse(first.held())
    self.assertTrue(third.held())
    third.release()
    first.release()  # Taken over: writes nothing.
    self.assertEqual(claims.generations(workdir), [4])
    self.assertIsNone(claims.read_claim(workdir))

  def test_a_holder_that_was_taken_over_writes_nothing_more(self):
    workdir = self.create_tempdir().full_path
    stalled = claims.try_claim(workdir, timeout_s=60, heartbeat_s=0.05)
    self.assertTrue(claims.may_write(workdir))
    # Another process found the claim stale (as after a long stall) and
    # did what try_claim does there: linked generation 1, removed 0.
    self.assertTrue(claims._create(workdir, 1, {"token": "winner"}))
    os.remove(claims.claim_path(workdir, 0))
    path = claims.claim_path(workdir, 1)
    before = os.stat(path).st_mtime_ns
    time.sleep(0.3)  # Six of the stalled holder's heartbeat periods.
    self.assertEqual(os.stat(path).st_mtime_ns, before)
    self.assertFalse(stalled.held())
    self.assertFalse(claims.may_write(workdir))
    stalled.release()
    self.assertEqual(claims.generations(workdir), [1])
    self.assertEqual(os.stat(path).st_mtime_ns, before)
    self.assertEqual(claims.read_claim(workdir)["token"], "winner")
    self.assertEqual(_heartbeats(workdir), [])
    self.assertTrue(claims.may_write(workdir))  # Released: not ours now.

  def test_owner_is_more_than_host_and_pid(self):
    me = claims.owner_identity()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    fresh = {"age_s": 1.0, "token": "t"}
    # This machine, this PID namespace, the pid gone: a crash here.
    self.assertTrue(claims.is_stale(
        {**fresh, **me, "pid": dead.pid, "pid_start": None}, 60))
    # Same host name, another PID namespace (a container with the host's
    # name): its pids mean nothing here; only the heartbeat counts.
    self.assertFalse(claims.is_stale(
        {**fresh, **me, "pid_ns": "pid:[1]", "pid": dead.pid}, 60))
    # Same host name, another boot (another machine of the same name).
    self.assertFalse(claims.is_stale(
        {**fresh, **me, "boot_id": "another", "pid": dead.pid}, 60))
    # A claim of an older version, host and pid only: heartbeat only.
    self.assertFalse(claims.is_stale(
        {**fresh, "host": me["host"], "pid": dead.pid}, 60))
    # Our pid, reused by a process started at another time.
    self.assertTrue(claims.is_stale(
        {**fresh, **me, "pid_start": me["pid_start"] + 1}, 60))
    self.assertFalse(claims.is_stale({**fresh, **me}, 60))
    self.assertTrue(claims.is_stale({**me, "age_s": 61.0}, 60))


def _study_runs():
  return sweeps.expand(sweeps.load_sweep(STUDY_TEST))


class RunnerClaimTest(absltest.TestCase):

  def test_interrupt_leaks_no_claim(self):
    sweep_dir = self.create_tempdir().full_path
    runs = _study_runs()
    pair = [runs[3], runs[4]]  # factor_vae, then beta_vae: two groups.
    self.assertNotEqual(runner.group_key(pair[0]), runner.group_key(pair[1]))

    def train(group, sweep_dir):
      del group, sweep_dir
      raise KeyboardInterrupt("SIGTERM")

    with self.assertRaises(KeyboardInterrupt):
      runner.run_share(pair, sweep_dir, runs_per_group=2, train_group=train)
    for run in pair:
      workdir = run.workdir(sweep_dir)
      self.assertIsNone(claims.read_claim(workdir), run.name)
      self.assertEqual(_heartbeats(workdir), [], run.name)
    # The second run was never claimed: nothing was written for it.
    self.assertEqual(claims.generations(pair[1].workdir(sweep_dir)), [])

  def test_run_taken_over_during_training_is_left_alone(self):
    sweep_dir = self.create_tempdir().full_path
    runs = _study_runs()[:2]

    others = []

    def train(group, sweep_dir):
      for run in group:
        workdir = run.workdir(sweep_dir)
        if run.index == 0:  # Another process takes this one over.
          with mock.patch.object(claims, "is_stale", return_value=True):
            others.append(claims.try_claim(workdir, timeout_s=60,
                                           heartbeat_s=30))
          raise RuntimeError("orbax: the other process removed our save")
      for run in group:
        with open(os.path.join(run.workdir(sweep_dir), "results.json"),
                  "w") as f:
          json.dump({}, f)

    summary = runner.run_share(runs, sweep_dir, train_group=train)
    others[0].release()
    self.assertEqual(summary.taken_over, [runs[0].name])
    self.assertEqual(summary.trained, [runs[1].name])
    self.assertEqual(summary.failed, [])
    self.assertIn("1 taken over by another process", str(summary))
    lost = runs[0].workdir(sweep_dir)
    self.assertEqual([e["event"] for e in run_dir.read_run_log(lost)],
                     ["start"])
    self.assertEqual(status.run_status(lost).state, status.NEW)


  def test_waits_for_a_run_claimed_on_a_lost_machine(self):
    sweep_dir = self.create_tempdir().full_path
    runs = _study_runs()[:2]
    lost = runs[0].workdir(sweep_dir)
    os.makedirs(lost)
    with open(claims.claim_path(lost, 0), "w") as f:  # Heartbeat: now.
      json.dump({"host": "lost-node", "pid": 1, "token": "lost"}, f)
    trained = []

    def train(group, sweep_dir):
      for run in group:
        trained.append((run.name, time.monotonic() - start))
        with open(os.path.join(run.workdir(sweep_dir), "results.json"),
                  "w") as f:
          json.dump({}, f)

    start = time.monotonic()
    summary = runner.run_share(runs, sweep_dir, train_group=train,
                               claim_timeout_s=1.0, heartbeat_s=0.2,
                               wait_for_claimed=True)
    # Run 1 at once; run 0 once the lost node's claim is over 1 s old.
    self.assertEqual([name for name, _ in trained],
                     [runs[1].name, runs[0].name])
    self.assertLess(trained[0][1], 1.0)
    self.assertGreaterEqual(trained[1][1], 1.0)
    self.assertEqual(summary.trained, [runs[1].name, runs[0].name])
    self.assertEqual(summary.claimed_elsewhere, [])


class NoHardLinksTest(absltest.TestCase):

  def test_detected_with_the_fix_and_claims_off_needs_none(self):
    sweep_dir = self.create_tempdir().full_path
    runs = _study_runs()[:2]
    no_links = OSError(errno.EPERM, "Operation not permitted")
    with mock.patch.object(os, "link", side_effect=no_links):
      with self.assertRaisesRegex(
          claims.NoHardLinksError,
          f"{sweep_dir} is on a file system without hard links.*"
          r"Operation not permitted.*gcsfuse.*--claims=off"):
        claims.check_hard_links(sweep_dir)
      self.assertEqual(os.listdir(sweep_dir), [])  # The probe is removed.
      with self.assertRaises(claims.NoHardLinksError):
        runner.run_share(runs, sweep_dir, train_group=lambda g, d: None)
      trained = []

      def train(group, sweep_dir):
        for run in group:
          trained.append(run.name)
          with open(os.path.join(run.workdir(sweep_dir), "results.json"),
                    "w") as f:
            json.dump({}, f)

      summary = runner.run_share(runs, sweep_dir, train_group=train,
                                 use_claims=False)
    self.assertEqual(trained, [r.name for r in runs])
    self.assertEqual(summary.trained, trained)
    for run in runs:
      self.assertEqual(claims.generations(run.workdir(sweep_dir)), [])


def _last_logged_step(workdir):
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      steps = [json.loads(line)["step"] for line in f if line.strip()]
  except FileNotFoundError:
    return None
  return max(steps) if steps else None


def _tiny_config(seed):
  from experiments.configs import vae_dsprites  # pylint: disable=g-import-not-at-top
  config = vae_dsprites.get_config("test")
  with config.unlocked():  # 40 steps, 5 a chunk, logs every 5, ckpt every 10.
    config.seed = seed
    config.eval_every_steps = 0
    config.final_eval_metrics = ("mig",)
  return config


def _logged_steps(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line)["step"] for line in f if "reconstruction" in line]


class LoopStopsTest(absltest.TestCase):
  """Both training loops stop a run at the first check after its workdir
  was taken over (here: once step 15 is logged), writing nothing more."""

  @pytest.mark.slow
  def test_single_and_packed_loops(self):
    from factorvae_jax.training import loop  # pylint: disable=g-import-not-at-top
    from factorvae_jax.training import run_recorder  # pylint: disable=g-import-not-at-top
    from factorvae_jax.training import packed_loop  # pylint: disable=g-import-not-at-top
    tmp = self.create_tempdir().full_path
    lost, kept = os.path.join(tmp, "lost"), os.path.join(tmp, "kept")

    def still_owned(workdir):
      return workdir != lost or (_last_logged_step(workdir) or 0) < 15

    with self.assertRaisesRegex(run_recorder.RunTakenOver,
                                "took this run over.*at step 20"):
      loop.train_and_evaluate(_tiny_config(0), lost, still_owned=still_owned)
    # Logged 5, 10, 15; checked after the chunk to 20 and stopped: no log
    # line, checkpoint (10 is the last, every 10), image or result after.
    self.assertEqual(_logged_steps(lost), [5, 10, 15])
    self.assertEqual(run_dir.latest_checkpoint_step(lost), 10)
    self.assertFalse(os.path.exists(os.path.join(lost, "results.json")))
    self.assertFalse(os.path.exists(os.path.join(lost, "images")))  # At 20.

    shutil.rmtree(lost)
    errors = packed_loop.train_and_evaluate_packed(
        [_tiny_config(0), _tiny_config(1)], [lost, kept],
        still_owned=still_owned)
    self.assertIsInstance(errors[0], run_recorder.RunTakenOver)
    self.assertIsNone(errors[1])
    self.assertEqual(_logged_steps(lost), [5, 10, 15])
    self.assertEqual(run_dir.latest_checkpoint_step(lost), 10)
    self.assertFalse(os.path.exists(os.path.join(lost, "results.json")))
    self.assertEqual(_logged_steps(kept), list(range(5, 45, 5)))
    self.assertEqual(status.run_status(kept).state, status.DONE)


def _sweep_command(sweep_file, sweep_dir, *flags):
  return [sys.executable, "-m", "experiments.sweep", f"--sweep={sweep_file}",
          f"--sweep_dir={sweep_dir}", "--runs_per_group=1", *flags]


def _read(path):
  with open(path) as f:
    return f.read()


def _wait_for(predicate, timeout_s, what, *processes):
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    if predicate():
      return
    for p in processes:
      if p.poll() is not None:
        raise AssertionError(f"process exited ({p.returncode}) before "
                             f"{what}")
    time.sleep(0.05)
  raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _files(workdir):
  """path -> (size, mtime) of every file under ``workdir``."""
  found = {}
  for root, _, names in os.walk(workdir):
    for name in names:
      path = os.path.join(root, name)
      stat = os.stat(path)
      found[os.path.relpath(path, workdir)] = (stat.st_size, stat.st_mtime_ns)
  return found


class TwoProcessesTest(absltest.TestCase):
  """Real sweep processes on one sweep dir."""

  @pytest.mark.slow
  def test_separate_pid_namespaces_same_host_train_each_run_once(self):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
      skip_or_fail("needs root and unshare(1) for PID namespaces; run "
                   "python -m pytest tests/test_claims.py as root")
    tmp = self.create_tempdir().full_path
    sweep_file = write_tiny_sweep(tmp, runs=4, steps=300, dispatch=25,
                                  log=100, checkpoint=100)
    sweep_dir = os.path.join(tmp, "sweep")
    runs = sweeps.expand(sweeps.load_sweep(sweep_file))
    unshare = ["unshare", "--pid", "--fork", "--mount-proc"]
    # In its namespace the first sweep's pid is 5 (after bash and three
    # children); the second's is 1, and it has no process 5: a claim judged
    # by host name and pid alone would look dead to it.
    first_cmd = [*unshare, "bash", "-c",
                 'true & true & true & wait; "$@"; exit $?', "bash",
                 *_sweep_command(sweep_file, sweep_dir)]
    logs = [open(os.path.join(tmp, f"{n}.log"), "w") for n in ("a", "b")]
    first = subprocess.Popen(first_cmd, cwd=REPO, env=subprocess_env(),
                             stdout=logs[0], stderr=subprocess.STDOUT)
    _wait_for(lambda: claims.read_claim(runs[0].workdir(sweep_dir)),
              120, "the first sweep's claim on run 0", first)
    self.assertEqual(claims.read_claim(runs[0].workdir(sweep_dir))["pid"], 5)
    second = subprocess.Popen(
        [*unshare, *_sweep_command(sweep_file, sweep_dir)], cwd=REPO,
        env=subprocess_env(), stdout=logs[1], stderr=subprocess.STDOUT)
    codes = [p.wait(timeout=300) for p in (first, second)]
    for log in logs:
      log.close()
    outputs = [_read(os.path.join(tmp, f"{n}.log")) for n in ("a", "b")]
    self.assertEqual(codes, [0, 0], outputs)
    for run in runs:
      events = [e["event"] for e in run_dir.read_run_log(
          run.workdir(sweep_dir))]
      self.assertEqual(events, ["start", "done"], (run.name, outputs))
    trained = [int(o.rpartition("Task 0 of 1: ")[2].split()[0])
               for o in outputs]
    self.assertEqual(sum(trained), 4, outputs)
    self.assertGreaterEqual(min(trained), 1, outputs)  # They overlapped.
    self.assertIn("being trained by another process", outputs[1])

  @pytest.mark.slow
  def test_holder_stalled_past_the_timeout_stops_writing_when_it_wakes(self):
    tmp = self.create_tempdir().full_path
    # Writes only at the end (log, checkpoint and images every 400 steps),
    # so the stop below never lands in the middle of a write.
    sweep_file = write_tiny_sweep(tmp, runs=1, steps=400, dispatch=50,
                                  log=400, checkpoint=400)
    sweep_dir = os.path.join(tmp, "sweep")
    workdir = sweeps.expand(sweeps.load_sweep(sweep_file))[0].workdir(
        sweep_dir)
    timing = ["--claim_timeout_s=3", "--heartbeat_s=0.5"]
    log_a = os.path.join(tmp, "a.log")
    with open(log_a, "w") as out:
      stalled = subprocess.Popen(
          _sweep_command(sweep_file, sweep_dir, *timing), cwd=REPO,
          env=subprocess_env(), stdout=out, stderr=subprocess.STDOUT)
    try:
      _wait_for(lambda: "Compiling the train step" in _read(log_a), 120,
                "the first sweep to start training", stalled)
      stalled.send_signal(signal.SIGSTOP)
      time.sleep(4)  # Past the 3 s timeout: its heartbeat is stale.
      other = subprocess.run(
          _sweep_command(sweep_file, sweep_dir, *timing), cwd=REPO,
          env=subprocess_env(), capture_output=True, text=True, timeout=300)
      self.assertEqual(other.returncode, 0, other.stderr)
      self.assertIn("1 trained", other.stdout)
      self.assertEqual(status.run_status(workdir).state, status.DONE)
      # The stalled process's own TensorBoard event file may still receive
      # events it logged before the stall (tensorboardX flushes them from a
      # thread); it is the only file it may touch.
      own_events = f".{stalled.pid}."
      before = {k: v for k, v in _files(workdir).items()
                if own_events not in k}
      stalled.send_signal(signal.SIGCONT)
      self.assertEqual(stalled.wait(timeout=120), 0, _read(log_a))
    finally:
      if stalled.poll() is None:
        stalled.send_signal(signal.SIGCONT)
        stalled.kill()
    after = {k: v for k, v in _files(workdir).items() if own_events not in k}
    self.assertEqual(after, before)
    output = _read(log_a)
    self.assertIn("took this run over", output)
    self.assertIn("1 taken over by another process", output)
    events = run_dir.read_run_log(workdir)
    self.assertEqual([e["event"] for e in events], ["start", "start", "done"])
    self.assertEqual(events[1]["step"], 0)  # Nothing was saved before.


if __name__ == "__main__":
  absltest.main()
