"""The official dSprites images, from DeepMind's npz file or from tfds.

Images are held bit-packed (``np.packbits`` over the 4096 pixels: 512 bytes per
image, 360 MiB for the 737,280 images) in grid order, so a flat grid index from
``GroundTruthData.factors_to_index`` is also the row of the packed array. The
device sampler gathers rows and unpacks them on the accelerator.

The module also holds the file checks shared with ``shapes3d`` (complete factor
grid, file fingerprints, tfds reading) so both datasets fail the same way.
"""

from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from typing import Any, Callable, Iterator, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.data import ground_truth

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
_FINGERPRINT_BYTES = 1 << 20


# --- checks and helpers shared with shapes3d ---------------------------------
def describe_file(path: str) -> dict:
  """Identifies a data file cheaply: absolute path, size, hash of its first MiB.

  Args:
    path: an existing file.

  Returns:
    ``{"path", "file_size_bytes", "sha256_first_mib"}``.
  """
  with open(path, "rb") as f:
    head = f.read(_FINGERPRINT_BYTES)
  return {
      "path": os.path.abspath(path),
      "file_size_bytes": os.path.getsize(path),
      "sha256_first_mib": hashlib.sha256(head).hexdigest()[:16],
  }


def resolve_file(path: str, filename: str, what: str, origin: str) -> str:
  """Returns ``path`` (or ``path/filename`` for a directory) if it exists.

  Args:
    path: the configured path (``data.path``); a directory is searched for the
      official file name.
    filename: the official file name.
    what: dataset name for the message.
    origin: where the file comes from (appended to errors).

  Returns:
    Path of an existing file.

  Raises:
    FileNotFoundError: naming the path tried and where to get the file.
  """
  if not path:
    raise FileNotFoundError(
        f"{what}: data.path is empty; set it to the path of {filename}. "
        f"{origin}")
  if os.path.isdir(path):
    path = os.path.join(path, filename)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what}: no file at {path}. {origin}")
  return path


def grid_index_from_classes(
    classes: np.ndarray, factor_names: Sequence[str], where: str,
    origin: str) -> tuple[tuple[int, ...], np.ndarray]:
  """Infers the factor grid from per-row classes and checks it is complete.

  The grid sizes are taken from the data (classes of factor i must be exactly
  0..n_i-1), so a reduced grid in the official format loads too; the caller
  decides whether sizes other than the official ones are acceptable.

  Args:
    classes: int [num_rows, num_factors] factor classes of each file row.
    factor_names: names for error messages.
    where: the file or dataset, for error messages.
    origin: where the data comes from, appended to errors.

  Returns:
    ``(sizes, index)``: grid sizes and, for each row, its flat row-major grid
    index (a permutation of ``range(num_rows)``).

  Raises:
    ValueError: if classes have gaps or the grid is not complete (a factor
      combination is missing or repeated).
  """
  classes = np.asarray(classes)
  sizes = []
  for i, name in enumerate(factor_names):
    present = np.unique(classes[:, i])
    if present[0] != 0 or present[-1] != len(present) - 1:
      raise ValueError(
          f"{where}: classes of factor '{name}' must be 0..n-1 without gaps; "
          f"found {len(present)} distinct classes from {present[0]} to "
          f"{present[-1]}. The file is damaged or not in the official format. "
          f"{origin}")
    sizes.append(len(present))
  sizes = tuple(sizes)
  num_cells = int(np.prod(sizes))
  index = np.ravel_multi_index(tuple(classes.T), sizes)
  counts = np.bincount(index, minlength=num_cells)
  if len(classes) != num_cells or np.any(counts != 1):
    problems = []
    missing = np.flatnonzero(counts == 0)
    repeated = np.flatnonzero(counts > 1)
    if missing.size:
      example = np.unravel_index(missing[0], sizes)
      problems.append(f"{missing.size} factor combinations are missing (e.g. "
                      f"classes {tuple(int(c) for c in example)})")
    if repeated.size:
      example = np.unravel_index(repeated[0], sizes)
      problems.append(f"{repeated.size} appear more than once (e.g. classes "
                      f"{tuple(int(c) for c in example)})")
    raise ValueError(
        f"{where}: the factor grid {dict(zip(factor_names, sizes))} is not "
        f"complete: {len(classes)} rows for {num_cells} combinations; "
        f"{'; '.join(problems)}. The file is truncated or not the official "
        f"one. {origin}")
  return sizes, index


def warn_if_not_official(sizes: Sequence[int], official: Sequence[int],
                         where: str) -> bool:
  """Warns when a file's grid differs from the official one.

  Args:
    sizes: the factor sizes found in the data.
    official: the sizes of the official release.
    where: the file or dataset, for the message.

  Returns:
    True if the sizes are the official ones.
  """
  if tuple(sizes) == tuple(official):
    return True
  warnings.warn(
      f"{where}: factor sizes {tuple(sizes)} differ from the official "
      f"{tuple(official)}; using the file's own grid. Fine for tests, but "
      f"results on it are not comparable with published dSprites/3D Shapes "
      f"numbers.", stacklevel=3)
  return False


def factor_values_from_rows(classes: np.ndarray, values: np.ndarray,
                            sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
  """Returns, per factor, the value of each class (as stored in the file).

  Args:
    classes: int [N, F] classes of each row.
    values: float [N, F] values of each row.
    sizes: number of classes of each factor.

  Returns:
    F float64 arrays; entry k of array i is the value of class k of factor i.
  """
  out = []
  for i, n in enumerate(sizes):
    per_class = np.zeros(n, np.float64)
    per_class[classes[:, i]] = values[:, i]
    out.append(per_class)
  return tuple(out)


def open_tfds_source(name: str, data_dir: str, split: str) -> Any:
  """Opens a prepared tfds dataset as a random-access data source (no TF).

  Args:
    name: tfds dataset name.
    data_dir: tfds data_dir ('' for the tfds default).
    split: split name.

  Returns:
    A sequence of decoded examples (dicts of numpy arrays).

  Raises:
    ImportError: if tensorflow-datasets is not installed.
    FileNotFoundError: if the dataset is not prepared in array_record format
      in ``data_dir`` (never downloads: preparing needs TensorFlow).
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as err:
    raise ImportError(
        f"data.source='tfds' needs tensorflow-datasets (pip install "
        f"tensorflow-datasets array_record); or use the official file with "
        f"source 'npz'/'h5'.") from err
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None,
                            download=False)
  except (NotImplementedError, FileNotFoundError, AssertionError, OSError,
          ValueError) as err:
    where = data_dir or "the tfds default data_dir (~/tensorflow_datasets)"
    raise FileNotFoundError(
        f"tfds dataset '{name}' is not prepared as array_record in {where} "
        f"({type(err).__name__}: {str(err).splitlines()[0]}). Prepare it once "
        f"in an environment with TensorFlow: `tfds build {name} "
        f"--file_format=array_record --data_dir=<dir>` (see docs/data.md), "
        f"then set data.tfds_data_dir=<dir>.") from err


def iterate_tfds_chunks(source: Any, chunk: int) -> Iterator[list]:
  """Yields the examples of a data source in order, ``chunk`` at a time.

  Args:
    source: a tfds data source, or any sequence of examples.
    chunk: examples per list.

  Yields:
    Lists of decoded examples; batched reads where the source offers them
    (``__getitems__`` is much faster on array_record).
  """
  get_many: Optional[Callable] = getattr(source, "__getitems__", None)
  for start in range(0, len(source), chunk):
    keys = list(range(start, min(start + chunk, len(source))))
    yield get_many(keys) if get_many else [source[k] for k in keys]


def read_tfds(source: Any, label_keys: Sequence[str],
              value_keys: Sequence[str], encode_images: Callable,
              where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Reads every example of a tfds data source in record order.

  Args:
    source: from ``open_tfds_source``.
    label_keys: features holding the factor classes.
    value_keys: features holding the factor values.
    encode_images: maps a uint8 image batch [C, H, W, ch] to its stored form.
    where: name for error messages.

  Returns:
    ``(stored_images, classes, values)`` in record order.
  """
  images, classes, values = [], [], []
  for examples in iterate_tfds_chunks(source, _CHUNK_ROWS):
    try:
      batch = np.stack([np.asarray(ex["image"]) for ex in examples])
      classes.append(np.array([[ex[k] for k in label_keys]
                               for ex in examples], np.int64))
      values.append(np.array([[ex[k] for k in value_keys]
                              for ex in examples], np.float64))
    except KeyError as err:
      raise ValueError(
          f"{where}: examples lack feature {err}; they have "
          f"{sorted(examples[0])}. The tfds dataset is not the expected "
          f"one.") from err
    images.append(encode_images(batch))
  if not images:
    raise ValueError(f"{where}: the tfds split is empty.")
  return (np.concatenate(images), np.concatenate(classes),
          np.concatenate(values))


def reorder_to_grid(stored: np.ndarray, index: np.ndarray) -> np.ndarray:
  """Moves rows to their grid index.

  Args:
    stored: array whose row r belongs at grid index ``index[r]``.
    index: a permutation of ``range(len(stored))``.

  Returns:
    ``out`` with ``out[index] = stored`` (``stored`` itself if already in
    order, to avoid a copy).
  """
  if np.array_equal(index, np.arange(len(index))):
    return stored
  out = np.empty_like(stored)
  out[index] = stored
  return out


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
    raise ValueError(f"{where}: images have {flat.shape[1]} pixels, expected "
                     f"{IMAGE_SIZE}x{IMAGE_SIZE}. {ORIGIN}")
  if flat.size and flat.max() > 1:
    raise ValueError(
        f"{where}: pixel values must be 0 or 1, found {flat.max()}. The "
        f"official dSprites images are binary uint8. {ORIGIN}")
  return np.packbits(flat, axis=1)


def _read_npy_header(f, member: str, path: str):
  """Reads an .npy header from an open stream: (shape, fortran_order, dtype)."""
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    return np.lib.format.read_array_header_1_0(f)
  if version == (2, 0):
    return np.lib.format.read_array_header_2_0(f)
  raise ValueError(f"{path}: array '{member}' uses .npy format version "
                   f"{version}, which this loader does not read. {ORIGIN}")


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
      raise ValueError(
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
    path = resolve_file(path, OFFICIAL_FILENAME, "dsprites", ORIGIN)
    try:
      archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
      raise ValueError(f"{path} is not an npz (zip) archive. {ORIGIN}") from err
    with archive:
      members = set(archive.namelist())
      for key in ("imgs", "latents_classes", "latents_values"):
        if key + ".npy" not in members:
          raise ValueError(
              f"{path}: array '{key}' is missing (the file has "
              f"{sorted(m[:-4] for m in members)}). {ORIGIN}")
      # ``metadata`` is a pickled dict; never load it (allow_pickle=False).
      with np.load(path, allow_pickle=False) as arrays:
        latents_classes = arrays["latents_classes"]
        latents_values = arrays["latents_values"]
      num = _check_latents(path, latents_classes, latents_values)
      classes = latents_classes[:, 1:]
      sizes, index = grid_index_from_classes(classes, FACTOR_NAMES, path,
                                             ORIGIN)
      official = warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES, path)
      packed = np.empty((num, PACKED_BYTES), np.uint8)
      # ``np.load`` would inflate all 3 GB of ``imgs`` at once; streaming the
      # zip member packs it chunk by chunk instead.
      with archive.open("imgs.npy") as f:
        shape, fortran_order, dtype = _read_npy_header(f, "imgs", path)
        if (tuple(shape) != (num, IMAGE_SIZE, IMAGE_SIZE) or
            dtype != np.uint8 or fortran_order):
          raise ValueError(
              f"{path}: 'imgs' must be C-ordered uint8 [{num}, 64, 64] (one "
              f"image per latents row), got {dtype} {tuple(shape)}"
              f"{' in Fortran order' if fortran_order else ''}. {ORIGIN}")
        row_bytes = IMAGE_SIZE * IMAGE_SIZE
        for start in range(0, num, _CHUNK_ROWS):
          rows = min(_CHUNK_ROWS, num - start)
          buffer = f.read(rows * row_bytes)
          if len(buffer) != rows * row_bytes:
            raise ValueError(f"{path}: 'imgs' is truncated at row {start}. "
                             f"{ORIGIN}")
          chunk = np.frombuffer(buffer, np.uint8).reshape(rows, -1)
          packed[index[start:start + rows]] = pack_images(chunk, path)
    details = describe_file(path)
    details["official_grid"] = official
    return cls(packed, sizes,
               factor_values_from_rows(classes, latents_values[:, 1:], sizes),
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
    source = open_tfds_source(TFDS_NAME, data_dir, split)
    where = f"tfds '{TFDS_NAME}' ({data_dir or 'default data_dir'})"
    packed, classes, values = read_tfds(
        source, TFDS_LABEL_KEYS, TFDS_VALUE_KEYS,
        lambda batch: pack_images(batch, where), where)
    origin = (f"Re-prepare the tfds dataset '{TFDS_NAME}' (see "
              f"docs/data.md). {ORIGIN}")
    sizes, index = grid_index_from_classes(classes, FACTOR_NAMES, where, origin)
    official = warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES, where)
    info = getattr(source, "dataset_info", None)
    version = str(info.version) if info is not None else "unknown"
    details = {"tfds_name": TFDS_NAME, "tfds_version": version,
               "tfds_data_dir": data_dir, "tfds_split": split,
               "official_grid": official}
    return cls(reorder_to_grid(packed, index), sizes,
               factor_values_from_rows(classes, values, sizes),
               source=(f"dsprites (tfds '{TFDS_NAME}' {version}, array_record "
                       f"in {data_dir or 'the default data_dir'})"),
               details=details)

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Returns the images of the given factor classes.

    Args:
      factors: int [num, 5] factor classes.
      random_state: unused (dSprites has one image per factor combination).

    Returns:
      float32 [num, 64, 64, 1] in {0, 1}.
    """
    del random_state
    factors = np.asarray(factors)
    ground_truth.check_factor_grid("DSprites", factors,
                                   self.factors_num_values)
    bits = np.unpackbits(self._packed[self.factors_to_index(factors)], axis=1)
    return bits.reshape(len(factors), *self.observation_shape).astype(
        np.float32)

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
    raise ValueError(
        f"{path}: 'latents_classes' must be an integer [N, 6] array (colour, "
        f"shape, scale, orientation, posX, posY), got "
        f"{latents_classes.dtype} {latents_classes.shape}. {ORIGIN}")
  if (latents_values.shape != latents_classes.shape or
      not np.issubdtype(latents_values.dtype, np.floating)):
    raise ValueError(
        f"{path}: 'latents_values' must be a float {latents_classes.shape} "
        f"array like 'latents_classes', got {latents_values.dtype} "
        f"{latents_values.shape}. {ORIGIN}")
  if len(latents_classes) == 0:
    raise ValueError(f"{path}: the latents arrays are empty. {ORIGIN}")
  colours = np.unique(latents_classes[:, 0])
  if len(colours) != 1:
    raise ValueError(
        f"{path}: column 0 (colour) must hold a single class, found "
        f"{len(colours)}: this is not the dSprites file. {ORIGIN}")
  return len(latents_classes)
