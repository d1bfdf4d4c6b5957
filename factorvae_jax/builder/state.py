"""The train state: both parameter sets, both optimiser states, step and key."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import flax
import jax
import jax.numpy as jnp
import optax

from factorvae_jax.models.architectures import Networks
from factorvae_jax.objectives.base import Auxiliary, Objective
from factorvae_jax.utils import errors


@flax.struct.dataclass
class TrainState:
  """Everything that evolves during training (and is checkpointed).

  Attributes:
    step: int32 scalar, the number of updates applied so far.
    vae_params: ``{'encoder': ..., 'decoder': ...}``.
    disc_params: the parameters of the objective's auxiliary networks
      (FactorVAE: the discriminator; ``{}`` for an objective without any).
      The name predates ``Auxiliary`` and is kept so that older checkpoints
      restore.
    vae_opt_state: optax state of the VAE optimiser.
    disc_opt_state: optax state of the auxiliary optimiser.
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
    networks: the VAE's Flax modules.
    objective: the VAE objective.
    vae_tx: VAE optimiser.
    auxiliary: the objective's auxiliary networks and their update (FactorVAE:
      the discriminator), or None.
    axis_name: pmap axis name, or None when the step is not pmapped.
  """
  networks: Networks
  objective: Objective
  vae_tx: optax.GradientTransformation
  auxiliary: Optional[Auxiliary] = None
  axis_name: Optional[str] = None


def make_vae_optimizer(optim_config) -> optax.GradientTransformation:
  """Adam for the VAE from ``config.optim.vae_*`` (paper: 1e-4, (0.9, 0.999))."""
  return optax.adam(optim_config.vae_learning_rate, b1=optim_config.vae_beta1,
                    b2=optim_config.vae_beta2, eps=optim_config.adam_eps)


def read_hparams(objective: Objective, model_config) -> dict:
  """Reads the objective's float hyperparameters from ``config.model``.

  Raises:
    ValueError: if a hyperparameter the objective needs is not in the config.
  """
  missing = [n for n in objective.hparam_names if n not in model_config]
  if missing:
    raise errors.InvalidValueError(
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
  k_enc, k_dec, k_aux, k_train = jax.random.split(key, 4)
  nets = step_config.networks
  aux = step_config.auxiliary
  x = jnp.zeros((1, *observation_shape), jnp.float32)
  enc_params = nets.encoder.init(k_enc, x)
  z = jnp.zeros((1, nets.encoder.latent_dim), jnp.float32)
  dec_params = nets.decoder.init(k_dec, z)
  vae_params = {"encoder": enc_params, "decoder": dec_params}
  if aux is None:
    # An Adam state of no parameters: the layout every checkpoint has had
    # since the first release, so older runs of these models still restore.
    disc_params = {}
    disc_opt_state = optax.adam(0.0).init(disc_params)
  else:
    disc_params = aux.init(k_aux, nets.encoder.latent_dim)
    disc_opt_state = aux.optimizer.init(disc_params)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      vae_params=vae_params,
      disc_params=disc_params,
      vae_opt_state=step_config.vae_tx.init(vae_params),
      disc_opt_state=disc_opt_state,
      hparams={k: jnp.asarray(v, jnp.float32) for k, v in hparams.items()},
      rng=k_train)
