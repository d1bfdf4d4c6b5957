"""AnnealedVAE / capacity-controlled beta-VAE (Burgess et al. 2018).

    L = E_q[-log p(x|z)] + gamma * | KL(q(z|x) || N(0, I)) - C(step) |
    C(step) = min(c_max, c_max * step / iteration_threshold)

C grows linearly from 0 (step 0) to ``c_max`` nats at ``iteration_threshold``
and stays there, as disentanglement_lib's ``anneal`` does; ``step`` is the
global step before the update. dlib's study uses gamma = 1000 and
iteration_threshold = 100000 and sweeps c_max.

Under pmap: |KL - C| is a non-linear function of the *batch-mean* KL, so the
mean of per-device |KL_local - C| differs from |KL_global - C| (the single-
device loss on the global batch). Per base.py's rule, the capacity term uses
the KL averaged over ``gather_batch`` of the per-example KLs; the logged
``kl`` stays the local mean like every other per-example metric.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp

from factorvae_jax import parallel
from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae


def capacity(step: jax.Array, c_max: jax.Array,
             iteration_threshold: jax.Array) -> jax.Array:
  """C(step) = min(c_max, c_max * step / iteration_threshold), in nats."""
  step = jnp.asarray(step, jnp.float32)
  return jnp.minimum(c_max, c_max * step / iteration_threshold)


def compute_loss(outputs: base.VAEOutputs, hparams: Mapping[str, jax.Array],
                 step: jax.Array, axis_name: Optional[str]):
  """recon + gamma * |KL - C(step)|; see the module docstring."""
  recon, kl = vae.reconstruction_and_kl(outputs)
  kl_global = jnp.mean(parallel.gather_batch(
      vae.kl_per_example(outputs.mean, outputs.logvar), axis_name))
  c = capacity(step, hparams["c_max"], hparams["iteration_threshold"])
  gap = jnp.abs(kl_global - c)
  loss = recon + hparams["gamma"] * gap
  return loss, vae.elbo_metrics(recon, kl, loss, capacity=c,
                                capacity_gap=gap)


ANNEALED_VAE = base.Objective(
    name="annealed_vae", hparam_names=("gamma", "c_max", "iteration_threshold"),
    compute_loss=compute_loss)
