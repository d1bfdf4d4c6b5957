"""The train state: both parameter sets, both optimiser states, step and key."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import optax

from factorvae_jax.models.architectures import Networks
from factorvae_jax.objectives.base import Objective


@flax.struct.dataclass
class TrainState:
  """Everything that evolves during training (and is checkpointed).

  Attributes:
    step: int32 scalar, the number of updates applied so far.
    vae_params: ``{'encoder': ..., 'decoder': ...}``.
    disc_params: the discriminator's parameters (``{}`` if the objective uses
      none).
    vae_opt_state: optax state of the VAE optimiser.
    disc_opt_state: optax state of the discriminator optimiser.
    hparams: the objective's float hyperparameters (``{'gamma': 35.}``);
      part of the state so ``jax.vmap`` can train models with different values.
    rng: base PRNG key (uint32[2]); step ``s`` uses ``fold_in(rng, s)``, which
      makes resuming exact.
  """
  step: jax.Array
  vae_params: Any
  disc_params: Any
  vae_opt_state: Any
  disc_opt_state: Any
  hparams: Any
  rng: jax.Array


@dataclasses.dataclass(frozen=True)
class StepConfig:
  """Static parts of the train step (hashable; closed over, never traced).

  Attributes:
    networks: the Flax modules.
    objective: the VAE objective.
    vae_tx: VAE optimiser.
    disc_tx: discriminator optimiser (unused without a discriminator).
    second_batch: FactorVAE only. True (Kim & Mnih's Algorithm 1): the
      permuted samples come from an independent second batch. False
      (disentanglement_lib): they come from permuting the first batch.
    axis_name: pmap axis name, or None when the step is not pmapped.
  """
  networks: Networks
  objective: Objective
  vae_tx: optax.GradientTransformation
  disc_tx: optax.GradientTransformation
  second_batch: bool = True
  axis_name: Optional[str] = None

  @property
  def uses_discriminator(self) -> bool:
    return self.objective.uses_discriminator


def make_optimizers(config) -> tuple[optax.GradientTransformation,
                                     optax.GradientTransformation]:
  """Adam optimisers for the VAE and the discriminator from ``config.optim``."""
  o = config.optim
  vae_tx = optax.adam(o.vae_learning_rate, b1=o.vae_beta1, b2=o.vae_beta2,
                      eps=o.adam_eps)
  disc_tx = optax.adam(o.disc_learning_rate, b1=o.disc_beta1,
                       b2=o.disc_beta2, eps=o.adam_eps)
  return vae_tx, disc_tx


def read_hparams(objective: Objective, model_config) -> dict:
  """Reads the objective's float hyperparameters from ``config.model``.

  Raises:
    ValueError: if a hyperparameter the objective needs is not in the config.
  """
  missing = [n for n in objective.hparam_names if n not in model_config]
  if missing:
    raise ValueError(
        f"model {objective.name!r} needs config.model.{missing[0]} (all of "
        f"{list(objective.hparam_names)}); add it to the config file.")
  return {n: jnp.asarray(model_config[n], jnp.float32)
          for n in objective.hparam_names}


def create_train_state(step_config: StepConfig, key: jax.Array,
                       observation_shape, hparams: dict) -> TrainState:
  """Initialises parameters and optimiser states.

  Args:
    step_config: the static step configuration.
    key: PRNG key; split into init keys and the base training key.
    observation_shape: (H, W, C).
    hparams: the objective's hyperparameters (float scalars).

  Returns:
    A ``TrainState`` at step 0.
  """
  k_enc, k_dec, k_disc, k_train = jax.random.split(key, 4)
  nets = step_config.networks
  x = jnp.zeros((1, *observation_shape), jnp.float32)
  enc_params = nets.encoder.init(k_enc, x)
  z = jnp.zeros((1, nets.encoder.latent_dim), jnp.float32)
  dec_params = nets.decoder.init(k_dec, z)
  vae_params = {"encoder": enc_params, "decoder": dec_params}
  disc_params = (nets.discriminator.init(k_disc, z)
                 if step_config.uses_discriminator else {})
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      vae_params=vae_params,
      disc_params=disc_params,
      vae_opt_state=step_config.vae_tx.init(vae_params),
      disc_opt_state=step_config.disc_tx.init(disc_params),
      hparams={k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()},
      rng=k_train)
