"""The pure train step and its multi-step (``lax.scan``) driver.

``train_step(step_config, state, batch, key) -> (state, metrics)`` updates the
VAE, then the objective's auxiliary networks if it has any (FactorVAE: the
discriminator, ``objectives/factorvae.py``), both from the parameters as they
were before the step. It is:
  * pure: all randomness comes from ``key``;
  * data parallel: with ``step_config.axis_name`` set and run under
    ``jax.pmap``, each device holds a shard of the global batch, gradients are
    averaged with ``lax.pmean``, and every random draw that spans the batch
    (reparameterisation noise, FactorVAE's permutation) is made for the
    *global* batch and sliced, so the result does not depend on the number of
    devices;
  * ``jax.vmap``-able over a leading model axis of ``state`` (and ``key``).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from factorvae_jax.builder.state import StepConfig, TrainState
from factorvae_jax.objectives.base import AuxiliaryInputs, VAEOutputs
from factorvae_jax.objectives.gaussian import kl_to_standard_normal, sample_diag_gaussian
from factorvae_jax.parallel import device_position, draw_global_normal, local_slice


def train_step(step_config: StepConfig, state: TrainState, batch: dict,
               key: jax.Array) -> tuple[TrainState, dict]:
  """One update of the VAE and (if the objective has any) its auxiliary nets.

  Args:
    step_config: static configuration (networks, objective, optimisers).
    state: the train state (this device's replica under pmap).
    batch: ``{'x': images [B, H, W, C] in [0, 1]}`` plus, when the objective's
      auxiliary networks want an extra batch, ``'x2'`` of the same shape
      (this device's shard).
    key: PRNG key for this step (identical on every device).

  Returns:
    ``(new_state, metrics)``: metrics are scalars averaged over devices, plus
    ``kl_per_dim`` [D].
  """
  cfg = step_config
  nets = cfg.networks
  aux = cfg.auxiliary
  x = batch["x"]
  latent_dim = nets.encoder.latent_dim
  # One key for the VAE's noise, two for the auxiliary update.
  keys = jax.random.split(key, 3)
  eps = draw_global_normal(keys[0], (x.shape[0], latent_dim), cfg.axis_name)

  def vae_loss_fn(vae_params):
    mean, logvar = nets.encoder.apply(vae_params["encoder"], x)
    z = sample_diag_gaussian(eps, mean, logvar)
    logits = nets.decoder.apply(vae_params["decoder"], z)
    aux_out = (aux.apply_for_vae(state.disc_params, z)
               if aux is not None else None)
    outputs = VAEOutputs(images=x, mean=mean, logvar=logvar, z=z,
                         logits=logits, aux=aux_out)
    loss, metrics = cfg.objective.compute_loss(outputs, state.hparams,
                                               state.step, cfg.axis_name)
    metrics = dict(metrics)
    metrics["kl_per_dim"] = jnp.mean(kl_to_standard_normal(mean, logvar), 0)
    return loss, (metrics, z)

  vae_grads, (metrics, z) = jax.grad(vae_loss_fn, has_aux=True)(
      state.vae_params)

  if aux is not None:
    def sample_latents(images, sample_key):
      mean, logvar = nets.encoder.apply(state.vae_params["encoder"], images)
      noise = draw_global_normal(sample_key, mean.shape, cfg.axis_name)
      return jax.lax.stop_gradient(sample_diag_gaussian(noise, mean, logvar))

    # The auxiliary networks see the latents as data: no gradient reaches
    # the VAE.
    aux_data = aux.prepare(AuxiliaryInputs(
        z=jax.lax.stop_gradient(z), batch=batch, keys=keys[1:],
        sample_latents=sample_latents, axis_name=cfg.axis_name))
    aux_grads, aux_metrics = jax.grad(aux.loss, has_aux=True)(
        state.disc_params, aux_data)
    metrics.update(aux_metrics)
  else:
    aux_grads = state.disc_params  # An empty dict.

  if cfg.axis_name is not None:
    vae_grads, aux_grads, metrics = jax.lax.pmean(
        (vae_grads, aux_grads, metrics), cfg.axis_name)

  updates, vae_opt_state = cfg.vae_tx.update(vae_grads, state.vae_opt_state,
                                             state.vae_params)
  vae_params = optax.apply_updates(state.vae_params, updates)
  if aux is not None:
    updates, disc_opt_state = aux.optimizer.update(
        aux_grads, state.disc_opt_state, state.disc_params)
    disc_params = optax.apply_updates(state.disc_params, updates)
  else:
    disc_params, disc_opt_state = state.disc_params, state.disc_opt_state

  new_state = state.replace(
      step=state.step + 1, vae_params=vae_params, disc_params=disc_params,
      vae_opt_state=vae_opt_state, disc_opt_state=disc_opt_state)
  return new_state, metrics


def sample_global_batch(step_config: StepConfig, sample_fn: Callable,
                        data_arrays: Any, key: jax.Array,
                        global_batch_size: int) -> dict:
  """Draws a step's whole global batch(es): what every device slices.

  Args:
    step_config: static configuration.
    sample_fn: ``dataset.sample_device_batch``.
    data_arrays: the dataset's arrays (where they live, the draw runs).
    key: PRNG key for this step's data.
    global_batch_size: the batch size over all devices.

  Returns:
    ``{'x': ...}`` and, when the auxiliary networks want it, ``{'x2': ...}``,
    each [global_batch_size, *observation_shape].
  """
  k1, k2 = jax.random.split(key)
  batch = {"x": sample_fn(data_arrays, k1, global_batch_size)}
  if step_config.auxiliary is not None and step_config.auxiliary.extra_batch:
    batch["x2"] = sample_fn(data_arrays, k2, global_batch_size)
  return batch


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
    ``{'x': ...}`` and, when the auxiliary networks want it, ``{'x2': ...}``.
  """
  index, count = device_position(step_config.axis_name)
  batch = sample_global_batch(step_config, sample_fn, data_arrays, key,
                              local_batch_size * count)
  return {k: local_slice(v, index, local_batch_size) for k, v in batch.items()}


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
    data_key, step_key = step_keys(state)
    batch = sample_train_batch(step_config, sample_fn, data_arrays, data_key,
                               local_batch_size)
    return train_step(step_config, state, batch, step_key)

  return jax.lax.scan(body, state, None, length=num_steps)


def step_keys(state: TrainState) -> tuple[jax.Array, jax.Array]:
  """The data key and the step key of the step ``state`` is at."""
  key = jax.random.fold_in(state.rng, state.step)
  data_key, step_key = jax.random.split(key)
  return data_key, step_key


def train_steps_on_batches(step_config: StepConfig, num_steps: int,
                           state: TrainState, batches: dict
                           ) -> tuple[TrainState, dict]:
  """``train_steps`` on batches drawn elsewhere (the host-side data path).

  Step ``s`` uses the step key of ``fold_in(state.rng, s)``, as in
  ``train_steps``; with batches drawn by ``sample_global_batch`` from that
  key's data key (``training.host_data``), the result is the same.

  Args:
    step_config: static configuration.
    num_steps: steps in this dispatch (static; the batches' leading axis).
    state: train state.
    batches: this device's shards, each [num_steps, local_batch, ...].

  Returns:
    ``(state, metrics)`` with every metric stacked over the steps.
  """

  def body(state, batch):
    _, step_key = step_keys(state)
    return train_step(step_config, state, batch, step_key)

  return jax.lax.scan(body, state, batches, length=num_steps)
