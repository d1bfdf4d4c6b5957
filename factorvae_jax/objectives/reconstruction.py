"""Reconstruction terms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def bernoulli_reconstruction(logits: jax.Array, images: jax.Array) -> jax.Array:
  """Bernoulli negative log-likelihood summed over pixels, averaged over batch.

  Computed from logits (``optax.sigmoid_binary_cross_entropy`` is the stable
  ``max(l, 0) - l * x + log(1 + exp(-|l|))``), so it is finite for any logit.
  Targets may be continuous in [0, 1] (3D Shapes), as in disentanglement_lib.

  Args:
    logits: decoder logits, [B, H, W, C].
    images: targets in [0, 1], same shape.

  Returns:
    Scalar: mean over the batch of the per-image summed cross-entropy.
  """
  per_pixel = optax.sigmoid_binary_cross_entropy(logits, images)
  return jnp.mean(jnp.sum(per_pixel.reshape(per_pixel.shape[0], -1), axis=1))
