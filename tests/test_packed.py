"""Packed training: N models in one program equal their solo runs."""

import functools

from absl.testing import absltest
from absl.testing import parameterized
import chex
import jax
import numpy as np
import pytest

from factorvae_jax.training import packed
from factorvae_jax.training.train_step import train_steps
from tests import step_fixtures as fx

# Each test compiles and runs packed and solo training (slow tier).
pytestmark = pytest.mark.slow

GLOBAL_BATCH = 8
STEPS = 3
# (objective name, model config overrides, per-model (seed, hparams)).
MODELS = {
    "factor_vae": ({}, [(0, {"gamma": 6.0}), (1, {"gamma": 20.0}),
                        (2, {"gamma": 40.0})]),
    "beta_vae": ({"beta": 4.0}, [(0, {"beta": 1.0}), (3, {"beta": 4.0}),
                                 (5, {"beta": 16.0})]),
}
# vmap batches the convolutions into grouped ones (another summation order);
# after a few Adam steps that differs from the solo run by rounding only.
RTOL, ATOL = 1e-4, 1e-5


@functools.lru_cache(maxsize=None)
def _solo_fn(name):
  """The jitted solo ``train_steps`` (one compile per objective)."""
  overrides, _ = MODELS[name]
  cfg = fx.make_step_config(name=name, **overrides)
  return jax.jit(functools.partial(train_steps, cfg, fx.sample_random_images,
                                   GLOBAL_BATCH, STEPS))


def _states(name):
  overrides, models = MODELS[name]
  cfg = fx.make_step_config(name=name, **overrides)
  return [fx.make_state(cfg, seed, **hp) for seed, hp in models]


def _model(tree, i):
  # On the host: indexing a pmapped output on the devices runs collectives
  # (see loop.unreplicate).
  return jax.tree.map(lambda a: np.asarray(a)[i], tree)


class PackedEqualsSoloTest(parameterized.TestCase):

  # Every form once, and the CPU default ("map") on both kinds of model:
  # each case compiles a packed and a solo program, the suite's main cost.
  @parameterized.parameters(("map", "factor_vae"), ("map", "beta_vae"),
                            ("vmap", "factor_vae"), ("unroll", "beta_vae"))
  def test_packed_equals_solo_runs_and_compiles_once(self, mode, name):
    overrides, models = MODELS[name]
    cfg = fx.make_step_config(name=name, **overrides)
    run = jax.jit(functools.partial(
        packed.packed_train_steps, cfg, fx.sample_random_images,
        GLOBAL_BATCH, STEPS, mode=mode))
    # The same pack with other seeds and hyperparameters: new values, not a
    # new program.
    others = [(seed + 10, {k: 2 * v for k, v in hp.items()})
              for seed, hp in models]
    for pack in (models, others):
      states = [fx.make_state(cfg, seed, **hp) for seed, hp in pack]
      out, metrics = run(packed.stack_states(states), {})
      chex.assert_shape(metrics["loss"], (len(states), STEPS))
      self.assertEqual(out.step.tolist(), [STEPS] * len(states))
      for i, state in enumerate(states):
        want, want_metrics = _solo_fn(name)(state, {})
        chex.assert_trees_all_close(_model(out, i), want, rtol=RTOL,
                                    atol=ATOL)
        chex.assert_trees_all_close(_model(metrics, i), want_metrics,
                                    rtol=RTOL, atol=ATOL)
      # Not vacuous: the models differ (seeds and hyperparameters).
      self.assertFalse(np.allclose(metrics["loss"][0], metrics["loss"][1]))
    self.assertEqual(run._cache_size(), 1)  # pylint: disable=protected-access

  @parameterized.parameters("map", "vmap")
  def test_pmap_equals_single_device_solo_runs(self, mode):
    devices = 2
    self.assertGreaterEqual(jax.local_device_count(), devices)
    states = _states("factor_vae")
    par_cfg = fx.make_step_config(axis_name="d")
    run = jax.pmap(functools.partial(
        packed.packed_train_steps, par_cfg, fx.sample_random_images,
        GLOBAL_BATCH // devices, STEPS, mode=mode),
                   axis_name="d", devices=jax.local_devices()[:devices])
    replicate = lambda t: jax.tree.map(lambda a: np.stack([a] * devices), t)
    out, metrics = run(replicate(packed.stack_states(states)),
                       replicate({}))
    for d in range(devices):
      for i, state in enumerate(packed.unstack_states(_model(out, d))):
        want, want_metrics = _solo_fn("factor_vae")(states[i], {})
        chex.assert_trees_all_close(state, want, rtol=RTOL, atol=ATOL)
        chex.assert_trees_all_close(_model(_model(metrics, d), i),
                                    want_metrics, rtol=RTOL, atol=ATOL)


class HelpersTest(absltest.TestCase):

  def test_auto_mode_per_platform(self):
    self.assertEqual(packed.resolve_mode("auto", "cpu"), "map")
    self.assertEqual(packed.resolve_mode("auto", "gpu"), "vmap")
    self.assertEqual(packed.resolve_mode("auto", "tpu"), "vmap")
    self.assertEqual(packed.resolve_mode("unroll", "gpu"), "unroll")
    with self.assertRaisesRegex(ValueError, "'grouped'.*'vmap'"):
      packed.resolve_mode("grouped")

  def test_stack_unstack_round_trip(self):
    states = _states("factor_vae")
    stacked = packed.stack_states(states)
    self.assertEqual(packed.num_models(stacked), 3)
    for got, want in zip(packed.unstack_states(stacked), states):
      chex.assert_trees_all_equal(got, want)

  def test_stack_rejects_other_objective_and_unstacked_state(self):
    with self.assertRaisesRegex(ValueError, "separate pack"):
      packed.stack_states([_states("factor_vae")[0], _states("beta_vae")[0]])
    with self.assertRaisesRegex(ValueError, "stack_states"):
      packed.unstack_states(_states("factor_vae")[0])
    with self.assertRaisesRegex(ValueError, "at least one"):
      packed.stack_states([])


if __name__ == "__main__":
  absltest.main()
