"""Animated latent traversals: one GIF per latent dimension.

Frame ``t`` of a dimension's animation shows the same base images decoded with
that dimension set to ``values[t]``; the animation runs forward and back, so
it loops without a jump.
"""

from __future__ import annotations

import io
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from factorvae_jax.utils.files import write_atomically
from factorvae_jax.visualisation import grids

DEFAULT_GIF_VALUES = np.linspace(-2.0, 2.0, 17)
DEFAULT_GIF_VALUES.flags.writeable = False
DEFAULT_FRAME_MS = 80


def make_traversal_frames(decode_fn: Callable[[np.ndarray], np.ndarray],
                          base_codes, dim: int,
                          values=DEFAULT_GIF_VALUES,
                          num_cols: int = 8) -> np.ndarray:
  """Decodes the frames of one dimension's traversal.

  Args:
    decode_fn: maps float32 codes [M, D] to images [M, H, W, C] in [0, 1]
      (e.g. ``TrainedModel.decode``); called once with all frames' codes.
    base_codes: [K, D] codes to traverse from (e.g. the means of q(z|x) of K
      images); frame cells are laid out like ``make_image_grid``.
    dim: the latent dimension to vary.
    values: the values ``dim`` takes, one per frame.
    num_cols: cells per frame row.

  Returns:
    uint8 frames [len(values), H', W', 3].

  Raises:
    ValueError: if ``dim`` is out of range or the shapes are inconsistent.
  """
  base_codes = np.asarray(base_codes, np.float32)
  if base_codes.ndim != 2 or not len(base_codes):
    raise ValueError(f"base_codes must have shape [K, D] with K >= 1, got "
                     f"{base_codes.shape}.")
  num_base, latent_dim = base_codes.shape
  if not 0 <= dim < latent_dim:
    raise ValueError(f"dim={dim} is out of range for a {latent_dim}-d "
                     f"latent; choose one of 0..{latent_dim - 1}.")
  values = np.asarray(values, np.float32).reshape(-1)
  if not values.size:
    raise ValueError("values is empty: give at least one traversal value.")
  codes = np.repeat(base_codes[None], len(values), axis=0)
  codes[:, :, dim] = values[:, None]
  images = np.asarray(decode_fn(codes.reshape(-1, latent_dim)))
  if len(images) != len(values) * num_base:
    raise ValueError(
        f"decode_fn returned {len(images)} images for "
        f"{len(values) * num_base} codes; it must return one per code.")
  images = images.reshape((len(values), num_base) + images.shape[1:])
  return np.stack([grids.make_image_grid(frame, num_cols) for frame in images])


def gif_bytes(frames, frame_ms: int = DEFAULT_FRAME_MS,
              bounce: bool = True) -> bytes:
  """Encodes frames as a looping animated GIF.

  Args:
    frames: uint8 [T, H, W, 3] (or [T, H, W]) frames.
    frame_ms: display time of each frame in milliseconds.
    bounce: play the frames forward then backward (without repeating the
      end frames), so a traversal loops smoothly.

  Returns:
    The GIF file's bytes.

  Raises:
    ValueError: if ``frames`` is not a non-empty uint8 stack of images.
  """
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or not len(frames):
    raise ValueError(
        f"frames must be a non-empty uint8 [T, H, W(, 3)] stack (e.g. from "
        f"make_traversal_frames), got dtype {frames.dtype}, shape "
        f"{frames.shape}.")
  if bounce and len(frames) > 2:
    frames = np.concatenate([frames, frames[-2:0:-1]])
  images = [Image.fromarray(f) for f in frames]
  buffer = io.BytesIO()
  images[0].save(buffer, format="GIF", save_all=True,
                 append_images=images[1:], duration=int(frame_ms), loop=0,
                 optimize=False)
  return buffer.getvalue()


def save_gif(path, frames, frame_ms: int = DEFAULT_FRAME_MS,
             bounce: bool = True) -> str:
  """Writes :func:`gif_bytes` of ``frames`` to ``path`` atomically.

  Returns:
    ``path`` as a string.
  """
  data = gif_bytes(frames, frame_ms, bounce)
  return write_atomically(path, lambda f: f.write(data), binary=True)


def make_traversal_gifs(decode_fn: Callable[[np.ndarray], np.ndarray],
                        base_codes, dims: Sequence[int],
                        values=DEFAULT_GIF_VALUES, num_cols: int = 8,
                        frame_ms: int = DEFAULT_FRAME_MS) -> dict[int, bytes]:
  """One animated GIF per dimension in ``dims``.

  Returns:
    ``{dim: gif bytes}`` in the order of ``dims``.
  """
  return {int(d): gif_bytes(make_traversal_frames(
      decode_fn, base_codes, int(d), values, num_cols), frame_ms)
          for d in dims}
