"""DIP-VAE-I and DIP-VAE-II (Kumar et al., "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations", ICLR 2018).

    L = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)) + R(Cov)
    R(Cov) = lambda_od * sum_{i != j} Cov_ij^2 + lambda_d * sum_i (Cov_ii - 1)^2
    lambda_d = lambda_d_factor * lambda_od

    DIP-VAE-I:  Cov = Cov_batch[mu(x)]                   (covariance of the means)
    DIP-VAE-II: Cov = Cov_batch[mu(x)] + E_batch[diag(exp(logvar(x)))]
                (covariance of the aggregate posterior q(z))

As in disentanglement_lib: the covariance is the biased (1/M) batch estimate,
and the study uses lambda_d_factor = 10 for type I and 1 for type II while
sweeping lambda_od. The two types are separate objectives (the type is a
static choice, not an hparam).

Under pmap the covariance is taken over the global batch
(``parallel.gather_batch`` of mean and logvar), computed identically on every
device; see base.py.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp

from factorvae_jax import parallel
from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae

_TYPES = ("i", "ii")


def covariance(x: jax.Array) -> jax.Array:
  """Biased batch covariance E[x x^T] - E[x] E[x]^T of [M, D] -> [D, D]."""
  centred = x - jnp.mean(x, axis=0, keepdims=True)
  return centred.T @ centred / x.shape[0]


def aggregate_posterior_covariance(mean: jax.Array,
                                   logvar: jax.Array) -> jax.Array:
  """Cov_q[z] = Cov[mean] + E[diag(exp(logvar))] over the batch, [D, D]."""
  return covariance(mean) + jnp.diag(jnp.mean(jnp.exp(logvar), axis=0))


def dip_regulariser(cov: jax.Array, lambda_od: jax.Array,
                    lambda_d: jax.Array) -> tuple[jax.Array, jax.Array,
                                                  jax.Array]:
  """Returns (R, off-diagonal sum, diagonal sum) for a [D, D] covariance.

  R = lambda_od * sum_{i != j} cov_ij^2 + lambda_d * sum_i (cov_ii - 1)^2.
  """
  diag = jnp.diagonal(cov)
  off_diagonal = jnp.sum(jnp.square(cov - jnp.diag(diag)))
  diagonal = jnp.sum(jnp.square(diag - 1.0))
  return lambda_od * off_diagonal + lambda_d * diagonal, off_diagonal, diagonal


def make_compute_loss(dip_type: str):
  """The loss function of DIP-VAE type ``"i"`` or ``"ii"``."""
  if dip_type not in _TYPES:
    raise ValueError(f"dip_type={dip_type!r}; choose one of {_TYPES}.")

  def compute_loss(outputs: base.VAEOutputs,
                   hparams: Mapping[str, jax.Array], step: jax.Array,
                   axis_name: Optional[str]):
    """recon + KL + DIP regulariser; see the module docstring."""
    del step
    recon, kl = vae.reconstruction_and_kl(outputs)
    mean = parallel.gather_batch(outputs.mean, axis_name)
    if dip_type == "i":
      cov = covariance(mean)
    else:
      cov = aggregate_posterior_covariance(
          mean, parallel.gather_batch(outputs.logvar, axis_name))
    lambda_od = hparams["lambda_od"]
    reg, off_diagonal, diagonal = dip_regulariser(
        cov, lambda_od, hparams["lambda_d_factor"] * lambda_od)
    loss = recon + kl + reg
    return loss, vae.elbo_metrics(
        recon, kl, loss, dip_regulariser=reg, dip_off_diagonal=off_diagonal,
        dip_diagonal=diagonal)

  return compute_loss


DIP_VAE_I = base.Objective(
    name="dip_vae_i", hparam_names=("lambda_od", "lambda_d_factor"),
    compute_loss=make_compute_loss("i"))
DIP_VAE_II = base.Objective(
    name="dip_vae_ii", hparam_names=("lambda_od", "lambda_d_factor"),
    compute_loss=make_compute_loss("ii"))
