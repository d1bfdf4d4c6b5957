"""The pure train step and its multi-step (``lax.scan``) driver.

``train_step(step_config, state, batch, key) -> (state, metrics)`` updates the
VAE and (for FactorVAE) the discriminator once, both from the parameters as
they were before the step. It is:
  * pure: all randomness comes from ``key``;
  * data parallel: with ``step_config.axis_name`` set and run under
    ``jax.pmap``, each device holds a shard of the global batch, gradients are
    averaged with ``lax.pmean``, and every random draw that spans the batch
    (reparameterisation noise, the dimension-wise permutation) is made for the
    *global* batch and sliced, so the result does not depend on the number of
    devices;
  * ``jax.vmap``-able over a leading model axis of ``state`` (and ``key``).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import optax

from factorvae_jax.objectives.base import VAEOutputs, gather_batch
from factorvae_jax.objectives.factorvae import discriminator_loss, permute_dims
from factorvae_jax.objectives.gaussian import kl_to_standard_normal, sample_diag_gaussian
from factorvae_jax.training.train_state import StepConfig, TrainState


def _device_position(axis_name: Optional[str]) -> tuple[Any, int]:
  """(index of this device, number of devices) along ``axis_name``."""
  if axis_name is None:
    return 0, 1
  return jax.lax.axis_index(axis_name), jax.lax.axis_size(axis_name)


def _local_slice(x: jax.Array, index, local_size: int) -> jax.Array:
  """Rows [index * local_size, (index + 1) * local_size) of ``x``."""
  return jax.lax.dynamic_slice_in_dim(x, index * local_size, local_size, 0)


def draw_global_normal(key: jax.Array, local_shape: tuple[int, int],
                       axis_name: Optional[str]) -> jax.Array:
  """Standard normal noise drawn for the global batch, this device's rows."""
  index, count = _device_position(axis_name)
  full = jax.random.normal(key, (local_shape[0] * count, local_shape[1]))
  return _local_slice(full, index, local_shape[0])


def train_step(step_config: StepConfig, state: TrainState, batch: dict,
               key: jax.Array) -> tuple[TrainState, dict]:
  """One update of the VAE and (if used) the discriminator.

  Args:
    step_config: static configuration (networks, objective, optimisers).
    state: the train state (this device's replica under pmap).
    batch: ``{'x': images [B, H, W, C] in [0, 1]}`` plus, for FactorVAE with
      ``second_batch``, ``'x2'`` of the same shape (this device's shard).
    key: PRNG key for this step (identical on every device).

  Returns:
    ``(new_state, metrics)``: metrics are scalars averaged over devices, plus
    ``kl_per_dim`` [D].
  """
  cfg = step_config
  nets = cfg.networks
  x = batch["x"]
  latent_dim = nets.encoder.latent_dim
  k_eps, k_eps2, k_perm = jax.random.split(key, 3)
  eps = draw_global_normal(k_eps, (x.shape[0], latent_dim), cfg.axis_name)

  def vae_loss_fn(vae_params):
    mean, logvar = nets.encoder.apply(vae_params["encoder"], x)
    z = sample_diag_gaussian(eps, mean, logvar)
    logits = nets.decoder.apply(vae_params["decoder"], z)
    disc_logits = (nets.discriminator.apply(state.disc_params, z)
                   if cfg.uses_discriminator else None)
    outputs = VAEOutputs(images=x, mean=mean, logvar=logvar, z=z,
                         logits=logits, disc_logits=disc_logits)
    loss, metrics = cfg.objective.compute_loss(outputs, state.hparams,
                                               state.step, cfg.axis_name)
    metrics = dict(metrics)
    metrics["kl_per_dim"] = jnp.mean(kl_to_standard_normal(mean, logvar), 0)
    return loss, (metrics, z)

  vae_grads, (metrics, z) = jax.grad(vae_loss_fn, has_aux=True)(
      state.vae_params)

  if cfg.uses_discriminator:
    # The discriminator sees the latents as data: no gradient reaches the VAE.
    z = jax.lax.stop_gradient(z)
    if cfg.second_batch:
      mean2, logvar2 = nets.encoder.apply(state.vae_params["encoder"],
                                          batch["x2"])
      eps2 = draw_global_normal(k_eps2, mean2.shape, cfg.axis_name)
      z_source = jax.lax.stop_gradient(
          sample_diag_gaussian(eps2, mean2, logvar2))
    else:
      z_source = z
    # Permute over the global batch so the product-of-marginals samples do
    # not depend on how the batch is split across devices.
    index, _ = _device_position(cfg.axis_name)
    z_perm = _local_slice(
        permute_dims(k_perm, gather_batch(z_source, cfg.axis_name)), index,
        z.shape[0])

    def disc_loss_fn(disc_params):
      logits_joint = nets.discriminator.apply(disc_params, z)
      logits_perm = nets.discriminator.apply(disc_params, z_perm)
      return discriminator_loss(logits_joint, logits_perm)

    disc_grads, disc_metrics = jax.grad(disc_loss_fn, has_aux=True)(
        state.disc_params)
    metrics.update(disc_metrics)
  else:
    disc_grads = state.disc_params  # An empty dict.

  if cfg.axis_name is not None:
    vae_grads, disc_grads, metrics = jax.lax.pmean(
        (vae_grads, disc_grads, metrics), cfg.axis_name)

  updates, vae_opt_state = cfg.vae_tx.update(vae_grads, state.vae_opt_state,
                                             state.vae_params)
  vae_params = optax.apply_updates(state.vae_params, updates)
  if cfg.uses_discriminator:
    updates, disc_opt_state = cfg.disc_tx.update(
        disc_grads, state.disc_opt_state, state.disc_params)
    disc_params = optax.apply_updates(state.disc_params, updates)
  else:
    disc_params, disc_opt_state = state.disc_params, state.disc_opt_state

  new_state = state.replace(
      step=state.step + 1, vae_params=vae_params, disc_params=disc_params,
      vae_opt_state=vae_opt_state, disc_opt_state=disc_opt_state)
  return new_state, metrics


def sample_train_batch(step_config: StepConfig, sample_fn: Callable,
                       data_arrays: Any, key: jax.Array,
                       local_batch_size: int) -> dict:
  """Draws this device's shard of the global batch(es) on device.

  The global batch is drawn from ``key`` on every device and sliced, so the
  data a step sees do not depend on the device count.

  Args:
    step_config: static configuration.
    sample_fn: ``dataset.sample_device_batch``.
    data_arrays: the dataset's device arrays.
    key: PRNG key for this step's data.
    local_batch_size: per-device batch size.

  Returns:
    ``{'x': ...}`` and, when the step needs it, ``{'x2': ...}``.
  """
  index, count = _device_position(step_config.axis_name)
  global_size = local_batch_size * count
  k1, k2 = jax.random.split(key)
  batch = {"x": _local_slice(sample_fn(data_arrays, k1, global_size), index,
                             local_batch_size)}
  if step_config.uses_discriminator and step_config.second_batch:
    batch["x2"] = _local_slice(sample_fn(data_arrays, k2, global_size), index,
                               local_batch_size)
  return batch


def train_steps(step_config: StepConfig, sample_fn: Callable,
                local_batch_size: int, num_steps: int, state: TrainState,
                data_arrays: Any) -> tuple[TrainState, dict]:
  """Runs ``num_steps`` steps in one dispatch with ``lax.scan``.

  Step ``s`` uses ``fold_in(state.rng, s)`` (split into a data key and a step
  key), so any split of training into dispatches, and any resume point, gives
  the same parameters.

  Args:
    step_config: static configuration.
    sample_fn: ``dataset.sample_device_batch``.
    local_batch_size: per-device batch size (static).
    num_steps: steps in this dispatch (static).
    state: train state.
    data_arrays: the dataset's device arrays.

  Returns:
    ``(state, metrics)`` with every metric stacked over the steps, [num_steps].
  """

  def body(state, _):
    key = jax.random.fold_in(state.rng, state.step)
    data_key, step_key = jax.random.split(key)
    batch = sample_train_batch(step_config, sample_fn, data_arrays, data_key,
                               local_batch_size)
    return train_step(step_config, state, batch, step_key)

  return jax.lax.scan(body, state, None, length=num_steps)
