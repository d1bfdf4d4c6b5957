"""beta-VAE (Higgins et al., ICLR 2017).

    L = E_q[-log p(x|z)] + beta * KL(q(z|x) || N(0, I))

As in disentanglement_lib (``BetaVAE``): the KL is the closed form for a
diagonal Gaussian, summed over latent dimensions and averaged over the batch.
beta = 1 is the plain VAE.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax

from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae


def compute_loss(outputs: base.VAEOutputs, hparams: Mapping[str, jax.Array],
                 step: jax.Array, axis_name: Optional[str]):
  """recon + beta * KL; see the module docstring."""
  del step, axis_name  # Per-example terms only.
  recon, kl = vae.reconstruction_and_kl(outputs)
  loss = recon + hparams["beta"] * kl
  return loss, vae.elbo_metrics(recon, kl, loss)


BETA_VAE = base.Objective(
    name="beta_vae", hparam_names=("beta",), compute_loss=compute_loss)
