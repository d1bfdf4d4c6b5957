"""Behaviour of the pure train step: parallelism, isolation, scan.

vmap over a model axis is tested with the packed training it serves
(tests/test_packed.py: every packed form against solo runs)."""

import functools

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import optax
import pytest

from factorvae_jax.objectives.factorvae import discriminator_loss, permute_dims
from factorvae_jax.objectives.gaussian import kl_to_standard_normal
from factorvae_jax.training.train_step import train_step, train_steps
from tests import step_fixtures as fx

# Each test compiles the full train step, several forms of it (slow tier).
pytestmark = pytest.mark.slow

GLOBAL_BATCH = 8


def _batch(seed=1):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  return {"x": fx.random_images(k1, GLOBAL_BATCH),
          "x2": fx.random_images(k2, GLOBAL_BATCH)}


def _shard(tree, n):
  return jax.tree.map(lambda a: a.reshape(n, a.shape[0] // n, *a.shape[1:]),
                      tree)


def _replicate(tree, n):
  return jax.tree.map(lambda a: jnp.stack([a] * n), tree)


class PmapTest(absltest.TestCase):

  def test_four_devices_equal_one_device(self):
    n = 4
    self.assertGreaterEqual(jax.local_device_count(), n)
    key = jax.random.PRNGKey(7)
    batch = _batch()
    for second_batch in (True, False):
      single_cfg = fx.make_step_config(second_batch=second_batch)
      state = fx.make_state(single_cfg)
      ref_state, ref_metrics = jax.jit(
          functools.partial(train_step, single_cfg))(state, batch, key)

      par_cfg = fx.make_step_config(axis_name="d", second_batch=second_batch)
      p_step = jax.pmap(functools.partial(train_step, par_cfg), axis_name="d",
                        devices=jax.local_devices()[:n])
      par_state, par_metrics = p_step(_replicate(state, n), _shard(batch, n),
                                      _replicate(key, n))
      # Every replica is the same and equals the single-device result (read
      # on the host: indexing on the devices runs collectives, see
      # loop.unreplicate).
      par_state, par_metrics = jax.device_get((par_state, par_metrics))
      for i in range(n):
        chex.assert_trees_all_close(
            jax.tree.map(lambda a: a[i], par_state), ref_state,
            rtol=1e-5, atol=1e-6)
      chex.assert_trees_all_close(
          jax.tree.map(lambda a: a[0], par_metrics), ref_metrics,
          rtol=1e-5, atol=1e-5)

  def test_scan_is_device_count_independent(self):
    """The on-device sampler and the step together give the same training."""
    cfg1 = fx.make_step_config(axis_name="d")
    state = fx.make_state(cfg1)
    results = []
    for n in (1, 4):
      run = jax.pmap(
          functools.partial(train_steps, cfg1, fx.sample_random_images,
                            GLOBAL_BATCH // n, 3),
          axis_name="d", devices=jax.local_devices()[:n])
      out, _ = run(_replicate(state, n), _replicate({}, n))
      results.append(jax.tree.map(lambda a: a[0], jax.device_get(out)))
    chex.assert_trees_all_close(results[0], results[1], rtol=1e-5, atol=1e-6)


class GradientIsolationTest(absltest.TestCase):
  """Each optimiser sees only the gradient of its own loss."""

  def test_updates_equal_independent_reference(self):
    cfg = fx.make_step_config()
    nets = cfg.networks
    disc = cfg.auxiliary.network
    state = fx.make_state(cfg)
    batch = _batch()
    key = jax.random.PRNGKey(3)
    new_state, _ = train_step(cfg, state, batch, key)

    # Reference written from the definitions, independently of train_step.
    k_eps, k_eps2, k_perm = jax.random.split(key, 3)
    eps = jax.random.normal(k_eps, (GLOBAL_BATCH, 3))
    eps2 = jax.random.normal(k_eps2, (GLOBAL_BATCH, 3))
    gamma = 6.0

    def vae_loss(vae_params):
      return vae_loss_with(vae_params, state.disc_params)

    def vae_loss_with(vae_params, disc_params):
      mean, logvar = nets.encoder.apply(vae_params["encoder"], batch["x"])
      z = mean + jnp.exp(logvar / 2) * eps
      logits = nets.decoder.apply(vae_params["decoder"], z)
      recon = optax.sigmoid_binary_cross_entropy(logits, batch["x"]).sum(
          (1, 2, 3)).mean()
      kl = kl_to_standard_normal(mean, logvar).sum(1).mean()
      d = disc.apply(disc_params, z)
      return recon + kl + gamma * jnp.mean(d[:, 0] - d[:, 1])

    def latents(vae_params, x, e):
      mean, logvar = nets.encoder.apply(vae_params["encoder"], x)
      return mean + jnp.exp(logvar / 2) * e

    def disc_loss(disc_params, vae_params):
      z = latents(vae_params, batch["x"], eps)
      z_perm = permute_dims(k_perm, latents(vae_params, batch["x2"], eps2))
      return discriminator_loss(disc.apply(disc_params, z),
                                disc.apply(disc_params,
                                                         z_perm))[0]

    vae_grads = jax.grad(vae_loss)(state.vae_params)
    disc_grads = jax.grad(disc_loss)(state.disc_params, state.vae_params)
    upd, _ = cfg.vae_tx.update(vae_grads, state.vae_opt_state)
    want_vae = optax.apply_updates(state.vae_params, upd)
    upd, _ = cfg.auxiliary.optimizer.update(disc_grads, state.disc_opt_state)
    want_disc = optax.apply_updates(state.disc_params, upd)
    chex.assert_trees_all_close(new_state.vae_params, want_vae, atol=1e-6)
    chex.assert_trees_all_close(new_state.disc_params, want_disc, atol=1e-6)
    # Isolation is not vacuous: the VAE loss does depend on the
    # discriminator, and the discriminator loss on the VAE parameters through
    # z; the step must apply neither cross-gradient.
    cross = jax.grad(lambda dp: vae_loss_with(state.vae_params, dp))(
        state.disc_params)
    self.assertGreater(max(float(jnp.abs(g).max())
                           for g in jax.tree.leaves(cross)), 0.0)

  def test_frozen_vae_optimizer_leaves_vae_untouched(self):
    cfg = fx.make_step_config(vae_lr=0.0)
    state = fx.make_state(cfg)
    new_state, _ = train_step(cfg, state, _batch(), jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(new_state.vae_params, state.vae_params)
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)),
                           new_state.disc_params, state.disc_params)
    self.assertTrue(all(jax.tree.leaves(changed)))

  def test_frozen_discriminator_leaves_discriminator_untouched(self):
    cfg = fx.make_step_config(disc_lr=0.0)
    state = fx.make_state(cfg)
    new_state, _ = train_step(cfg, state, _batch(), jax.random.PRNGKey(0))
    chex.assert_trees_all_equal(new_state.disc_params, state.disc_params)


class ScanTest(absltest.TestCase):

  def test_one_dispatch_equals_separate_dispatches(self):
    cfg = fx.make_step_config()
    state = fx.make_state(cfg)
    run = lambda n: jax.jit(functools.partial(
        train_steps, cfg, fx.sample_random_images, GLOBAL_BATCH, n))
    once, metrics = run(4)(state, {})
    twice, _ = run(2)(state, {})
    twice, _ = run(2)(twice, {})
    chex.assert_trees_all_close(once, twice, rtol=1e-6, atol=1e-7)
    self.assertEqual(int(once.step), 4)
    chex.assert_shape(metrics["loss"], (4,))
    chex.assert_shape(metrics["kl_per_dim"], (4, 3))


if __name__ == "__main__":
  absltest.main()
