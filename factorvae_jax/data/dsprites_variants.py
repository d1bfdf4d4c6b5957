"""disentanglement_lib's dSprites variants on top of any dSprites source.

``color_dsprites``, ``noisy_dsprites`` and ``scream_dsprites`` (Locatello et al.
2019) keep dSprites' five factors and draw each observation's colour, noise or
background at random, so the same factors give a different image every time.
``dsprites_noshape`` drops the shape from the factors: each observation's shape
is drawn uniformly at random, as a nuisance. Each wraps a plain dSprites
dataset (``ProceduralDSprites`` or the official ``DSprites``).

The numpy path (``sample_observations_from_factors``) consumes the
``RandomState`` exactly as disentanglement_lib does (same draws, same order),
so on the same binary images it returns the same observations for the same
seed. The device path draws the same distributions with ``jax.random``.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.data import files
from factorvae_jax.data import ground_truth
from factorvae_jax.utils import errors

VARIANTS = ("color", "noisy", "scream")
IMAGE_SIZE = 64

# Per-image sprite colour of color_dsprites: each RGB channel is uniform in
# [COLOR_MIN, 1); the background stays black.
COLOR_MIN = 0.5

SCREAM_FILENAME = "scream.jpg"
# disentanglement_lib shrinks the painting with PIL's ``thumbnail`` to fit this
# box (width, height), keeping its aspect ratio.
SCREAM_THUMBNAIL = (350, 274)
SCREAM_ORIGIN = (
    "scream_dsprites needs Edvard Munch's The Scream as a JPEG, the file "
    "disentanglement_lib's bin/dlib_download_data saves as scream/scream.jpg "
    "from https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg; "
    "download it and set data.scream_path to the file (or its folder).")


def load_scream(path: str) -> tuple[np.ndarray, dict]:
  """Loads the Scream painting as disentanglement_lib prepares it.

  Args:
    path: the image file, or a folder holding ``SCREAM_FILENAME``.

  Returns:
    ``(image, details)``: float32 [H, W, 3] in [0, 1] (the painting shrunk to
    fit 350 x 274, at least 65 x 65) and ``files.describe_file`` of the file.

  Raises:
    FileNotFoundError: naming the path tried and where the file comes from.
    ValueError: if it is not a readable image or is too small.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  path = scream_path_or_error(path)
  try:
    with Image.open(path) as picture:
      mode = picture.mode
      picture.thumbnail(SCREAM_THUMBNAIL)
      # disentanglement_lib assumes an RGB JPEG; convert anything else so a
      # grey or RGBA file still gives three channels.
      image = np.asarray(picture.convert("RGB"), np.float32) / 255.0
  except OSError as err:
    raise errors.BadFileError(f"{path} is not a readable image ({err}). "
                              f"{SCREAM_ORIGIN}") from err
  if min(image.shape[:2]) <= IMAGE_SIZE:
    raise errors.BadFileError(
        f"{path}: the painting is {image.shape[1]} x {image.shape[0]} pixels "
        f"after fitting it into {SCREAM_THUMBNAIL}, but 64 x 64 patches need "
        f"at least 65 x 65 (mode {mode}). {SCREAM_ORIGIN}")
  return image, files.describe_file(path)


def _check_binary_base(base: ground_truth.GroundTruthData, what: str) -> None:
  if tuple(base.observation_shape) != (IMAGE_SIZE, IMAGE_SIZE, 1):
    raise errors.BadFileError(
        f"{what} needs a binary 64x64x1 dSprites dataset, got "
        f"{type(base).__name__} with observations {base.observation_shape}.")


class DSpritesVariant(ground_truth.GroundTruthData):
  """color_dsprites, noisy_dsprites or scream_dsprites over a dSprites source.

  Observations are float32 [64, 64, 3] in [0, 1]:

  * color: the binary sprite times one RGB colour per image, each channel
    uniform in [0.5, 1); black background.
  * noisy: sprite pixels white, every background pixel and channel uniform in
    [0, 1).
  * scream: a random 64 x 64 patch of the Scream painting, averaged with one
    random RGB colour per image (each channel uniform in [0, 1)); the sprite is
    drawn by inverting that background (``1 - x``) at its pixels.
  """

  def __init__(self, base: ground_truth.GroundTruthData, variant: str,
               scream: Optional[np.ndarray] = None,
               scream_details: Optional[dict] = None):
    """Wraps a plain dSprites dataset.

    Args:
      base: binary dSprites (``ProceduralDSprites`` or ``DSprites``).
      variant: one of ``VARIANTS``.
      scream: for 'scream', float32 [H, W, 3] from ``load_scream``.
      scream_details: description of the painting's file, for ``describe``.
    """
    if variant not in VARIANTS:
      raise errors.InvalidValueError(
          f"variant={variant!r} is not a dSprites variant; use "
          f"one of {list(VARIANTS)}.")
    _check_binary_base(base, f"{variant}_dsprites")
    if variant == "scream":
      if scream is None:
        raise errors.BadFileError(f"scream_dsprites needs the painting. "
                                  f"{SCREAM_ORIGIN}")
      scream = np.asarray(scream, np.float32)
      if (scream.ndim != 3 or scream.shape[2] != 3 or
          min(scream.shape[:2]) <= IMAGE_SIZE):
        raise errors.BadFileError(
            f"scream must be [H, W, 3] with H, W > 64, got "
            f"{scream.shape}.")
    self.base = base
    self.variant = variant
    self.factor_names = tuple(base.factor_names)
    self.factors_num_values = tuple(base.factors_num_values)
    self.factor_values = getattr(base, "factor_values", None)
    self.observation_shape = (IMAGE_SIZE, IMAGE_SIZE, 3)
    self.source = f"{variant}_dsprites over {base.source}"
    self._scream = scream
    self._scream_details = dict(scream_details or {})

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Draws observations for the factors (random colour, noise or patch).

    Args:
      factors: int [num, 5] factor classes.
      random_state: ``np.random.RandomState`` or int seed; consumed in
        disentanglement_lib's order.

    Returns:
      float32 [num, 64, 64, 3] in [0, 1].
    """
    rs = ground_truth.as_random_state(random_state)
    sprites = self.base.sample_observations_from_factors(factors, rs)
    sprites = np.repeat(sprites, 3, axis=3)
    num = len(sprites)
    if self.variant == "color":
      colour = rs.uniform(COLOR_MIN, 1.0, (num, 1, 1, 3))
      return (sprites * colour).astype(np.float32)
    if self.variant == "noisy":
      noise = rs.uniform(0.0, 1.0, (num, IMAGE_SIZE, IMAGE_SIZE, 3))
      return np.minimum(sprites + noise, 1.0).astype(np.float32)
    out = np.empty_like(sprites)
    height, width = self._scream.shape[:2]
    for i in range(num):
      # The offsets' upper bounds are exclusive: the last patch position of
      # each axis is never drawn (as in disentanglement_lib).
      row = rs.randint(0, height - IMAGE_SIZE)
      col = rs.randint(0, width - IMAGE_SIZE)
      patch = self._scream[row:row + IMAGE_SIZE, col:col + IMAGE_SIZE]
      background = (patch.astype(np.float64) + rs.uniform(0, 1, size=3)) / 2
      mask = sprites[i] == 1
      background[mask] = 1.0 - background[mask]
      out[i] = background
    return out

  def device_arrays(self) -> dict:
    """The base's arrays, plus the painting for 'scream' (~0.7 MiB)."""
    arrays = {"base": self.base.device_arrays()}
    if self.variant == "scream":
      arrays["scream"] = self._scream
    return arrays

  def sample_device_batch(self, arrays, key: jax.Array,
                          batch_size: int) -> jax.Array:
    """Draws a batch (pure JAX); the base draws the same factors for ``key``.

    Args:
      arrays: ``device_arrays()`` on device.
      key: PRNG key.
      batch_size: static batch size.

    Returns:
      float32 [batch_size, 64, 64, 3] in [0, 1].
    """
    sprites = self.base.sample_device_batch(arrays["base"], key, batch_size)
    sprites = jnp.repeat(sprites, 3, axis=3)
    # The base uses ``key`` itself, so a variant and its plain dataset pick
    # the same factors for one key; the variant's own draws use another key.
    key = jax.random.fold_in(key, 1)
    if self.variant == "color":
      colour = jax.random.uniform(key, (batch_size, 1, 1, 3),
                                  minval=COLOR_MIN, maxval=1.0)
      return sprites * colour
    if self.variant == "noisy":
      noise = jax.random.uniform(key, sprites.shape)
      return jnp.minimum(sprites + noise, 1.0)
    scream = arrays["scream"]
    height, width = scream.shape[0], scream.shape[1]
    row_key, col_key, colour_key = jax.random.split(key, 3)
    rows = jax.random.randint(row_key, (batch_size,), 0, height - IMAGE_SIZE)
    cols = jax.random.randint(col_key, (batch_size,), 0, width - IMAGE_SIZE)
    colour = jax.random.uniform(colour_key, (batch_size, 1, 1, 3))
    patches = jax.vmap(lambda r, c: jax.lax.dynamic_slice(
        scream, (r, c, 0), (IMAGE_SIZE, IMAGE_SIZE, 3)))(rows, cols)
    background = (patches + colour) / 2
    return jnp.where(sprites == 1, 1.0 - background, background)

  def describe(self) -> dict:
    """Base description, the variant, and the painting's file for 'scream'."""
    description = super().describe()
    description["variant"] = self.variant
    description["base"] = self.base.describe()
    if self.variant == "scream":
      description["scream"] = dict(self._scream_details,
                                   shape=list(self._scream.shape))
    return description


class DSpritesNoShape(ground_truth.GroundTruthData):
  """disentanglement_lib's ``dsprites_noshape``: shape is not a factor.

  The factors are scale, orientation, position x and position y; every
  observation's shape is drawn uniformly from the three shapes (so all three
  still appear, as in disentanglement_lib, but no metric is told which).
  """

  def __init__(self, base: ground_truth.GroundTruthData):
    """Wraps a plain dSprites dataset (shape must be its first factor)."""
    _check_binary_base(base, "dsprites_noshape")
    if base.factor_names[0] != "shape":
      raise errors.InvalidValueError(
          f"dsprites_noshape needs shape as the first factor, "
          f"got {base.factor_names}.")
    self.base = base
    self.factor_names = tuple(base.factor_names[1:])
    self.factors_num_values = tuple(base.factors_num_values[1:])
    values = getattr(base, "factor_values", None)
    self.factor_values = None if values is None else tuple(values[1:])
    self.observation_shape = tuple(base.observation_shape)
    self.source = f"dsprites_noshape over {base.source}"

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Draws a random shape per row, then the image of the full factors.

    Args:
      factors: int [num, 4] classes of scale, orientation, x, y.
      random_state: ``np.random.RandomState`` or int seed (draws the shapes,
        as disentanglement_lib does).

    Returns:
      float32 [num, 64, 64, 1] in {0, 1}.
    """
    rs = ground_truth.as_random_state(random_state)
    factors = np.asarray(factors)
    ground_truth.check_factor_grid("DSpritesNoShape", factors,
                                   self.factors_num_values)
    shapes = rs.randint(self.base.factors_num_values[0], size=len(factors))
    full = np.concatenate([shapes[:, None], factors], axis=1)
    return self.base.sample_observations_from_factors(full, rs)

  def device_arrays(self):
    return self.base.device_arrays()

  def sample_device_batch(self, arrays, key: jax.Array,
                          batch_size: int) -> jax.Array:
    """The base's uniform draw: shape uniform and independent, as here."""
    return self.base.sample_device_batch(arrays, key, batch_size)

  def describe(self) -> dict:
    description = super().describe()
    description["base"] = self.base.describe()
    return description


def scream_path_or_error(path: str) -> str:
  """Resolves ``data.scream_path`` (call it before loading a large base file).

  Args:
    path: the painting's file, or a folder holding ``SCREAM_FILENAME``.

  Returns:
    The path of an existing file.

  Raises:
    FileNotFoundError: naming the path and where the file comes from.
  """
  return files.resolve_file(path, SCREAM_FILENAME, "scream_dsprites",
                            SCREAM_ORIGIN, config_field="data.scream_path")

