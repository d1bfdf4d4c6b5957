"""beta-TCVAE (Chen et al., "Isolating Sources of Disentanglement in VAEs",
NeurIPS 2018), in disentanglement_lib's form.

    L = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)) + (beta - 1) * TC_hat

The KL is the closed form. It already contains one unit of total correlation
TC = KL(q(z) || prod_j q(z_j)) (KL = index-code MI + TC + dimension-wise KL),
so the extra (beta - 1) * TC weights TC by beta in all; beta = 1 is the VAE.

TC_hat: minibatch-weighted sampling (MWS) on a batch of M samples z_i ~ q(z|x_i)

    log q(z_i)     ~ logsumexp_j log q(z_i | x_j)               - log(N M)
    log q_d(z_id)  ~ logsumexp_j log q_d(z_id | x_j)            - log(N M)
    TC_hat = mean_i [ log q(z_i) - sum_d log q_d(z_id) ]

with N the dataset size. disentanglement_lib drops the log(N M) terms; that
shifts TC_hat by the constant -(D - 1) log(N M) and changes no gradient. We
follow dlib by default (hparam ``dataset_size = 0``); ``dataset_size = N > 0``
adds (D - 1) log(N M) back, giving the value of Chen et al.'s MWS estimator
(their reference code's ``logqz``/``logqz_prodmarginals``). Only the logged
``tc_estimate`` and ``loss`` values change, never the gradient.

(With ``dataset_size = 1`` the correction is (D - 1) log M: TC_hat is then the
plug-in TC of the minibatch aggregate posterior (1/M) sum_j q(z|x_j), which is
what tests/test_objectives.py checks against an analytic Gaussian TC.)

Under pmap the estimator needs the whole batch: z, mean and logvar are
gathered (``parallel.gather_batch``) and TC_hat is computed identically on every
device, with M the global batch size; see base.py for why the gradient then
matches the single-device one after ``pmean``.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp

from factorvae_jax import parallel
from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae
from factorvae_jax.objectives.gaussian import log_density_diag_gaussian


def total_correlation(z: jax.Array, mean: jax.Array,
                      logvar: jax.Array) -> jax.Array:
  """dlib's minibatch TC estimate (no log(N M) terms); see module docstring.

  Args:
    z: samples z_i ~ q(z|x_i), [M, D].
    mean: means of q(z|x_j), [M, D].
    logvar: log-variances of q(z|x_j), [M, D].

  Returns:
    Scalar mean_i [logsumexp_j sum_d log q(z_id|x_j)
                   - sum_d logsumexp_j log q(z_id|x_j)].
  """
  # [i, j, d] = log q_d(z_id | x_j).
  log_q = log_density_diag_gaussian(z[:, None, :], mean[None, :, :],
                                    logvar[None, :, :])
  log_qz = logsumexp(jnp.sum(log_q, axis=2), axis=1)
  log_qz_product = jnp.sum(logsumexp(log_q, axis=1), axis=1)
  return jnp.mean(log_qz - log_qz_product)


def mws_correction(num_latents: int, batch_size: int,
                   dataset_size: jax.Array) -> jax.Array:
  """(D - 1) * log(N * M) when ``dataset_size`` N > 0, else 0 (dlib's form)."""
  n = jnp.asarray(dataset_size, jnp.float32)
  log_nm = jnp.log(jnp.maximum(n, 1.0)) + jnp.log(float(batch_size))
  return jnp.where(n > 0, (num_latents - 1) * log_nm, 0.0)


def compute_loss(outputs: base.VAEOutputs, hparams: Mapping[str, jax.Array],
                 step: jax.Array, axis_name: Optional[str]):
  """recon + KL + (beta - 1) * TC_hat; see the module docstring."""
  del step
  recon, kl = vae.reconstruction_and_kl(outputs)
  z = parallel.gather_batch(outputs.z, axis_name)
  mean = parallel.gather_batch(outputs.mean, axis_name)
  logvar = parallel.gather_batch(outputs.logvar, axis_name)
  tc = total_correlation(z, mean, logvar) + mws_correction(
      z.shape[1], z.shape[0], hparams["dataset_size"])
  loss = recon + kl + (hparams["beta"] - 1.0) * tc
  return loss, vae.elbo_metrics(recon, kl, loss, tc_estimate=tc)


BETA_TCVAE = base.Objective(
    name="beta_tcvae", hparam_names=("beta", "dataset_size"),
    compute_loss=compute_loss)
