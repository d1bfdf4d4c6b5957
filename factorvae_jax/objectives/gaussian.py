"""Diagonal-Gaussian helpers used by every VAE objective."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


def sample_diag_gaussian(eps: jax.Array, mean: jax.Array,
                         logvar: jax.Array) -> jax.Array:
  """Reparameterised sample ``mean + exp(logvar / 2) * eps``."""
  return mean + jnp.exp(0.5 * logvar) * eps


def kl_to_standard_normal(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """Per-dimension KL(N(mean, exp(logvar)) || N(0, 1)), same shape as mean.

  KL = 0.5 * (mean^2 + exp(logvar) - logvar - 1).
  """
  return 0.5 * (jnp.square(mean) + jnp.exp(logvar) - logvar - 1.0)


def log_density_diag_gaussian(z: jax.Array, mean: jax.Array,
                              logvar: jax.Array) -> jax.Array:
  """Elementwise log N(z; mean, exp(logvar)) (broadcasts like its arguments)."""
  return -0.5 * (_LOG_2PI + logvar + jnp.square(z - mean) * jnp.exp(-logvar))
