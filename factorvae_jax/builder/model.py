"""From a config to what training and evaluation run: networks, objective,
optimisers and the initial train state."""

from __future__ import annotations

from typing import Optional

import jax
import ml_collections

from factorvae_jax import objectives
from factorvae_jax.builder.state import StepConfig, TrainState, create_train_state, make_vae_optimizer, read_hparams
from factorvae_jax.models import make_networks

#: The pmap axis name of the training step.
AXIS_NAME = "batch"


def build_step_config(config: ml_collections.ConfigDict, observation_shape,
                      axis_name: Optional[str] = AXIS_NAME) -> StepConfig:
  """Networks, objective (with its auxiliary networks) and VAE optimiser.

  Args:
    config: an experiment config.
    observation_shape: (H, W, C) of the dataset's observations.
    axis_name: the pmap axis name the step runs under, or None.

  Returns:
    The static ``StepConfig`` of the train step.

  Raises:
    ValueError: if ``config.model.name``, its architecture or its
      ``conv_impl`` is unknown.
  """
  objective = objectives.get_objective(config.model.name)
  # make_networks resolves config.model.conv_impl ('auto': the fast layer
  # forms on CPU, Flax's nn.Conv / nn.ConvTranspose on GPU/TPU) here, at
  # build time, from jax.default_backend().
  networks = make_networks(config.model, tuple(observation_shape))
  auxiliary = (objective.make_auxiliary(config)
               if objective.make_auxiliary is not None else None)
  return StepConfig(networks=networks, objective=objective,
                    vae_tx=make_vae_optimizer(config.optim),
                    auxiliary=auxiliary, axis_name=axis_name)


def init_state(config: ml_collections.ConfigDict, step_config: StepConfig,
               observation_shape) -> TrainState:
  """The step-0 train state of ``config`` (parameters from ``config.seed``)."""
  # Jitted, initialisation compiles once instead of op by op (about half the
  # start-up time; the parameters are bit-identical, docs/performance.md).
  return jax.jit(create_train_state, static_argnums=(0, 2))(
      step_config, jax.random.PRNGKey(config.seed), tuple(observation_shape),
      read_hparams(step_config.objective, config.model))
