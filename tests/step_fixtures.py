"""Tiny networks and data shared by the training tests."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from factorvae_jax.models import make_networks
from factorvae_jax.objectives import get_objective
from factorvae_jax.training.train_state import StepConfig, create_train_state

OBS_SHAPE = (16, 16, 1)


def tiny_model_config(**overrides):
  base = dict(name="factor_vae", architecture="paper", latent_dim=3,
              gamma=6.0, encoder_channels=(4, 4), encoder_kernels=(4, 4),
              encoder_hidden=8, decoder_hidden=8, decoder_channels=(4,),
              disc_hidden=16, disc_layers=2)
  base.update(overrides)
  return ml_collections.ConfigDict(base)


def make_step_config(axis_name=None, second_batch=True, name="factor_vae",
                     vae_lr=1e-3, disc_lr=1e-3, **overrides):
  mc = tiny_model_config(name=name, **overrides)
  objective = get_objective(name)
  nets = make_networks(mc, OBS_SHAPE, objective.uses_discriminator)
  return StepConfig(nets, objective, optax.adam(vae_lr),
                    optax.adam(disc_lr, b1=0.5, b2=0.9),
                    second_batch=second_batch, axis_name=axis_name)


def make_state(step_config, seed=0, **hparams):
  hparams = hparams or {"gamma": 6.0}
  return create_train_state(step_config, jax.random.PRNGKey(seed), OBS_SHAPE,
                            hparams)


def random_images(key, n):
  return (jax.random.uniform(key, (n, *OBS_SHAPE)) > 0.7).astype(jnp.float32)


def sample_random_images(arrays, key, n):
  """A ``sample_device_batch`` stand-in: random binary images."""
  del arrays
  return random_images(key, n)
