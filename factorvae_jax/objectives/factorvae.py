"""FactorVAE (Kim & Mnih, "Disentangling by Factorising", ICML 2018).

VAE loss (minimised by the VAE optimiser):

    L_vae = E[-log p(x|z)] + KL(q(z|x) || N(0, I)) + gamma * TC_hat
    TC_hat = mean_i [ D(z_i)_0 - D(z_i)_1 ]      (logits of the discriminator)

``D(z)_0 - D(z)_1 = log(D_0 / (1 - D_0))`` estimates log q(z) / prod_j q(z_j),
whose expectation under q(z) is the total correlation.

Discriminator loss (minimised by the discriminator optimiser):

    L_D = 0.5 * [ CE(D(z), label 0) + CE(D(z_perm), label 1) ]

**Label convention: class 0 = samples of the joint q(z); class 1 = samples of
the product of marginals** (each latent dimension permuted independently across
the batch). Swapping the labels flips the sign of the TC estimate and turns the
penalty into a reward; other implementations disagree here, so check before
porting a discriminator.
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from factorvae_jax.objectives import base
from factorvae_jax.objectives.gaussian import kl_to_standard_normal
from factorvae_jax.objectives.reconstruction import bernoulli_reconstruction

JOINT_LABEL = 0
PERMUTED_LABEL = 1


def estimate_total_correlation(disc_logits: jax.Array) -> jax.Array:
  """Density-ratio TC estimate mean(logit_0 - logit_1) over the batch."""
  return jnp.mean(disc_logits[:, JOINT_LABEL] - disc_logits[:, PERMUTED_LABEL])


def permute_dims(key: jax.Array, z: jax.Array) -> jax.Array:
  """Permutes every latent dimension independently across the batch.

  Args:
    key: PRNG key (one independent permutation per dimension is drawn from it).
    z: [B, D] latent samples.

  Returns:
    [B, D] samples whose dimensions are independent: a sample of the product
    of the marginals of the batch's empirical distribution.
  """
  keys = jax.random.split(key, z.shape[1])
  perms = jax.vmap(lambda k: jax.random.permutation(k, z.shape[0]))(keys)
  return jnp.take_along_axis(z, perms.T, axis=0)


def discriminator_loss(logits_joint: jax.Array,
                       logits_permuted: jax.Array) -> tuple[jax.Array, dict]:
  """0.5 * [CE(D(z), 0) + CE(D(z_perm), 1)] from logits, plus accuracies.

  Args:
    logits_joint: discriminator logits on samples of q(z), [B, 2].
    logits_permuted: discriminator logits on permuted samples, [B, 2].

  Returns:
    (loss, metrics) with metrics ``disc_loss``, ``disc_accuracy`` (mean of the
    two per-class accuracies), ``disc_prob_joint`` (mean D_0 on joint samples).
  """
  ce_joint = optax.softmax_cross_entropy_with_integer_labels(
      logits_joint, jnp.full(logits_joint.shape[:1], JOINT_LABEL))
  ce_perm = optax.softmax_cross_entropy_with_integer_labels(
      logits_permuted, jnp.full(logits_permuted.shape[:1], PERMUTED_LABEL))
  loss = 0.5 * (jnp.mean(ce_joint) + jnp.mean(ce_perm))
  acc = 0.5 * (
      jnp.mean(jnp.argmax(logits_joint, -1) == JOINT_LABEL) +
      jnp.mean(jnp.argmax(logits_permuted, -1) == PERMUTED_LABEL))
  prob_joint = jnp.mean(jax.nn.softmax(logits_joint)[:, JOINT_LABEL])
  return loss, {"disc_loss": loss, "disc_accuracy": acc,
                "disc_prob_joint": prob_joint}


def compute_loss(outputs: base.VAEOutputs, hparams: Mapping[str, jax.Array],
                 step: jax.Array, axis_name: Optional[str]):
  """FactorVAE's VAE loss; see the module docstring."""
  del step, axis_name  # Every term is a per-example mean.
  recon = bernoulli_reconstruction(outputs.logits, outputs.images)
  kl = jnp.mean(jnp.sum(kl_to_standard_normal(outputs.mean, outputs.logvar), 1))
  tc = estimate_total_correlation(outputs.disc_logits)
  loss = recon + kl + hparams["gamma"] * tc
  return loss, {"reconstruction": recon, "kl": kl, "tc_estimate": tc,
                "elbo": -(recon + kl), "loss": loss}


FACTOR_VAE = base.Objective(
    name="factor_vae", hparam_names=("gamma",), compute_loss=compute_loss,
    uses_discriminator=True)
