"""File and tfds helpers shared by every dataset loader.

Each loader checks its files the same way: a path that is missing, a factor
grid that is incomplete or a tfds dataset that is not prepared raises an error
naming the path, the problem and where the data comes from, never a silent
fallback.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import IO, Any, Callable, Iterator, Optional, Sequence

import numpy as np

from factorvae_jax.utils import errors

# Examples read per step from a tfds data source.
_CHUNK_ROWS = 4096
_FINGERPRINT_BYTES = 1 << 20


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


def resolve_file(path: str, filename: str, what: str, origin: str,
                 config_field: str = "data.path") -> str:
  """Returns ``path`` (or ``path/filename`` for a directory) if it exists.

  Args:
    path: the configured path; a directory is searched for the official file
      name.
    filename: the official file name.
    what: dataset name for the message.
    origin: where the file comes from (appended to errors).
    config_field: the config field that holds ``path``, for the message.

  Returns:
    Path of an existing file.

  Raises:
    FileNotFoundError: naming the path tried and where to get the file.
  """
  if not path:
    raise errors.MissingFileError(
        f"{what}: {config_field} is empty; set it to the path of {filename}. "
        f"{origin}")
  if os.path.isdir(path):
    path = os.path.join(path, filename)
  if not os.path.isfile(path):
    raise errors.MissingFileError(f"{what}: no file at {path}. {origin}")
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
      raise errors.BadFileError(
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
    raise errors.BadFileError(
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
      f"results on it are not comparable with published numbers.",
      stacklevel=3)
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
        "data.source='tfds' needs tensorflow-datasets (pip install "
        "tensorflow-datasets array_record); or use the dataset's official "
        "file instead.") from err
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir or None,
                            download=False)
  except (NotImplementedError, FileNotFoundError, AssertionError, OSError,
          ValueError) as err:
    where = data_dir or "the tfds default data_dir (~/tensorflow_datasets)"
    raise errors.MissingFileError(
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
      raise errors.BadFileError(
          f"{where}: examples lack feature {err}; they have "
          f"{sorted(examples[0])}. The tfds dataset is not the expected "
          f"one.") from err
    images.append(encode_images(batch))
  if not images:
    raise errors.BadFileError(f"{where}: the tfds split is empty.")
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


def read_npy_header(f, member: str, path: str, origin: str):
  """Reads an .npy header from an open stream (e.g. a member of an npz).

  Args:
    f: binary stream positioned at the start of the .npy data.
    member: array name, for messages.
    path: the file, for messages.
    origin: where the file comes from, appended to errors.

  Returns:
    ``(shape, fortran_order, dtype)``; ``f`` is left at the first data byte.
  """
  version = np.lib.format.read_magic(f)
  if version == (1, 0):
    return np.lib.format.read_array_header_1_0(f)
  if version == (2, 0):
    return np.lib.format.read_array_header_2_0(f)
  raise errors.BadFileError(
      f"{path}: array '{member}' uses .npy format version "
      f"{version}, which this loader does not read. {origin}")


def iterate_npy_rows(f: IO[bytes], num: int, row_shape: Sequence[int],
                     member: str, path: str, origin: str,
                     chunk: int = _CHUNK_ROWS
                     ) -> Iterator[tuple[int, np.ndarray]]:
  """Reads the uint8 rows of an open .npy stream ``chunk`` rows at a time.

  Streaming a zip member this way never holds more than one chunk besides
  the caller's destination array (``np.load`` would inflate it all at once).

  Args:
    f: stream positioned after the header (``read_npy_header``).
    num: number of rows.
    row_shape: shape of one row.
    member: array name, for messages.
    path: the file, for messages.
    origin: where the file comes from, appended to errors.
    chunk: rows per read.

  Yields:
    ``(start, rows)``: the index of the first row and uint8 [n, *row_shape].

  Raises:
    ValueError: if the stream ends early.
  """
  row_bytes = int(np.prod(row_shape))
  for start in range(0, num, chunk):
    count = min(chunk, num - start)
    buffer = f.read(count * row_bytes)
    if len(buffer) != count * row_bytes:
      raise errors.BadFileError(
          f"{path}: '{member}' is truncated at row {start}. "
          f"{origin}")
    yield start, np.frombuffer(buffer, np.uint8).reshape(count, *row_shape)
