"""Image grids for inspecting a VAE: samples, reconstructions, traversals.

Everything here is numpy in, numpy out: grids are ``uint8`` arrays of shape
``[H, W, 3]`` ready for :func:`save_png` or a TensorBoard image summary.

Geometry (all grids): cells are separated by ``pad`` pixels and surrounded by
a ``pad`` border, so cell ``(r, c)`` of an ``H x W`` image grid starts at
``y = pad + r * (H + pad)``, ``x = pad + c * (W + pad)``. Traversal grids add
``TRAVERSAL_BLOCK_GAP`` extra pixels between the blocks of different base
images and, with ``kl_per_dim``, a marker column of width
``traversal_marker_width(W)`` plus ``pad`` on the left.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image

from factorvae_jax.utils.files import write_atomically

# Extra spacing between the blocks of a traversal grid (one block per base
# image); it sits on top of the ordinary ``pad`` so blocks read as groups.
TRAVERSAL_BLOCK_GAP = 6
# The pad used inside traversal grids (theirs is not configurable).
TRAVERSAL_PAD = 2
TRAVERSAL_PAD_VALUE = 0.5
# A jitted decoder compiles once per input shape; chunks of one fixed size
# keep that to a single compilation and bound device memory.
DECODE_CHUNK_SIZE = 1024

DEFAULT_TRAVERSAL_VALUES = np.linspace(-2.0, 2.0, 9)
DEFAULT_TRAVERSAL_VALUES.flags.writeable = False

# NaN pixels (a diverged decoder) are painted magenta so they stand out
# instead of silently turning black.
_NAN_COLOUR = (1.0, 0.0, 1.0)
# Values this far outside [0, 1] are a caller bug (usually logits passed
# where probabilities were meant), not rounding noise.
_RANGE_TOLERANCE = 1e-3


def traversal_marker_width(image_width: int) -> int:
  """Width in pixels of the KL marker drawn left of each traversal row."""
  return max(3, image_width // 8)


def _to_rgb_float(images, name: str = "images") -> np.ndarray:
  """Validates [N, H, W, C] images and returns float32 RGB in [0, 1]."""
  images = np.asarray(images)
  if images.ndim == 3:  # [N, H, W]: single-channel without a channel axis.
    images = images[..., None]
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(
        f"{name} must have shape [N, H, W, C] with C in {{1, 3}}, got shape "
        f"{images.shape}.")
  if images.shape[0] == 0:
    raise ValueError(f"{name} is empty: there is nothing to put in a grid.")
  if np.issubdtype(images.dtype, np.integer):
    images = images.astype(np.float32) / 255.0
  else:
    images = images.astype(np.float32)
    finite = images[np.isfinite(images)]
    if finite.size and (finite.min() < -_RANGE_TOLERANCE or
                        finite.max() > 1.0 + _RANGE_TOLERANCE):
      raise ValueError(
          f"{name} must be in [0, 1] but range over [{finite.min():.3g}, "
          f"{finite.max():.3g}]; if these are decoder logits, apply a "
          "sigmoid first.")
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  nan_mask = np.isnan(images).any(axis=-1)
  images = np.clip(np.nan_to_num(images, nan=0.0), 0.0, 1.0)
  images[nan_mask] = _NAN_COLOUR
  return images


def _to_uint8(grid: np.ndarray) -> np.ndarray:
  return np.round(np.clip(grid, 0.0, 1.0) * 255.0).astype(np.uint8)


def _tile(cells: np.ndarray,
          pad: int,
          pad_value: float,
          group_size: Optional[int] = None,
          group_gap: int = 0,
          row_markers: Optional[np.ndarray] = None,
          marker_width: int = 0) -> np.ndarray:
  """Lays out float RGB cells [R, C, H, W, 3] as one float image.

  Args:
    cells: the cells, row-major.
    pad: pixels between cells and around the border.
    pad_value: grey level of the padding.
    group_size: if set, ``group_gap`` extra pixels follow every
      ``group_size`` rows (except after the last).
    group_gap: see ``group_size``.
    row_markers: optional [R, 3] colours, one marker per row drawn in a left
      margin of ``marker_width`` pixels.
    marker_width: width of that margin (without its own ``pad``).

  Returns:
    float32 [H', W', 3] image.
  """
  if pad < 0 or group_gap < 0:
    raise ValueError(f"pad and gaps must be >= 0, got pad={pad}, "
                     f"group_gap={group_gap}.")
  num_rows, num_cols, height, width, _ = cells.shape
  left = marker_width + pad if row_markers is not None else 0
  num_gaps = (num_rows - 1) // group_size if group_size else 0
  out_h = num_rows * height + (num_rows + 1) * pad + num_gaps * group_gap
  out_w = left + num_cols * width + (num_cols + 1) * pad
  grid = np.full((out_h, out_w, 3), pad_value, dtype=np.float32)
  for r in range(num_rows):
    y = pad + r * (height + pad)
    if group_size:
      y += (r // group_size) * group_gap
    if row_markers is not None:
      grid[y:y + height, pad:pad + marker_width] = row_markers[r]
    for c in range(num_cols):
      x = left + pad + c * (width + pad)
      grid[y:y + height, x:x + width] = cells[r, c]
  return grid


def _pad_to_multiple(images: np.ndarray, multiple: int,
                     fill: float) -> np.ndarray:
  """Appends blank cells so len(images) is a multiple of ``multiple``."""
  missing = -len(images) % multiple
  if not missing:
    return images
  blank = np.full((missing,) + images.shape[1:], fill, dtype=images.dtype)
  return np.concatenate([images, blank], axis=0)


def make_image_grid(images, num_cols: int, pad: int = 2,
                    pad_value: float = 0.5) -> np.ndarray:
  """Tiles a batch of images row-major into one RGB image.

  Args:
    images: [N, H, W, C] floats in [0, 1] (integer dtypes are read as 0..255),
      C in {1, 3}; single-channel images are replicated to grey RGB. NaN
      pixels are drawn magenta.
    num_cols: cells per row; capped at N so a short batch is not padded out
      with empty cells.
    pad: pixels between cells and around the border.
    pad_value: grey level in [0, 1] of the padding and of empty trailing cells.

  Returns:
    uint8 array [H', W', 3].

  Raises:
    ValueError: on a bad shape, an empty batch, values outside [0, 1] or a
      non-positive ``num_cols``.
  """
  if num_cols < 1:
    raise ValueError(f"num_cols must be >= 1, got {num_cols}.")
  images = _to_rgb_float(images)
  num_cols = min(num_cols, len(images))
  images = _pad_to_multiple(images, num_cols, pad_value)
  cells = images.reshape((-1, num_cols) + images.shape[1:])
  return _to_uint8(_tile(cells, pad, pad_value))


def make_reconstruction_grid(inputs, reconstructions,
                             num_cols: int = 8) -> np.ndarray:
  """Shows inputs and their reconstructions in alternating rows.

  Row 0 holds inputs ``0..num_cols-1``, row 1 their reconstructions in the
  same columns, row 2 the next inputs, and so on. Each input/reconstruction
  pair of rows is separated from the next pair by a double gap.

  Args:
    inputs: [N, H, W, C] images in [0, 1], C in {1, 3}.
    reconstructions: images of the same shape, e.g. sigmoid of the decoder
      logits (or its mean) for ``inputs``.
    num_cols: images per row; capped at N.

  Returns:
    uint8 array [H', W', 3].

  Raises:
    ValueError: if the shapes differ or are not valid image batches.
  """
  if num_cols < 1:
    raise ValueError(f"num_cols must be >= 1, got {num_cols}.")
  inputs = _to_rgb_float(inputs, "inputs")
  reconstructions = _to_rgb_float(reconstructions, "reconstructions")
  if inputs.shape != reconstructions.shape:
    raise ValueError(
        f"inputs {inputs.shape} and reconstructions {reconstructions.shape} "
        "must have the same shape (after grey -> RGB).")
  pad, pad_value = 2, 0.5
  num_cols = min(num_cols, len(inputs))
  inputs = _pad_to_multiple(inputs, num_cols, pad_value)
  reconstructions = _pad_to_multiple(reconstructions, num_cols, pad_value)
  shape = (-1, num_cols) + inputs.shape[1:]
  # [P, 2, cols, H, W, 3] -> rows: inputs of chunk 0, its recons, chunk 1 ...
  pairs = np.stack(
      [inputs.reshape(shape), reconstructions.reshape(shape)], axis=1)
  cells = pairs.reshape((-1, num_cols) + inputs.shape[1:])
  return _to_uint8(
      _tile(cells, pad, pad_value, group_size=2, group_gap=pad))


def _decode_in_chunks(decode_fn: Callable[[np.ndarray], np.ndarray],
                      codes: np.ndarray) -> np.ndarray:
  """Decodes [M, D] codes, at most DECODE_CHUNK_SIZE at a time."""
  num = len(codes)
  if num <= DECODE_CHUNK_SIZE:
    return np.asarray(decode_fn(codes))
  outputs = []
  for start in range(0, num, DECODE_CHUNK_SIZE):
    chunk = codes[start:start + DECODE_CHUNK_SIZE]
    valid = len(chunk)
    if valid < DECODE_CHUNK_SIZE:
      # Same shape as the other chunks, so a jitted decoder does not
      # compile a second time for the remainder.
      filler = np.repeat(chunk[-1:], DECODE_CHUNK_SIZE - valid, axis=0)
      chunk = np.concatenate([chunk, filler], axis=0)
    outputs.append(np.asarray(decode_fn(chunk))[:valid])
  return np.concatenate(outputs, axis=0)


def make_traversal_grid(decode_fn: Callable[[np.ndarray], np.ndarray],
                        base_codes,
                        values=DEFAULT_TRAVERSAL_VALUES,
                        dims: Optional[Sequence[int]] = None,
                        kl_per_dim=None) -> np.ndarray:
  """Decodes latent traversals: one latent dimension varied per row.

  For each base code ``k`` and each latent dimension ``d``, a row of
  ``len(values)`` images is decoded from copies of ``base_codes[k]`` with
  dimension ``d`` set to each value in turn. Rows of one base code form a
  block; blocks are stacked top to bottom with a thicker gap between them.

  Args:
    decode_fn: maps float32 codes [M, D] to images [M, H, W, C] in [0, 1]
      (e.g. a jitted decoder followed by a sigmoid). Called once when
      M <= DECODE_CHUNK_SIZE, otherwise on chunks of exactly that size.
    base_codes: [K, D] codes to traverse from, typically the means of
      q(z|x) for K encoded images.
    values: the values each traversed dimension takes, left to right.
    dims: dimensions to traverse (rows); all D dimensions if None.
    kl_per_dim: optional [D] mean KL(q(z_d|x) || p(z_d)) per dimension. When
      given, rows are ordered by decreasing KL (ties keep dimension order)
      and a green marker left of each row has brightness KL_d / max KL, so
      collapsed, uninformative dimensions show as dark markers at the
      bottom of each block.

  Returns:
    uint8 array [H', W', 3].

  Raises:
    ValueError: on inconsistent shapes, out-of-range ``dims``, or decoder
      output that is not a batch of M images in [0, 1].
  """
  base_codes = np.asarray(base_codes, dtype=np.float32)
  if base_codes.ndim != 2 or base_codes.shape[0] == 0:
    raise ValueError(
        f"base_codes must have shape [K, D] with K >= 1, got "
        f"{base_codes.shape}.")
  num_base, latent_dim = base_codes.shape
  values = np.asarray(values, dtype=np.float32).reshape(-1)
  if values.size == 0:
    raise ValueError("values is empty: give at least one traversal value.")
  dims = np.arange(latent_dim) if dims is None else np.asarray(dims, int)
  if dims.ndim != 1 or dims.size == 0:
    raise ValueError(f"dims must be a non-empty list of ints, got {dims}.")
  if dims.min() < 0 or dims.max() >= latent_dim:
    raise ValueError(
        f"dims {dims.tolist()} out of range for a {latent_dim}-d latent.")

  markers = None
  if kl_per_dim is not None:
    kl = np.asarray(kl_per_dim, dtype=np.float64).reshape(-1)
    if kl.shape != (latent_dim,):
      raise ValueError(
          f"kl_per_dim must have shape [{latent_dim}] (one value per latent "
          f"dimension), got {np.shape(kl_per_dim)}.")
    # NaN KL (a diverged run) would make the sort order arbitrary; rank it
    # with the collapsed dimensions instead.
    kl = np.nan_to_num(kl, nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    dims = dims[np.argsort(-kl[dims], kind="stable")]
    max_kl = kl[dims].max()
    brightness = kl[dims] / max_kl if max_kl > 0 else np.zeros(len(dims))
    markers = np.zeros((len(dims), 3), np.float32)
    markers[:, 1] = brightness

  num_dims, num_values = len(dims), len(values)
  codes = np.broadcast_to(
      base_codes[:, None, None, :],
      (num_base, num_dims, num_values, latent_dim)).copy()
  for row, d in enumerate(dims):
    codes[:, row, :, d] = values[None, :]
  flat_codes = codes.reshape(-1, latent_dim)
  images = _decode_in_chunks(decode_fn, flat_codes)
  if images.ndim < 1 or images.shape[0] != len(flat_codes):
    raise ValueError(
        f"decode_fn returned shape {images.shape} for {len(flat_codes)} "
        "codes; it must return one image per code, [M, H, W, C].")
  images = _to_rgb_float(images, "decode_fn output")
  cells = images.reshape((num_base * num_dims, num_values) + images.shape[1:])
  if markers is not None:
    markers = np.tile(markers, (num_base, 1))
  return _to_uint8(
      _tile(cells, TRAVERSAL_PAD, TRAVERSAL_PAD_VALUE,
            group_size=num_dims, group_gap=TRAVERSAL_BLOCK_GAP,
            row_markers=markers,
            marker_width=traversal_marker_width(images.shape[2])))


def save_png(path, grid) -> None:
  """Writes an image to a PNG file atomically.

  The image is written to a temporary file next to ``path`` and moved into
  place with ``os.replace``, so a reader (or a run killed mid-write) never
  sees a truncated PNG. Missing parent directories are created.

  Args:
    path: destination file path (str or os.PathLike).
    grid: uint8 [H, W], [H, W, 1], [H, W, 3] or [H, W, 4] image.

  Raises:
    ValueError: if ``grid`` is not a uint8 image of those shapes.
  """
  grid = np.asarray(grid)
  if grid.dtype != np.uint8:
    raise ValueError(
        f"save_png expects a uint8 image (e.g. from make_image_grid), got "
        f"dtype {grid.dtype}.")
  if grid.ndim == 3 and grid.shape[-1] == 1:
    grid = grid[..., 0]
  if not (grid.ndim == 2 or (grid.ndim == 3 and grid.shape[-1] in (3, 4))):
    raise ValueError(
        f"save_png expects shape [H, W] or [H, W, C] with C in {{1, 3, 4}}, "
        f"got {grid.shape}.")
  write_atomically(
      path, lambda f: Image.fromarray(grid).save(f, format="PNG"), binary=True)
