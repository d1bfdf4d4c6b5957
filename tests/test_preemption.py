"""SIGTERM and SIGINT during training end in a checkpoint; the next run resumes.

Real subprocesses of ``python -m experiments.run`` on the ``:test`` config,
signalled at the moments a preempted job meets: mid-training, during the first
compilation, during a save (twice), and during the final evaluation. Plus the
notebook path (an interrupt inside ``train_and_evaluate``) and the one
compilation of the train step per run.
"""

import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time

from absl.testing import absltest
import jax
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax import builder
from factorvae_jax import data as data_lib
from factorvae_jax.builder import run_config
from factorvae_jax.training import loop
from factorvae_jax.training.preemption import EXIT_RESUMABLE
from factorvae_jax.training.preemption import StopSignals

# Real training runs, most of them in subprocesses (slow tier).
pytestmark = pytest.mark.slow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "experiments", "configs", "factorvae_dsprites.py")


def _args(workdir, num_steps, final_eval=False, sizes="tiny"):
  return [sys.executable, "-m", "experiments.run", f"--config={CONFIG}:test",
          f"--workdir={workdir}", f"--config.num_steps={num_steps}",
          f"--config.final_eval={final_eval}",
          f"--config.final_eval_sizes={sizes}",
          "--config.eval_every_steps=0", "--config.image_every_steps=1000"]


class _Run:
  """A training subprocess whose output is collected line by line."""

  def __init__(self, args, ignore_sigint=False):
    if ignore_sigint:
      # As a non-interactive shell starts a background job: SIGINT ignored,
      # and inherited as ignored by the program it execs.
      args = ["bash", "-c", "trap '' INT; exec \"$@\"", "bash", *args]
    self.lines = []
    self.proc = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()

  def _read(self):
    for line in self.proc.stdout:
      self.lines.append(line)

  def wait_for(self, text, timeout=900):
    deadline = time.time() + timeout
    while time.time() < deadline:
      if any(text in line for line in self.lines):
        return
      if self.proc.poll() is not None:
        break
      time.sleep(0.01)
    raise AssertionError(f"never printed {text!r}:\n{self.output()}")

  def finish(self, timeout=900):
    code = self.proc.wait(timeout=timeout)
    self._reader.join(timeout=10)
    return code

  def output(self):
    return "".join(self.lines)


def _latest_step(workdir):
  ckpt = builder.Checkpointer(os.path.join(workdir, "checkpoints"), 5)
  try:
    return ckpt.latest_step()
  finally:
    ckpt.close()


def _final_state(workdir):
  config = run_config.load_config(workdir)
  shape = data_lib.make_dataset(config.data).observation_shape
  step_config = builder.build_step_config(config, shape, axis_name=None)
  template = builder.init_state(config, step_config, shape)
  ckpt = builder.Checkpointer(os.path.join(workdir, "checkpoints"), 5)
  try:
    return ckpt.restore(template)
  finally:
    ckpt.close()


def _assert_same_params(test, a, b):
  test.assertEqual(int(a.step), int(b.step))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# Every stopped run resumes to this step and is compared with one straight
# run to it (trained once, in this process: the same program as the
# subprocesses', so it comes from the compilation cache). Signals arrive
# within the first two checkpoints (steps 10 and 20).
TARGET_STEP = 40


@functools.lru_cache(maxsize=None)
def _uninterrupted():
  """The state of a run trained straight to ``TARGET_STEP``."""
  workdir = os.path.join(absltest.get_default_test_tmpdir(), "straight")
  loop.train_and_evaluate(_test_config(TARGET_STEP), workdir)
  return _final_state(workdir)


def _wait_for_a_save_in_progress(workdir, run, timeout=900):
  """Returns as soon as Orbax's temporary folder of a checkpoint exists."""
  checkpoints = os.path.join(workdir, "checkpoints")
  deadline = time.time() + timeout
  while time.time() < deadline and run.proc.poll() is None:
    if os.path.isdir(checkpoints) and any(
        "tmp" in name for name in os.listdir(checkpoints)):
      return
    time.sleep(0.0005)
  raise AssertionError(f"saw no checkpoint being written:\n{run.output()}")


class SignalTest(absltest.TestCase):

  def _stop_and_resume(self, signum, wait_text=None, ignore_sigint=False,
                       during_save=False):
    workdir = self.create_tempdir().full_path
    run = _Run(_args(workdir, 1_000_000), ignore_sigint=ignore_sigint)
    if during_save:
      _wait_for_a_save_in_progress(workdir, run)
      # Two signals while Orbax writes: the save completes (or the previous
      # checkpoint stays the newest), and the run still stops cleanly.
      run.proc.send_signal(signum)
      run.proc.send_signal(signum)
    else:
      run.wait_for(wait_text)
      run.proc.send_signal(signum)
    code = run.finish()
    name = signal.Signals(signum).name
    self.assertEqual(code, EXIT_RESUMABLE, run.output())
    self.assertIn(f"{name}: stopped at step", run.output())
    self.assertIn("Run the same command again to resume", run.output())
    self.assertNotIn("Traceback", run.output())
    step = _latest_step(workdir)
    self.assertGreater(step, 0)
    self.assertIn(f"stopped at step {step} ", run.output())
    # The next run resumes there and ends where a straight run ends.
    self.assertLess(step, TARGET_STEP)
    out = subprocess.run(_args(workdir, TARGET_STEP), cwd=REPO,
                         capture_output=True, text=True, timeout=900)
    self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
    self.assertIn(f"Resumed from step {step}", out.stderr)
    _assert_same_params(self, _final_state(workdir), _uninterrupted())
    return step

  def test_sigterm_mid_training(self):
    self._stop_and_resume(signal.SIGTERM, "First 5 steps done")

  def test_sigint_with_sigint_ignored_by_the_parent_shell(self):
    self._stop_and_resume(signal.SIGINT, "First 5 steps done",
                          ignore_sigint=True)

  def test_sigterm_during_the_first_compilation(self):
    step = self._stop_and_resume(signal.SIGTERM, "Compiling the train step")
    self.assertEqual(step, 5)  # The chunk being compiled, then stopped.

  def test_two_signals_during_a_save_corrupt_nothing(self):
    self._stop_and_resume(signal.SIGTERM, during_save=True)

  def test_sigterm_during_the_final_evaluation(self):
    workdir = self.create_tempdir().full_path
    run = _Run(_args(workdir, 10, final_eval=True, sizes="cheap"))
    run.wait_for("evaluation: sample_pool took")
    run.proc.send_signal(signal.SIGTERM)
    code = run.finish()
    self.assertEqual(code, EXIT_RESUMABLE, run.output())
    self.assertIn("stopped the final evaluation", run.output())
    self.assertIn("experiments.evaluate --workdir=", run.output())
    self.assertNotIn("Traceback", run.output())
    self.assertEqual(_latest_step(workdir), 10)
    self.assertFalse(os.path.exists(os.path.join(workdir, "results.json")))


def _test_config(num_steps):
  config = factorvae_dsprites.get_config("test")
  with config.unlocked():
    config.num_steps = num_steps
    config.final_eval = False
    config.eval_every_steps = 0
    config.image_every_steps = 1000
  return config


class NestedStopSignalsTest(absltest.TestCase):
  """A sweep task's handler around each run's: no signal is lost."""

  def _signal_self(self, signum):
    os.kill(os.getpid(), signum)
    time.sleep(0.01)  # Python runs the handler at the next bytecode.

  def test_signal_between_runs_stops_the_next_run_at_once(self):
    previous = signal.getsignal(signal.SIGTERM)
    with StopSignals() as task:
      self._signal_self(signal.SIGTERM)
      self.assertTrue(task.requested)
      with StopSignals() as run:
        self.assertTrue(run.requested)
        self.assertEqual(run.signal_name, "SIGTERM")
      self.assertEqual(signal.getsignal(signal.SIGTERM), task._handle)  # pylint: disable=protected-access
    self.assertEqual(signal.getsignal(signal.SIGTERM), previous)

  def test_signal_during_a_run_reaches_the_task(self):
    with StopSignals() as task:
      with StopSignals() as run:
        self.assertFalse(run.requested)
        self._signal_self(signal.SIGINT)
        self.assertTrue(run.requested)
        self.assertFalse(task.requested)
      self.assertTrue(task.requested)
      self.assertEqual(task.signal_name, "SIGINT")
      with StopSignals() as later:
        self.assertTrue(later.requested)


class InProcessTest(absltest.TestCase):

  def test_notebook_interrupt_stops_with_checkpoint_and_rerun_resumes(self):
    """Colab's "interrupt execution" sends SIGINT to the kernel process."""
    workdir = self.create_tempdir().full_path
    pid = os.getpid()
    checkpoints = os.path.join(workdir, "checkpoints")

    def interrupt_after_first_checkpoint():
      deadline = time.time() + 300
      while time.time() < deadline:
        if os.path.isdir(checkpoints) and any(
            d.isdigit() for d in os.listdir(checkpoints)):
          break
        time.sleep(0.01)
      os.kill(pid, signal.SIGINT)

    previous_handler = signal.getsignal(signal.SIGINT)
    threading.Thread(target=interrupt_after_first_checkpoint,
                     daemon=True).start()
    with self.assertRaisesRegex(loop.TrainingInterrupted,
                                "SIGINT: stopped at step"):
      loop.train_and_evaluate(_test_config(1_000_000), workdir)
    step = _latest_step(workdir)
    self.assertGreater(step, 0)
    # The handler is gone afterwards: the caller's SIGINT handling is back.
    self.assertIs(signal.getsignal(signal.SIGINT), previous_handler)
    state = loop.train_and_evaluate(_test_config(step + 5), workdir)
    self.assertEqual(int(state.step), step + 5)

  def test_train_step_compiles_once_per_run(self):
    misses = []

    class Collect(logging.Handler):

      def emit(self, record):
        message = record.getMessage()
        if "TRACING CACHE MISS" in message and "(train_steps)" in message:
          misses.append(message)

    handler = Collect()
    jax_logger = logging.getLogger("jax")
    jax_logger.addHandler(handler)
    jax.config.update("jax_explain_cache_misses", True)
    try:
      loop.train_and_evaluate(_test_config(20),
                              self.create_tempdir().full_path)
    finally:
      jax.config.update("jax_explain_cache_misses", False)
      jax_logger.removeHandler(handler)
    # Four chunks of 5 steps: the first call compiles, the others reuse it.
    self.assertLen(misses, 1, "\n".join(misses))


if __name__ == "__main__":
  absltest.main()
