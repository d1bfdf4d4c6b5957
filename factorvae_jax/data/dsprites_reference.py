"""Compares the procedural dSprites renderer with real dSprites frames.

The reference files (``reference_dsprites/`` beside this module, see its README)
hold real 64 x 64 dSprites images whose factor values are not given. For each
real frame we find the procedural image of highest IoU over the factor grid
(all shapes, scales and orientations, and all or a given set of positions) and
report the IoU per shape. ``benchmarks/dsprites_fidelity.py`` runs the full
search; the tests run a restricted one.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.data import dsprites_procedural as proc
from factorvae_jax.utils import errors

FRAMES_FILENAME = "dsprites_gif_even_frames.npz"
DENSITY_FILENAME = "density_of_5000_real_images.png"
# Where the density plot's image area lies in the PNG (rows and columns,
# inclusive), per the reference README.
DENSITY_AREA = (7, 405)
ORIGIN = ("The reference files are small pieces of DeepMind's dsprites-dataset "
          "repository shipped in factorvae_jax/data/reference_dsprites/ (see "
          "its README).")

_NUM_PIXELS = proc.IMAGE_SIZE * proc.IMAGE_SIZE


def default_reference_dir() -> str:
  """The reference files shipped with the package (``reference_dsprites/``)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      "reference_dsprites")


def load_reference_frames(directory: str) -> tuple[np.ndarray, np.ndarray]:
  """Loads the real frames.

  Args:
    directory: folder holding ``FRAMES_FILENAME``.

  Returns:
    ``(frames, frame_index)``: uint8 [N, 64, 64] in {0, 1} and their frame
    numbers in the GIF.

  Raises:
    FileNotFoundError: if the file is missing.
    ValueError: if it lacks the arrays or they have the wrong shape or values.
  """
  path = os.path.join(directory, FRAMES_FILENAME)
  if not os.path.isfile(path):
    raise errors.MissingFileError(
        f"no dSprites reference frames at {path}. {ORIGIN}")
  with np.load(path, allow_pickle=False) as arrays:
    if "frames" not in arrays or "frame_index" not in arrays:
      raise errors.BadFileError(
          f"{path}: needs arrays 'frames' and 'frame_index', has "
          f"{sorted(arrays.files)}. {ORIGIN}")
    frames, frame_index = arrays["frames"], arrays["frame_index"]
  if (frames.ndim != 3 or frames.shape[1:] != (64, 64) or
      len(frame_index) != len(frames)):
    raise errors.BadFileError(f"{path}: 'frames' must be [N, 64, 64] with one "
                              f"'frame_index' each, got {frames.shape} and "
                              f"{frame_index.shape}. {ORIGIN}")
  if frames.size and frames.max() > 1:
    raise errors.BadFileError(f"{path}: frames must be binary (0/1), found "
                              f"{frames.max()}. {ORIGIN}")
  return frames.astype(np.uint8), frame_index


def load_density_plot(directory: str) -> np.ndarray:
  """Reads the release notebook's mean-image plot, resampled to 64 x 64.

  Args:
    directory: folder holding ``DENSITY_FILENAME``.

  Returns:
    float64 [64, 64] in [0, 1]: the plot's grey levels (the notebook min-max
    scaled the mean of 5000 real images), box-averaged per image pixel.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = os.path.join(directory, DENSITY_FILENAME)
  if not os.path.isfile(path):
    raise errors.MissingFileError(
        f"no dSprites density plot at {path}. {ORIGIN}")
  first, last = DENSITY_AREA
  with Image.open(path) as image:
    grey = image.convert("L").crop((first, first, last + 1, last + 1))
    small = grey.resize((proc.IMAGE_SIZE, proc.IMAGE_SIZE), Image.BOX)
  return np.asarray(small, np.float64) / 255.0


def _all_positions() -> np.ndarray:
  x, y = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
  return np.stack([x.ravel(), y.ravel()], axis=1)


def best_matches(frames: np.ndarray,
                 position_classes: Optional[np.ndarray] = None,
                 orientation_chunk: int = 4,
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """For each frame, the procedural image of highest IoU.

  Searches every shape, scale and orientation class and the given position
  classes (all 32 x 32 by default: the whole factor grid). Ties go to the
  first candidate in (shape, scale, orientation, x, y) order.

  Args:
    frames: [N, 64, 64] binary real images.
    position_classes: int [P, 2] (x class, y class) pairs to search; None for
      all 1024.
    orientation_chunk: orientations rendered per call (memory: chunk * P
      images of 16 KiB).

  Returns:
    ``(iou, factors, mean_image)``: float64 [N] best IoU, int [N, 5] factor
    classes of the best match, and float64 [64, 64] the mean of all searched
    procedural images (with all positions: the procedural dataset's mean).
  """
  positions = (_all_positions() if position_classes is None
               else np.asarray(position_classes, np.int64).reshape(-1, 2))
  num_pos = len(positions)
  flat = jnp.asarray(np.asarray(frames).reshape(len(frames), -1), jnp.float32)
  frame_area = flat.sum(1)
  pos_x = jnp.asarray(proc.POSITION_VALUES[positions[:, 0]], jnp.float32)
  pos_y = jnp.asarray(proc.POSITION_VALUES[positions[:, 1]], jnp.float32)

  @jax.jit
  def search_chunk(shape, scale, orientations):
    count = orientations.shape[0]
    images = proc.render(shape, scale, jnp.repeat(orientations, num_pos),
                         jnp.tile(pos_x, count), jnp.tile(pos_y, count))
    images = images.reshape(-1, _NUM_PIXELS)
    # Exact in float32: counts of at most 4096 ones.
    inter = images @ flat.T
    iou = inter / (images.sum(1)[:, None] + frame_area[None] - inter)
    return iou.max(0), iou.argmax(0), images.sum(0)

  best = np.full(len(frames), -1.0)
  factors = np.zeros((len(frames), 5), np.int64)
  total = np.zeros(_NUM_PIXELS)
  num_rendered = 0
  for shape in range(3):
    for scale in range(6):
      for start in range(0, 40, orientation_chunk):
        orientations = proc.ORIENTATION_VALUES[start:start + orientation_chunk]
        iou, arg, image_sum = search_chunk(
            shape, np.float32(proc.SCALE_VALUES[scale]),
            jnp.asarray(orientations, jnp.float32))
        iou, arg = np.asarray(iou, np.float64), np.asarray(arg)
        total += np.asarray(image_sum, np.float64)
        num_rendered += len(orientations) * num_pos
        better = iou > best
        best[better] = iou[better]
        position = positions[arg % num_pos]
        found = np.stack([np.full_like(arg, shape), np.full_like(arg, scale),
                          start + arg // num_pos, position[:, 0],
                          position[:, 1]], axis=1)
        factors[better] = found[better]
  mean_image = (total / num_rendered).reshape(proc.IMAGE_SIZE, proc.IMAGE_SIZE)
  return best, factors, mean_image


def summarize(iou: np.ndarray, factors: np.ndarray) -> dict:
  """Per shape (of the best match): frame count, median, 10th percentile, min.

  Args:
    iou: [N] best IoU per frame.
    factors: [N, 5] factor classes of the best match.

  Returns:
    ``{shape_name: {"frames", "median", "p10", "min"}}`` for the shapes found.
  """
  out = {}
  for shape, name in enumerate(proc.SHAPE_NAMES):
    values = iou[factors[:, 0] == shape]
    if values.size:
      out[name] = {"frames": int(values.size),
                   "median": float(np.median(values)),
                   "p10": float(np.percentile(values, 10)),
                   "min": float(values.min())}
  return out


def real_mean_pixel_estimate(frames: np.ndarray, factors: np.ndarray) -> float:
  """Estimates the real dataset's mean pixel from the frames' sprite areas.

  Every (shape, scale) cell of the grid holds the same number of images, and a
  sprite's area barely changes with orientation or position, so the dataset
  mean is about the average over (shape, scale) cells of the sprite area,
  divided by 4096. Cells are averaged over the frames matched to them.

  Args:
    frames: [N, 64, 64] real frames.
    factors: [N, 5] factor classes matched to them.

  Returns:
    The estimate; NaN unless all 18 (shape, scale) cells occur.
  """
  areas = np.asarray(frames).reshape(len(frames), -1).sum(1)
  cells = []
  for shape in range(3):
    for scale in range(6):
      match = (factors[:, 0] == shape) & (factors[:, 1] == scale)
      if not match.any():
        return float("nan")
      cells.append(areas[match].mean())
  return float(np.mean(cells) / _NUM_PIXELS)


def compare_mean_image(mean_image: np.ndarray,
                       density: np.ndarray) -> dict[str, float]:
  """Compares a mean image with the density plot, both min-max scaled.

  Args:
    mean_image: [64, 64] mean procedural image.
    density: [64, 64] from ``load_density_plot``.

  Returns:
    ``{"correlation", "mean_abs_diff", "max_abs_diff"}`` of the scaled images.
  """
  def scaled(image):
    image = np.asarray(image, np.float64)
    return (image - image.min()) / max(np.ptp(image), 1e-12)
  a, b = scaled(mean_image), scaled(density)
  return {"correlation": float(np.corrcoef(a.ravel(), b.ravel())[0, 1]),
          "mean_abs_diff": float(np.abs(a - b).mean()),
          "max_abs_diff": float(np.abs(a - b).max())}


def shape_names(factors: np.ndarray) -> Sequence[str]:
  """Names of the matched shapes, one per frame."""
  return [proc.SHAPE_NAMES[int(s)] for s in np.asarray(factors)[:, 0]]
