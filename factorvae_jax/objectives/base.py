"""The objective interface: one model = one file that builds an ``Objective``.

An objective turns what the shared train step computed (encoder outputs, the
latent sample, decoder logits, and for FactorVAE the discriminator's logits on
that sample) into the VAE loss and the scalars to log.

Hyperparameters that a sweep varies (``beta``, ``gamma``, ...) are passed as a
dict of float arrays ``hparams`` rather than baked in, so the train step can be
``jax.vmap``-ed over models with different values. Names in ``hparam_names``
are read from ``config.model`` when the train state is created.

Data parallelism: under ``pmap`` each device holds a shard of the global batch.
Per-example terms are averaged over the local shard (the step's ``pmean`` of
gradients turns that into the global mean). Terms that need statistics of the
whole batch (beta-TCVAE's minibatch estimator, DIP-VAE's covariance) must be
computed on ``gather_batch(x, axis_name)``, identically on every device: the
transpose of ``all_gather`` sums the cotangents of the replicated loss, so after
``pmean`` the gradient equals the single-device gradient on the global batch.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

import flax
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class VAEOutputs:
  """What the shared step hands to an objective (all for the local shard).

  Attributes:
    images: targets in [0, 1], [B, H, W, C].
    mean: mean of q(z|x), [B, D].
    logvar: log-variance of q(z|x), [B, D].
    z: reparameterised sample z ~ q(z|x), [B, D].
    logits: decoder Bernoulli logits of p(x|z), [B, H, W, C].
    disc_logits: discriminator logits on ``z`` ([B, 2], column 0 = "joint
      q(z)", column 1 = "product of marginals"), or None if the objective
      uses no discriminator.
  """
  images: jax.Array
  mean: jax.Array
  logvar: jax.Array
  z: jax.Array
  logits: jax.Array
  disc_logits: Optional[jax.Array] = None


# (outputs, hparams, step, axis_name) -> (loss, {name: scalar})
LossFn = Callable[[VAEOutputs, Mapping[str, jax.Array], jax.Array,
                   Optional[str]], tuple[jax.Array, dict]]


@dataclasses.dataclass(frozen=True)
class Objective:
  """A VAE objective.

  Attributes:
    name: the ``config.model.name`` that selects it.
    hparam_names: float hyperparameters read from ``config.model`` into
      ``state.hparams`` (vmappable).
    compute_loss: ``(outputs, hparams, step, axis_name) -> (loss, metrics)``;
      ``loss`` is the scalar minimised by the VAE optimiser, ``metrics`` the
      scalars to log (must include ``reconstruction`` and ``kl``).
    uses_discriminator: whether the step trains a TC discriminator (FactorVAE).
  """
  name: str
  hparam_names: tuple[str, ...]
  compute_loss: LossFn
  uses_discriminator: bool = False


def gather_batch(x: jax.Array, axis_name: Optional[str]) -> jax.Array:
  """Returns the global batch of ``x`` (concatenated in device order).

  Args:
    x: local shard, [B_local, ...].
    axis_name: the pmap axis name, or None outside pmap.

  Returns:
    [B_global, ...]; ``x`` itself when ``axis_name`` is None.
  """
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, tiled=True)


def global_mean(x: jax.Array, axis_name: Optional[str]) -> jax.Array:
  """Mean over devices of a per-device scalar (identity outside pmap)."""
  if axis_name is None:
    return x
  return jax.lax.pmean(x, axis_name)
