"""The objective interface: one model = one file that builds an ``Objective``.

An objective turns what the shared train step computed (encoder outputs, the
latent sample, decoder logits, and what its auxiliary networks say about that
sample) into the VAE loss and the scalars to log. An objective that trains
networks beside the VAE (FactorVAE's total-correlation discriminator) also
owns them through an ``Auxiliary``: the network, its optimiser, whether each
step draws an extra batch, the auxiliary loss and the watch on its metrics.
The train step only calls these, so no model's algorithm lives in
``training/``.

Hyperparameters that a sweep varies (``beta``, ``gamma``, ...) are passed as a
dict of float arrays ``hparams`` rather than baked in, so the train step can be
``jax.vmap``-ed over models with different values. Names in ``hparam_names``
are read from ``config.model`` when the train state is created.

Data parallelism: under ``pmap`` each device holds a shard of the global batch.
Per-example terms are averaged over the local shard (the step's ``pmean`` of
gradients turns that into the global mean). Terms that need statistics of the
whole batch (beta-TCVAE's minibatch estimator, DIP-VAE's covariance) must be
computed on ``parallel.gather_batch(x, axis_name)``, identically on every
device: the transpose of ``all_gather`` sums the cotangents of the replicated
loss, so after ``pmean`` the gradient equals the single-device gradient on the
global batch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class VAEOutputs:
  """What the shared step hands to an objective (all for the local shard).

  Attributes:
    images: targets in [0, 1], [B, H, W, C].
    mean: mean of q(z|x), [B, D].
    logvar: log-variance of q(z|x), [B, D].
    z: reparameterised sample z ~ q(z|x), [B, D].
    logits: decoder Bernoulli logits of p(x|z), [B, H, W, C].
    aux: what the objective's auxiliary networks computed on ``z``
      (``Auxiliary.apply_for_vae``; FactorVAE: the discriminator's logits
      [B, 2]), or None for an objective without auxiliary networks.
  """
  images: jax.Array
  mean: jax.Array
  logvar: jax.Array
  z: jax.Array
  logits: jax.Array
  aux: Any = None


# (outputs, hparams, step, axis_name) -> (loss, {name: scalar})
LossFn = Callable[[VAEOutputs, Mapping[str, jax.Array], jax.Array,
                   Optional[str]], tuple[jax.Array, dict]]

# (step, logged scalars) -> a warning to log, or None.
Watch = Callable[[int, Mapping[str, float]], Optional[str]]


@flax.struct.dataclass
class AuxiliaryInputs:
  """What the train step hands to ``Auxiliary.prepare`` (local shard).

  Attributes:
    z: the VAE's latent sample of this step, gradient stopped, [B, D].
    batch: this step's batch (``'x'`` and, with ``extra_batch``, ``'x2'``).
    keys: two PRNG keys for the auxiliary update (one array, [2, ...]).
    sample_latents: ``(images, key) -> z``: encodes ``images`` with the VAE
      parameters of this step and samples z ~ q(z|x) with noise drawn for the
      global batch (gradient stopped).
    axis_name: the pmap axis name, or None.
  """
  z: jax.Array
  batch: Mapping[str, jax.Array]
  keys: jax.Array
  sample_latents: Callable = flax.struct.field(pytree_node=False)
  axis_name: Optional[str] = flax.struct.field(pytree_node=False, default=None)


@dataclasses.dataclass(frozen=True)
class Auxiliary:
  """Networks an objective trains beside the VAE, with their own optimiser.

  Both updates of a step start from the parameters as they were before it
  (Kim & Mnih's Algorithm 1): the VAE loss sees ``apply_for_vae`` with the old
  auxiliary parameters, and the auxiliary loss sees the VAE's old sample.

  Attributes:
    network: the Flax module, applied to latents [B, D].
    optimizer: optax transformation for its parameters.
    extra_batch: whether each step also draws an independent batch ``'x2'``.
    apply_for_vae: ``(params, z) -> aux``, stored in ``VAEOutputs.aux`` for
      the VAE loss (gradients flow to ``z``, never to ``params``).
    prepare: ``AuxiliaryInputs -> data`` for the auxiliary loss, computed once
      outside its gradient (e.g. FactorVAE's permuted latents).
    loss: ``(params, data) -> (loss, metrics)`` minimised by ``optimizer``.
    make_watch: ``config -> Watch`` that checks the logged metrics, or None.
  """
  network: nn.Module
  optimizer: optax.GradientTransformation
  extra_batch: bool
  apply_for_vae: Callable[[Any, jax.Array], Any]
  prepare: Callable[[AuxiliaryInputs], Any]
  loss: Callable[[Any, Any], tuple[jax.Array, dict]]
  make_watch: Optional[Callable[[Any], Watch]] = None

  def init(self, key: jax.Array, latent_dim: int) -> Any:
    """Initial parameters of ``network`` for latents of size ``latent_dim``."""
    return self.network.init(key, jnp.zeros((1, latent_dim), jnp.float32))


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
    make_auxiliary: ``config -> Auxiliary`` for an objective that trains
      networks beside the VAE (FactorVAE), else None.
    progress_metrics: the logged scalars the progress bar shows.
  """
  name: str
  hparam_names: tuple[str, ...]
  compute_loss: LossFn
  make_auxiliary: Optional[Callable[[Any], Auxiliary]] = None
  progress_metrics: tuple[str, ...] = ("loss", "reconstruction", "kl")
