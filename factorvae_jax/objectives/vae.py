"""Plain VAE (Kingma & Welling 2014): the negative ELBO.

    L = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I))

Both terms are per-example, averaged over the (local) batch, so no statistic
of the whole batch is needed under pmap. The helpers here are shared by the
other baseline objectives.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp

from factorvae_jax.objectives import base
from factorvae_jax.objectives.gaussian import kl_to_standard_normal
from factorvae_jax.objectives.reconstruction import bernoulli_reconstruction


def kl_per_example(mean: jax.Array, logvar: jax.Array) -> jax.Array:
  """KL(q(z|x) || N(0, I)) summed over latent dimensions, [B, D] -> [B]."""
  return jnp.sum(kl_to_standard_normal(mean, logvar), axis=1)


def reconstruction_and_kl(
    outputs: base.VAEOutputs) -> tuple[jax.Array, jax.Array]:
  """Returns (reconstruction, kl): batch means of the two ELBO terms."""
  recon = bernoulli_reconstruction(outputs.logits, outputs.images)
  kl = jnp.mean(kl_per_example(outputs.mean, outputs.logvar))
  return recon, kl


def elbo_metrics(recon: jax.Array, kl: jax.Array, loss: jax.Array,
                 **extra: jax.Array) -> dict:
  """The metrics every objective logs, plus model-specific ``extra`` ones."""
  return {"reconstruction": recon, "kl": kl, "elbo": -(recon + kl),
          "loss": loss, **extra}


def compute_loss(outputs: base.VAEOutputs, hparams: Mapping[str, jax.Array],
                 step: jax.Array, axis_name: Optional[str]):
  """Negative ELBO; see the module docstring."""
  del hparams, step, axis_name  # No hyperparameters; per-example terms only.
  recon, kl = reconstruction_and_kl(outputs)
  loss = recon + kl
  return loss, elbo_metrics(recon, kl, loss)


VAE = base.Objective(name="vae", hparam_names=(), compute_loss=compute_loss)
