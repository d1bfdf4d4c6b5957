"""The official dSprites images, from DeepMind's npz file or from tfds.

Images are held bit-packed (``np.packbits`` over the 4096 pixels: 512 bytes per
image, 360 MiB for the 737,280 images) in grid order, so a flat grid index from
``GroundTruthData.factors_to_index`` is also the row of the packed array. The
device sampler gathers rows and unpacks them on the accelerator.

File checks and tfds reading shared by every loader are in ``files``.
"""

from __future__ import annotations

import zipfile
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.data import files
from factorvae_jax.data import ground_truth
from factorvae_jax.utils import errors

FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
OFFICIAL_FACTOR_SIZES = (3, 6, 40, 32, 32)
OFFICIAL_FILENAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
IMAGE_SIZE = 64
PACKED_BYTES = IMAGE_SIZE * IMAGE_SIZE // 8
ORIGIN = (
    "The file is the official dSprites release by DeepMind: download "
    f"{OFFICIAL_FILENAME} from https://github.com/deepmind/dsprites-dataset "
    "(or use data.source='procedural', which needs no file).")

# tfds feature names of the five factors, in FACTOR_NAMES order.
TFDS_NAME = "dsprites"
TFDS_LABEL_KEYS = ("label_shape", "label_scale", "label_orientation",
                   "label_x_position", "label_y_position")
TFDS_VALUE_KEYS = ("value_shape", "value_scale", "value_orientation",
                   "value_x_position", "value_y_position")

# Rows decoded per step while streaming a file: bounds the temporary memory
# (4096 dSprites rows are 16 MiB unpacked).
_CHUNK_ROWS = 4096


# --- dSprites -----------------------------------------------------------------
def pack_images(images: np.ndarray, where: str) -> np.ndarray:
  """Bit-packs binary images to 512 bytes each.

  Args:
    images: uint8 [C, 64, 64] or [C, 64, 64, 1] with values 0 or 1.
    where: the file or dataset, for error messages.

  Returns:
    uint8 [C, 512], pixels in row-major order, first pixel in the high bit.

  Raises:
    ValueError: if a pixel is not 0 or 1 (packing would silently merge values).
  """
  flat = images.reshape(len(images), -1)
  if flat.shape[1] != IMAGE_SIZE * IMAGE_SIZE:
    raise errors.BadFileError(
        f"{where}: images have {flat.shape[1]} pixels, expected "
        f"{IMAGE_SIZE}x{IMAGE_SIZE}. {ORIGIN}")
  if flat.size and flat.max() > 1:
    raise errors.BadFileError(
        f"{where}: pixel values must be 0 or 1, found {flat.max()}. The "
        f"official dSprites images are binary uint8. {ORIGIN}")
  return np.packbits(flat, axis=1)


class DSprites(ground_truth.GroundTruthData):
  """The official dSprites images (bit-packed, in grid order).

  Build with ``DSprites.from_npz`` or ``DSprites.from_tfds``.
  """

  def __init__(self, packed_images: np.ndarray, factor_sizes: Sequence[int],
               factor_values: Sequence[np.ndarray], source: str,
               details: Optional[dict] = None):
    """Wraps packed images that are already in grid order.

    Args:
      packed_images: uint8 [prod(factor_sizes), 512], row = flat grid index.
      factor_sizes: classes per factor, in ``FACTOR_NAMES`` order.
      factor_values: per factor, the value of each class.
      source: one line saying where the images come from.
      details: extra entries for ``describe()`` (file path, size, hash...).
    """
    factor_sizes = tuple(int(n) for n in factor_sizes)
    if packed_images.shape != (int(np.prod(factor_sizes)), PACKED_BYTES):
      raise errors.BadFileError(
          f"packed_images must be [{int(np.prod(factor_sizes))}, "
          f"{PACKED_BYTES}] for factor sizes {factor_sizes}, got "
          f"{packed_images.shape}.")
    self.factor_names = FACTOR_NAMES
    self.factors_num_values = factor_sizes
    self.observation_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
    self.source = source
    self.factor_values = tuple(np.asarray(v) for v in factor_values)
    self._packed = packed_images
    self._details = dict(details or {})

  @classmethod
  def from_npz(cls, path: str) -> "DSprites":
    """Loads the official npz file, streaming: ~0.5 GB peak for the full set.

    Args:
      path: the npz file, or a directory containing ``OFFICIAL_FILENAME``.

    Returns:
      The dataset.

    Raises:
      FileNotFoundError: if there is no file at ``path``.
      ValueError: if the file is not in the official format (missing arrays,
        wrong shapes/dtypes, non-binary pixels, incomplete factor grid).
    """
    path = files.resolve_file(path, OFFICIAL_FILENAME, "dsprites", ORIGIN)
    try:
      archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
      raise errors.BadFileError(
          f"{path} is not an npz (zip) archive. {ORIGIN}") from err
    with archive:
      members = set(archive.namelist())
      for key in ("imgs", "latents_classes", "latents_values"):
        if key + ".npy" not in members:
          raise errors.BadFileError(
              f"{path}: array '{key}' is missing (the file has "
              f"{sorted(m[:-4] for m in members)}). {ORIGIN}")
      # ``metadata`` is a pickled dict; never load it (allow_pickle=False).
      with np.load(path, allow_pickle=False) as arrays:
        latents_classes = arrays["latents_classes"]
        latents_values = arrays["latents_values"]
      num = _check_latents(path, latents_classes, latents_values)
      classes = latents_classes[:, 1:]
      sizes, index = files.grid_index_from_classes(classes, FACTOR_NAMES,
                                                   path, ORIGIN)
      official = files.warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES,
                                            path)
      packed = np.empty((num, PACKED_BYTES), np.uint8)
      # ``np.load`` would inflate all 3 GB of ``imgs`` at once; streaming the
      # zip member packs it chunk by chunk instead.
      with archive.open("imgs.npy") as f:
        shape, fortran_order, dtype = files.read_npy_header(f, "imgs", path,
                                                           ORIGIN)
        if (tuple(shape) != (num, IMAGE_SIZE, IMAGE_SIZE) or
            dtype != np.uint8 or fortran_order):
          raise errors.BadFileError(
              f"{path}: 'imgs' must be C-ordered uint8 [{num}, 64, 64] (one "
              f"image per latents row), got {dtype} {tuple(shape)}"
              f"{' in Fortran order' if fortran_order else ''}. {ORIGIN}")
        for start, chunk in files.iterate_npy_rows(
            f, num, (IMAGE_SIZE * IMAGE_SIZE,), "imgs", path, ORIGIN,
            _CHUNK_ROWS):
          packed[index[start:start + len(chunk)]] = pack_images(chunk, path)
    details = files.describe_file(path)
    details["official_grid"] = official
    return cls(packed, sizes,
               files.factor_values_from_rows(classes, latents_values[:, 1:],
                                             sizes),
               source=f"dsprites (official npz file {details['path']})",
               details=details)

  @classmethod
  def from_tfds(cls, data_dir: str = "", split: str = "train") -> "DSprites":
    """Loads tfds ``dsprites`` through ``tfds.data_source`` (no TensorFlow).

    The dataset must already be prepared in array_record format (see
    docs/data.md); tfds stores examples in shuffled order, so they are put back
    into grid order from their ``label_*`` features.

    Args:
      data_dir: tfds data_dir ('' for the tfds default).
      split: tfds split (dSprites only has 'train').

    Returns:
      The dataset.
    """
    source = files.open_tfds_source(TFDS_NAME, data_dir, split)
    where = f"tfds '{TFDS_NAME}' ({data_dir or 'default data_dir'})"
    packed, classes, values = files.read_tfds(
        source, TFDS_LABEL_KEYS, TFDS_VALUE_KEYS,
        lambda batch: pack_images(batch, where), where)
    origin = (f"Re-prepare the tfds dataset '{TFDS_NAME}' (see "
              f"docs/data.md). {ORIGIN}")
    sizes, index = files.grid_index_from_classes(classes, FACTOR_NAMES, where,
                                                 origin)
    official = files.warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES,
                                          where)
    info = getattr(source, "dataset_info", None)
    version = str(info.version) if info is not None else "unknown"
    details = {"tfds_name": TFDS_NAME, "tfds_version": version,
               "tfds_data_dir": data_dir, "tfds_split": split,
               "official_grid": official}
    return cls(files.reorder_to_grid(packed, index), sizes,
               files.factor_values_from_rows(classes, values, sizes),
               source=(f"dsprites (tfds '{TFDS_NAME}' {version}, array_record "
                       f"in {data_dir or 'the default data_dir'})"),
               details=details)

  has_observation_index = True

  def observations_at(self, indices: np.ndarray) -> np.ndarray:
    """float32 [num, 64, 64, 1] images in {0, 1} of grid indices."""
    bits = np.unpackbits(self._packed[np.asarray(indices)], axis=1)
    return bits.reshape(len(bits), *self.observation_shape).astype(
        np.float32)

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Returns the images of the given factor classes.

    Args:
      factors: int [num, 5] factor classes.
      random_state: unused (dSprites has one image per factor combination).

    Returns:
      float32 [num, 64, 64, 1] in {0, 1}.
    """
    return self.observations_at(self.observation_indices(factors,
                                                         random_state))

  def device_arrays(self) -> dict:
    """The packed images, uint8 [num_images, 512] (numpy; caller places it)."""
    return {"images": self._packed}

  def sample_device_batch(self, arrays, key: jax.Array,
                          batch_size: int) -> jax.Array:
    """Gathers uniform random images and unpacks them (pure JAX).

    Args:
      arrays: ``{"images": uint8 [num_images, 512]}`` on device.
      key: PRNG key.
      batch_size: static batch size.

    Returns:
      float32 [batch_size, 64, 64, 1] in {0, 1}.
    """
    packed = arrays["images"]
    index = ground_truth.sample_uniform_indices(key, batch_size,
                                                packed.shape[0])
    bits = jnp.unpackbits(jnp.take(packed, index, axis=0), axis=-1)
    return bits.reshape(batch_size, *self.observation_shape).astype(
        jnp.float32)

  def describe(self) -> dict:
    """Base description plus file/tfds details and the host memory used."""
    description = super().describe()
    description.update(self._details)
    description["host_bytes"] = int(self._packed.nbytes)
    return description


def _check_latents(path: str, latents_classes: np.ndarray,
                   latents_values: np.ndarray) -> int:
  """Checks the latents arrays of the npz; returns the number of rows."""
  if (latents_classes.ndim != 2 or latents_classes.shape[1] != 6 or
      not np.issubdtype(latents_classes.dtype, np.integer)):
    raise errors.BadFileError(
        f"{path}: 'latents_classes' must be an integer [N, 6] array (colour, "
        f"shape, scale, orientation, posX, posY), got "
        f"{latents_classes.dtype} {latents_classes.shape}. {ORIGIN}")
  if (latents_values.shape != latents_classes.shape or
      not np.issubdtype(latents_values.dtype, np.floating)):
    raise errors.BadFileError(
        f"{path}: 'latents_values' must be a float {latents_classes.shape} "
        f"array like 'latents_classes', got {latents_values.dtype} "
        f"{latents_values.shape}. {ORIGIN}")
  if len(latents_classes) == 0:
    raise errors.BadFileError(f"{path}: the latents arrays are empty. {ORIGIN}")
  colours = np.unique(latents_classes[:, 0])
  if len(colours) != 1:
    raise errors.BadFileError(
        f"{path}: column 0 (colour) must hold a single class, found "
        f"{len(colours)}: this is not the dSprites file. {ORIGIN}")
  return len(latents_classes)
