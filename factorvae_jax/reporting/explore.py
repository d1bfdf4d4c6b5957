"""Looking at a trained model: its active latents, own images, latent walks.

Everything here takes a model with ``encode(images) -> (mean, logvar)`` and
``decode(z) -> images`` (``factorvae_jax.builder.TrainedModel``), numpy in and
out, and returns uint8 pictures for ``save_png``, a notebook or the report.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from factorvae_jax.objectives.gaussian import kl_to_standard_normal
from factorvae_jax.visualisation import grids

# Dimensions whose mean KL to the prior is below this many nats carry
# (almost) no information about the input: a collapsed, inactive latent.
DEFAULT_ACTIVE_KL = 0.05


def mean_kl_per_dim(mean, logvar) -> np.ndarray:
  """KL(q(z_d|x) || N(0, 1)) of each dimension, averaged over the batch.

  Args:
    mean: [N, D] means of q(z|x).
    logvar: [N, D] log-variances of q(z|x).

  Returns:
    [D] float64 array (nats).
  """
  kl = kl_to_standard_normal(np.asarray(mean, np.float32),
                             np.asarray(logvar, np.float32))
  return np.asarray(kl, np.float64).mean(axis=0)


def active_dims(kl_per_dim, threshold: float = DEFAULT_ACTIVE_KL
                ) -> list[int]:
  """Latent dimensions with mean KL above ``threshold``, highest KL first.

  Args:
    kl_per_dim: [D] mean KL per dimension (NaN counts as inactive).
    threshold: KL in nats a dimension must exceed to count as active.

  Returns:
    The active dimensions (possibly none), by decreasing KL.
  """
  kl = np.nan_to_num(np.asarray(kl_per_dim, float).reshape(-1), nan=0.0)
  order = np.argsort(-kl, kind="stable")
  return [int(d) for d in order if kl[d] > threshold]


def load_images(images, observation_shape: Sequence[int]) -> np.ndarray:
  """Reads the user's images into the model's input format.

  Each image is converted to the model's channel count (grey or RGB),
  resized to its height and width, and scaled to [0, 1].

  Args:
    images: a sequence of file paths, PIL images or uint8/float arrays
      ([H, W] or [H, W, C]; floats must already be in [0, 1]).
    observation_shape: the model's (H, W, C), e.g.
      ``model.dataset.observation_shape``.

  Returns:
    float32 [N, H, W, C] in [0, 1].

  Raises:
    FileNotFoundError: naming a path that does not exist.
    ValueError: if ``images`` is empty or the shape has C not in {1, 3}.
  """
  height, width, channels = (int(s) for s in observation_shape)
  if channels not in (1, 3):
    raise ValueError(f"observation_shape {tuple(observation_shape)} must end "
                     "in 1 (grey) or 3 (RGB) channels.")
  if isinstance(images, (str, os.PathLike)):
    images = [images]
  out = []
  for item in images:
    if isinstance(item, (str, os.PathLike)):
      if not os.path.exists(item):
        raise FileNotFoundError(f"image {os.fspath(item)!r} does not exist; "
                                "give the path of a PNG or JPEG file.")
      with Image.open(item) as opened:
        picture = opened.copy()
    elif isinstance(item, Image.Image):
      picture = item
    else:
      array = np.asarray(item)
      if array.dtype != np.uint8:
        array = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
      if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
      picture = Image.fromarray(array)
    picture = picture.convert("L" if channels == 1 else "RGB").resize(
        (width, height), Image.BILINEAR)
    array = np.asarray(picture, np.float32) / 255.0
    out.append(array.reshape(height, width, channels))
  if not out:
    raise ValueError("images is empty: give at least one image.")
  return np.stack(out)


def model_pictures(model, images, num_traversed: int = 3,
                   values=grids.DEFAULT_TRAVERSAL_VALUES,
                   dims: Optional[Sequence[int]] = None,
                   kl_images=None) -> dict:
  """Reconstructions, traversals and per-dimension KL of ``images``.

  The pictures written during training (``images/*.png``), drawn for any
  images: the notebooks and the report use this.

  Args:
    model: a trained model (``encode``/``decode``).
    images: float [N, H, W, C] inputs in [0, 1].
    num_traversed: how many of the images get traversal rows.
    values: the values each traversed dimension takes.
    dims: dimensions to traverse (default: all, sorted by KL).
    kl_images: images the per-dimension KL is averaged over (default:
      ``images``); a few hundred give a steadier estimate than a handful.

  Returns:
    ``{'reconstructions': uint8 grid, 'traversals': uint8 grid,
    'kl_per_dim': [D], 'mean': [N, D], 'logvar': [N, D]}``.
  """
  images = np.asarray(images, np.float32)
  mean, logvar = model.encode(images)
  kl = mean_kl_per_dim(*(model.encode(kl_images) if kl_images is not None
                         else (mean, logvar)))
  return {
      "reconstructions": grids.make_reconstruction_grid(
          images, model.decode(mean)),
      "traversals": grids.make_traversal_grid(
          model.decode, mean[:num_traversed], values=values, dims=dims,
          kl_per_dim=kl),
      "kl_per_dim": kl,
      "mean": mean,
      "logvar": logvar,
  }


def interpolate_codes(start, end, num_steps: int = 9) -> np.ndarray:
  """Codes on the straight line from ``start`` to ``end`` (both included).

  Args:
    start: [D] code.
    end: [D] code.
    num_steps: number of codes, >= 2.

  Returns:
    float32 [num_steps, D].
  """
  if num_steps < 2:
    raise ValueError(f"num_steps={num_steps} must be >= 2 (both ends).")
  start = np.asarray(start, np.float32).reshape(-1)
  end = np.asarray(end, np.float32).reshape(-1)
  if start.shape != end.shape:
    raise ValueError(f"start {start.shape} and end {end.shape} must be codes "
                     "of the same latent size.")
  t = np.linspace(0.0, 1.0, num_steps, dtype=np.float32)[:, None]
  return (1.0 - t) * start + t * end


def make_walk_grid(model, images, num_steps: int = 9) -> np.ndarray:
  """Decoded walks between consecutive images' codes, one row per pair.

  Row ``i`` goes from the reconstruction of ``images[i]`` to that of
  ``images[i + 1]`` through the means of q(z|x).

  Args:
    model: a trained model (``encode``/``decode``).
    images: float [N, H, W, C] in [0, 1], N >= 2.
    num_steps: images per row.

  Returns:
    uint8 grid [H', W', 3].
  """
  images = np.asarray(images, np.float32)
  if len(images) < 2:
    raise ValueError(f"a walk needs at least 2 images, got {len(images)}.")
  mean, _ = model.encode(images)
  codes = np.concatenate([interpolate_codes(mean[i], mean[i + 1], num_steps)
                          for i in range(len(mean) - 1)])
  return grids.make_image_grid(model.decode(codes), num_steps)


def decode_edited(model, code, changes: dict) -> np.ndarray:
  """Decodes ``code`` with some dimensions set to new values.

  Args:
    model: a trained model (``decode``).
    code: [D] starting code (e.g. an image's mean of q(z|x)).
    changes: ``{dim: value}``.

  Returns:
    float [H, W, C] image in [0, 1].

  Raises:
    ValueError: naming a dimension outside the latent.
  """
  code = np.array(code, np.float32).reshape(-1)
  for dim, value in changes.items():
    if not 0 <= int(dim) < code.size:
      raise ValueError(f"latent dimension {dim} does not exist; the latent "
                       f"has dimensions 0..{code.size - 1}.")
    code[int(dim)] = value
  return np.asarray(model.decode(code[None]))[0]
