"""A trained VAE loaded from a workdir: encode, decode, per-dimension KL.

The public way for notebooks, reports and evaluation to use a run's model;
only the VAE's parameters are read from the checkpoint (never the auxiliary
networks or the optimiser states).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax.builder import run_config
from factorvae_jax.builder.checkpointing import Checkpointer
from factorvae_jax.models import Networks, make_networks
from factorvae_jax.objectives.gaussian import kl_to_standard_normal
from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir

# Most observations per encoder call.
_CHUNK = 500
#: Images per block of the encoder's convolutions inside one program on a CPU
#: (``make_gaussian_encoder``; docs/performance.md has the measurements).
CPU_ENCODE_BLOCK = 25


def encode_block_size(platform: Optional[str] = None) -> Optional[int]:
  """Images per block of the encoder's convolutions on ``platform`` (default
  ``jax.default_backend()``); None: the whole batch at once."""
  platform = platform or jax.default_backend()
  return CPU_ENCODE_BLOCK if platform == "cpu" else None


def make_gaussian_encoder(encoder, block: Optional[int] | str = "auto"):
  """``(params, images [n, ...]) -> (mean, logvar)``, each [n, D], in blocks.

  XLA:CPU runs each convolution over the whole batch before the next one,
  so on hundreds of images the activations (the first layer's output is
  128 KB per image) stream through memory between layers. Here the
  convolutions run on blocks of ``block`` images, one block after another
  inside the same program (``lax.map``), so a block's activations stay in
  cache; the fully connected layers then run once over all n images. Every
  layer computes each image alone, so the outputs are those of
  ``encoder.apply`` on the whole batch (bitwise on the CPUs measured; XLA
  may pick another summation order on another CPU, within float rounding).
  GPUs and TPUs want the whole batch: there ``block`` is None.

  Args:
    encoder: the ``Encoder`` module.
    block: images per block of the convolutions; "auto": the platform's
      (``encode_block_size``); None: the whole batch. A batch that ``block``
      does not divide runs whole.

  Returns:
    A pure function, to be jitted (or mapped over models) by the caller.
  """
  block = encode_block_size() if block == "auto" else block

  def encode(params, images):
    n = images.shape[0]
    if block is None or n <= block or n % block:
      return encoder.apply(params, images)
    blocks = images.reshape(n // block, block, *images.shape[1:])
    features = jax.lax.map(
        lambda b: encoder.apply(params, b, method="extract_features"), blocks)
    return encoder.apply(params, features.reshape(n, -1),
                         method="compute_moments")
  return encode


@functools.lru_cache(maxsize=16)
def _compiled(networks: Networks):
  """Jitted encode/decode of ``networks`` (compiled once per architecture)."""
  encode = jax.jit(make_gaussian_encoder(networks.encoder))
  decode = jax.jit(lambda p, z: jax.nn.sigmoid(networks.decoder.apply(p, z)))
  return encode, decode


def encode_in_chunks(encode: Any, encoder_params: Any, images,
                     chunk_size: int) -> Any:
  """Runs a jitted encoder over ``images`` in zero-padded chunks.

  Every call gets ``chunk_size`` images (the last chunk padded with zeros,
  its padding dropped from the outputs), so the encoder compiles once per
  chunk size whatever the number of images.

  Args:
    encode: jitted ``(encoder_params, images [chunk_size, ...]) -> outputs``
      (an array or a tuple of arrays, each with a leading batch axis).
    encoder_params: the encoder's parameters.
    images: float [N, H, W, C] (N >= 1).
    chunk_size: images per call.

  Returns:
    ``encode``'s outputs for all N images, as numpy, concatenated.
  """
  images = np.asarray(images, np.float32)
  outputs = []
  for start in range(0, len(images), chunk_size):
    chunk = images[start:start + chunk_size]
    n = len(chunk)
    if n < chunk_size:
      chunk = np.concatenate(
          [chunk, np.zeros((chunk_size - n, *chunk.shape[1:]), np.float32)])
    outputs.append(jax.tree.map(lambda a, n=n: np.asarray(a)[:n],
                                encode(encoder_params, chunk)))
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


@dataclasses.dataclass
class TrainedModel:
  """A VAE's networks and parameters, with numpy-in, numpy-out helpers.

  Attributes:
    networks: the encoder and decoder modules.
    vae_params: ``{'encoder': ..., 'decoder': ...}``.
    step: the training step of the parameters.
    config: the experiment config (None when built from parts).
    dataset: the run's ground-truth dataset (None when built from parts).
  """
  networks: Networks
  vae_params: Any
  step: int = 0
  config: Optional[ml_collections.ConfigDict] = None
  dataset: Optional[data_lib.GroundTruthData] = None

  def encode(self, images) -> tuple[np.ndarray, np.ndarray]:
    """Mean and log-variance of q(z|x).

    Args:
      images: float [N, H, W, C] in [0, 1].

    Returns:
      ``(mean, logvar)``, each [N, latent_dim].
    """
    encode, _ = _compiled(self.networks)
    # One chunk size per call site, so the encoder compiles once for it.
    mean, logvar = encode_in_chunks(encode, self.vae_params["encoder"],
                                    images, max(1, min(_CHUNK, len(images))))
    return mean, logvar

  def decode(self, z) -> np.ndarray:
    """Bernoulli means p(x|z) (pixel intensities in [0, 1]), [N, H, W, C]."""
    _, decode = _compiled(self.networks)
    return np.asarray(decode(self.vae_params["decoder"],
                             jnp.asarray(z, jnp.float32)))

  def kl_per_dim(self, images) -> np.ndarray:
    """KL(q(z|x) || N(0, I)) per latent dimension, averaged over ``images``."""
    mean, logvar = self.encode(images)
    return np.asarray(jnp.mean(kl_to_standard_normal(mean, logvar), axis=0))


def load_trained_model(workdir: str, step: Optional[int] = None
                       ) -> TrainedModel:
  """Loads the VAE of a training workdir (a single run or a sweep's run).

  Args:
    workdir: a directory written by ``train_and_evaluate``.
    step: checkpoint step (default: the newest).

  Returns:
    A ``TrainedModel`` with the run's config and dataset.

  Raises:
    FileNotFoundError: if ``workdir`` has no config.json or no checkpoint.
  """
  config = run_config.load_config(workdir)
  dataset = data_lib.make_dataset(config.data)
  networks = make_networks(config.model, dataset.observation_shape)
  vae_params, step = restore_vae_params(
      workdir, config, networks, dataset.observation_shape, step)
  return TrainedModel(networks=networks, vae_params=vae_params, step=step,
                      config=config, dataset=dataset)


def restore_vae_params(workdir: str, config, networks: Networks,
                       observation_shape, step: Optional[int] = None,
                       parts: tuple[str, ...] = ("encoder", "decoder")
                       ) -> tuple[dict, int]:
  """Reads only the VAE's ``parts`` from a workdir's checkpoint.

  Args:
    workdir: a training workdir.
    config: its config (for ``keep_checkpoints``).
    networks: the VAE's modules (for the parameter shapes).
    observation_shape: (H, W, C).
    step: checkpoint step (default: the newest).
    parts: which of 'encoder', 'decoder' to read.

  Returns:
    ``({part: params}, step)``.

  Raises:
    FileNotFoundError: naming the workdir and the command that trains it.
  """
  checkpointer = Checkpointer(run_dir.checkpoint_dir(workdir),
                              config.keep_checkpoints)
  try:
    step = checkpointer.latest_step() if step is None else int(step)
    if step is None:
      raise errors.NothingToDoError(
          f"{workdir}/checkpoints holds no checkpoint; train first with "
          f"python -m experiments.run --config=<config> --workdir={workdir}.")
    template = _vae_param_shapes(networks, tuple(observation_shape))
    restored = checkpointer.restore_part(
        {"vae_params": {p: template[p] for p in parts}}, step)
  finally:
    checkpointer.close()
  return restored["vae_params"], step


def _vae_param_shapes(networks: Networks, observation_shape) -> dict:
  """Shapes and dtypes of the VAE's parameters, without computing them."""
  def init():
    x = jnp.zeros((1, *observation_shape), jnp.float32)
    z = jnp.zeros((1, networks.encoder.latent_dim), jnp.float32)
    key = jax.random.PRNGKey(0)
    return {"encoder": networks.encoder.init(key, x),
            "decoder": networks.decoder.init(key, z)}
  return jax.eval_shape(init)
