"""Tiny networks and data shared by the training tests."""

import jax
import jax.numpy as jnp
import ml_collections

from factorvae_jax.builder import build_step_config
from factorvae_jax.builder.state import create_train_state

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
  """The builder's StepConfig of a tiny model (Adam as the configs set it)."""
  config = ml_collections.ConfigDict({
      "model": tiny_model_config(name=name, second_batch=second_batch,
                                 **overrides),
      "optim": dict(vae_learning_rate=vae_lr, vae_beta1=0.9, vae_beta2=0.999,
                    disc_learning_rate=disc_lr, disc_beta1=0.5,
                    disc_beta2=0.9, adam_eps=1e-8)})
  return build_step_config(config, OBS_SHAPE, axis_name=axis_name)


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
