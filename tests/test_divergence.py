"""NaN/Inf during training: nothing non-finite is saved, the run is marked
failed at once, and a resumed sweep leaves it failed unless asked."""

import os
import signal

from absl.testing import absltest
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from experiments.sweeps import common
from factorvae_jax import builder
from factorvae_jax import data as data_lib
from factorvae_jax import objectives
from factorvae_jax import sweeps
from factorvae_jax.builder import Checkpointer
from factorvae_jax.builder import run_config
from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae as vae_objective
from factorvae_jax.sweeps import runner
from factorvae_jax.sweeps import status
from factorvae_jax.training import loop
from factorvae_jax.training import run_recorder
from factorvae_jax.utils import run_dir

pytestmark = pytest.mark.slow

# The state step whose update poisons the parameters: the last step of the
# chunk [15, 20) (steps_per_dispatch=5), and step 20 is a checkpoint step.
_POISON_STEP = 19


def _loss_with_nan_gradient_at(outputs, hparams, step, axis_name):
  """The VAE loss, unchanged in value, whose gradient is NaN at one step.

  sqrt has an infinite slope at 0, and the chain rule multiplies it by the
  zero slope of ``sum(mean * 0)``: inf * 0 = NaN in every encoder gradient.
  At the other steps sqrt is taken at 1 (a finite slope), and the offset
  keeps the loss's value exactly the VAE's.
  """
  loss, metrics = vae_objective.VAE.compute_loss(outputs, hparams, step,
                                                 axis_name)
  at_poison = (step == _POISON_STEP)
  offset = jnp.where(at_poison, 0.0, 1.0)
  loss = loss + jnp.sqrt(jnp.sum(outputs.mean * 0.0) + offset) - offset
  return loss, dict(metrics, loss=loss)


_NAN_GRAD = base.Objective("test_nan_gradient_at_step_19", (),
                           _loss_with_nan_gradient_at)
objectives.OBJECTIVES.setdefault(_NAN_GRAD.name, _NAN_GRAD)


def _restore(workdir):
  config = run_config.load_config(workdir)
  shape = data_lib.make_dataset(config.data).observation_shape
  step_config = builder.build_step_config(config, shape, axis_name=None)
  template = builder.init_state(config, step_config, shape)
  checkpointer = Checkpointer(run_dir.checkpoint_dir(workdir), 5)
  try:
    return checkpointer.restore(template)
  finally:
    checkpointer.close()


class NanAtTheEndOfACheckpointChunkTest(absltest.TestCase):

  def test_finite_loss_nan_parameters_are_not_saved_and_the_run_fails(self):
    workdir = self.create_tempdir().full_path
    config = factorvae_dsprites.get_config("test")
    with config.unlocked():
      config.model.name = _NAN_GRAD.name
      config.num_steps = 20
      config.steps_per_dispatch = 5
      config.checkpoint_every_steps = 10
      config.final_eval = False
      config.eval_every_steps = 0
    with self.assertRaisesRegex(run_recorder.NonFiniteLossError,
                                r"step 20: the parameters") as cm:
      loop.train_and_evaluate(config, workdir)
    self.assertIn("last good checkpoint is step 10", str(cm.exception))
    # Every loss logged was finite: only the parameters went bad.
    losses = [r["loss"] for r in run_dir.read_metrics(workdir) if "loss" in r]
    self.assertTrue(losses and np.all(np.isfinite(losses)))
    self.assertEqual(run_dir.checkpoint_steps(workdir), [10])
    for leaf in jax.tree.leaves(_restore(workdir)):
      if np.issubdtype(np.asarray(leaf).dtype, np.inexact):
        self.assertTrue(np.all(np.isfinite(leaf)))
    failure = run_dir.read_failure(workdir)
    self.assertIsNotNone(failure)
    self.assertIn("NonFiniteLossError", failure["error"])
    self.assertEqual(failure["step"], 20)


class SignalAfterADivergenceInAPackTest(absltest.TestCase):

  def test_the_diverged_run_stays_failed_and_is_not_retrained(self):
    base_config = common.for_variant(factorvae_dsprites.get_config("test"),
                                     "test")
    # gamma = NaN makes that model's loss NaN from the first step.
    runs = sweeps.expand(sweeps.Sweep(name="packed", grids=[sweeps.product(
        base_config, {"gamma": [10.0, float("nan")]}, [0])]))
    sweep_dir = self.create_tempdir().full_path
    fail = run_recorder.RunRecorder.fail

    def fail_then_preempt(recorder, *args, **kwargs):
      fail(recorder, *args, **kwargs)
      # The scheduler's SIGTERM lands right after the divergence.
      os.kill(os.getpid(), signal.SIGTERM)

    with absltest.mock.patch.object(run_recorder.RunRecorder, "fail",
                                    fail_then_preempt):
      with self.assertRaises(loop.TrainingInterrupted):
        runner.run_share(runs, sweep_dir, runs_per_group=2,
                         train_group=runner.make_packed_trainer("map"))
    diverged, healthy = (r.workdir(sweep_dir) for r in (runs[1], runs[0]))
    self.assertEqual(status.run_status(diverged).state, status.FAILED)
    self.assertIn("diverged", str(status.run_status(diverged)))
    self.assertEqual(status.run_status(healthy).state, status.PARTIAL)

    # Resumed without --retry_failed: the healthy run finishes, the
    # diverged one is left alone.
    summary = runner.run_share(runs, sweep_dir, runs_per_group=2,
                               train_group=runner.make_packed_trainer("map"))
    self.assertEqual(summary.trained, [runs[0].name])
    self.assertEqual(summary.skipped_failed, [runs[1].name])
    self.assertEqual(status.run_status(diverged).state, status.FAILED)
    self.assertEqual(status.run_status(healthy).state, status.DONE)
    starts = [e for e in run_dir.read_run_log(diverged)
              if e["event"] == "start"]
    self.assertLen(starts, 1)


if __name__ == "__main__":
  absltest.main()
