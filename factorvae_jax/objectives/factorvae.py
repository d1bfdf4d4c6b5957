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

The discriminator is this objective's ``Auxiliary``: it is built from
``config.model`` (``disc_hidden``, ``disc_layers`` of the architecture preset),
trained with ``config.optim.disc_*`` Adam, and its update permutes the
latents of the whole (global) batch: those of an independent second batch
(``config.model.second_batch=True``, Kim & Mnih's Algorithm 1) or of the
step's own batch (``False``, disentanglement_lib).
"""

from __future__ import annotations

from typing import Mapping, Optional

import jax
import jax.numpy as jnp
import optax

from factorvae_jax import parallel
from factorvae_jax.models import make_discriminator
from factorvae_jax.monitoring import DiscriminatorWatch
from factorvae_jax.objectives import base
from factorvae_jax.objectives import vae

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
  recon, kl = vae.reconstruction_and_kl(outputs)
  tc = estimate_total_correlation(outputs.aux)
  loss = recon + kl + hparams["gamma"] * tc
  return loss, vae.elbo_metrics(recon, kl, loss, tc_estimate=tc)


def make_discriminator_optimizer(optim_config) -> optax.GradientTransformation:
  """Adam for the discriminator from ``config.optim.disc_*`` (paper: 1e-4,
  betas (0.5, 0.9))."""
  return optax.adam(optim_config.disc_learning_rate,
                    b1=optim_config.disc_beta1, b2=optim_config.disc_beta2,
                    eps=optim_config.adam_eps)


def make_auxiliary(config) -> base.Auxiliary:
  """The TC discriminator, its optimiser and its update, from ``config``.

  Args:
    config: the experiment config (``model``, ``optim`` and the
      ``disc_watch_*`` fields are read).

  Returns:
    The ``Auxiliary`` the train step runs after the VAE update.
  """
  network = make_discriminator(config.model)
  second_batch = bool(config.model.get("second_batch", True))

  def prepare(inputs: base.AuxiliaryInputs):
    k_eps2, k_perm = inputs.keys
    z_source = (inputs.sample_latents(inputs.batch["x2"], k_eps2)
                if second_batch else inputs.z)
    # Permute over the global batch so the product-of-marginals samples do
    # not depend on how the batch is split across devices.
    index, _ = parallel.device_position(inputs.axis_name)
    z_perm = parallel.local_slice(
        permute_dims(k_perm, parallel.gather_batch(z_source, inputs.axis_name)),
        index, inputs.z.shape[0])
    return inputs.z, z_perm

  def loss(params, data):
    z, z_perm = data
    return discriminator_loss(network.apply(params, z),
                              network.apply(params, z_perm))

  def make_watch(run_config) -> base.Watch:
    watch = DiscriminatorWatch(run_config.disc_watch_warmup_steps,
                               run_config.disc_watch_window_steps)
    return lambda step, scalars: watch.update(step, scalars["disc_accuracy"])

  return base.Auxiliary(
      network=network,
      optimizer=make_discriminator_optimizer(config.optim),
      extra_batch=second_batch,
      apply_for_vae=network.apply,
      prepare=prepare,
      loss=loss,
      make_watch=make_watch)


FACTOR_VAE = base.Objective(
    name="factor_vae", hparam_names=("gamma",), compute_loss=compute_loss,
    make_auxiliary=make_auxiliary,
    progress_metrics=("loss", "reconstruction", "kl", "tc_estimate",
                      "disc_accuracy"))
