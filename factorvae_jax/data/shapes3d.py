"""3D Shapes (Burgess & Kim 2018) from DeepMind's h5 file or from tfds.

Images are held as uint8 [N, 64, 64, 3] in grid order (5.5 GiB for the
480,000 images; float32 would be 22 GiB), so a flat grid index is also the row.
They become float32 in [0, 1] only per batch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from factorvae_jax.data import files
from factorvae_jax.data import image_grid
from factorvae_jax.utils import errors

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape",
                "orientation")
OFFICIAL_FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
OFFICIAL_FILENAME = "3dshapes.h5"
IMAGE_SHAPE = (64, 64, 3)
ORIGIN = (
    "The file is DeepMind's 3D Shapes release: download "
    f"{OFFICIAL_FILENAME} from https://storage.googleapis.com/3d-shapes/"
    "3dshapes.h5 (linked from https://github.com/deepmind/3d-shapes).")

TFDS_NAME = "shapes3d"
TFDS_LABEL_KEYS = tuple("label_" + name for name in FACTOR_NAMES)
TFDS_VALUE_KEYS = tuple("value_" + name for name in FACTOR_NAMES)

# 4096 rows are 48 MiB of uint8 images: small next to the dataset itself.
_CHUNK_ROWS = 4096


class Shapes3D(image_grid.ImageGridData):
  """3D Shapes images (uint8, in grid order).

  Build with ``Shapes3D.from_h5`` or ``Shapes3D.from_tfds``.
  """

  def __init__(self, images: np.ndarray, factor_sizes: Sequence[int],
               factor_values: Sequence[np.ndarray], source: str,
               details: Optional[dict] = None):
    """Wraps images that are already in grid order.

    Args:
      images: uint8 [prod(factor_sizes), 64, 64, 3], row = flat grid index.
      factor_sizes: classes per factor, in ``FACTOR_NAMES`` order.
      factor_values: per factor, the value of each class.
      source: one line saying where the images come from.
      details: extra entries for ``describe()`` (file path, size, hash...).
    """
    factor_sizes = tuple(int(n) for n in factor_sizes)
    expected = (int(np.prod(factor_sizes)), *IMAGE_SHAPE)
    if images.shape != expected or images.dtype != np.uint8:
      raise errors.BadFileError(
          f"images must be uint8 {list(expected)} for factor "
          f"sizes {factor_sizes}, got {images.dtype} "
          f"{list(images.shape)}.")
    super().__init__(images, FACTOR_NAMES, factor_sizes,
                     range(len(FACTOR_NAMES)), source, details)
    self.factor_values = tuple(np.asarray(v) for v in factor_values)

  @classmethod
  def from_h5(cls, path: str) -> "Shapes3D":
    """Loads the official h5 file chunk by chunk (no float copy of the set).

    Args:
      path: the h5 file, or a directory containing ``OFFICIAL_FILENAME``.

    Returns:
      The dataset.

    Raises:
      FileNotFoundError: if there is no file at ``path``.
      ValueError: if the file is not in the official format (missing datasets,
        wrong shapes/dtypes, incomplete factor grid).
    """
    import h5py  # pylint: disable=g-import-not-at-top
    path = files.resolve_file(path, OFFICIAL_FILENAME, "shapes3d", ORIGIN)
    try:
      h5 = h5py.File(path, "r")
    except OSError as err:
      raise errors.BadFileError(f"{path} is not a readable HDF5 file ({err}). "
                                f"{ORIGIN}") from err
    with h5:
      for key in ("images", "labels"):
        if key not in h5:
          raise errors.BadFileError(
              f"{path}: dataset '{key}' is missing (the file has "
              f"{sorted(h5.keys())}). {ORIGIN}")
      labels = h5["labels"][()]
      num = _check_labels(path, labels)
      images_ds = h5["images"]
      if images_ds.shape != (num, *IMAGE_SHAPE) or images_ds.dtype != np.uint8:
        raise errors.BadFileError(
            f"{path}: 'images' must be uint8 [{num}, 64, 64, 3] (one image per "
            f"label row), got {images_ds.dtype} {list(images_ds.shape)}. "
            f"{ORIGIN}")
      classes, values = classes_from_values(labels)
      sizes, index = files.grid_index_from_classes(classes, FACTOR_NAMES,
                                                      path, ORIGIN)
      official = files.warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES,
                                               path)
      images = np.empty((num, *IMAGE_SHAPE), np.uint8)
      for start in range(0, num, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, num)
        images[index[start:stop]] = images_ds[start:stop]
    details = files.describe_file(path)
    details["official_grid"] = official
    return cls(images, sizes, values,
               source=f"shapes3d (official h5 file {details['path']})",
               details=details)

  @classmethod
  def from_tfds(cls, data_dir: str = "", split: str = "train") -> "Shapes3D":
    """Loads tfds ``shapes3d`` through ``tfds.data_source`` (no TensorFlow).

    The dataset must already be prepared in array_record format (see
    docs/data.md). Records come in shuffled order and are put back into grid
    order from their ``label_*`` features, which briefly needs twice the image
    memory (~11 GiB for the full set).

    Args:
      data_dir: tfds data_dir ('' for the tfds default).
      split: tfds split (3D Shapes only has 'train').

    Returns:
      The dataset.
    """
    source = files.open_tfds_source(TFDS_NAME, data_dir, split)
    where = f"tfds '{TFDS_NAME}' ({data_dir or 'default data_dir'})"

    def check_images(batch: np.ndarray) -> np.ndarray:
      if batch.shape[1:] != IMAGE_SHAPE or batch.dtype != np.uint8:
        raise errors.BadFileError(f"{where}: images must be uint8 64x64x3, got "
                                  f"{batch.dtype} {list(batch.shape[1:])}.")
      return batch

    images, classes, values = files.read_tfds(
        source, TFDS_LABEL_KEYS, TFDS_VALUE_KEYS, check_images, where)
    origin = (f"Re-prepare the tfds dataset '{TFDS_NAME}' (see "
              f"docs/data.md). {ORIGIN}")
    sizes, index = files.grid_index_from_classes(classes, FACTOR_NAMES,
                                                    where, origin)
    official = files.warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES,
                                             where)
    info = getattr(source, "dataset_info", None)
    version = str(info.version) if info is not None else "unknown"
    details = {"tfds_name": TFDS_NAME, "tfds_version": version,
               "tfds_data_dir": data_dir, "tfds_split": split,
               "official_grid": official}
    return cls(files.reorder_to_grid(images, index), sizes,
               files.factor_values_from_rows(classes, values, sizes),
               source=(f"shapes3d (tfds '{TFDS_NAME}' {version}, array_record "
                       f"in {data_dir or 'the default data_dir'})"),
               details=details)


def classes_from_values(
    labels: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
  """Turns the file's factor values into classes (rank among sorted uniques).

  Args:
    labels: float [N, 6] factor values, as in the h5 ``labels`` dataset.

  Returns:
    ``(classes, values)``: int64 [N, 6] classes and, per factor, the sorted
    distinct values (class k has value ``values[i][k]``).
  """
  classes = np.empty(labels.shape, np.int64)
  values = []
  for i in range(labels.shape[1]):
    distinct, classes[:, i] = np.unique(labels[:, i], return_inverse=True)
    values.append(distinct)
  return classes, tuple(values)


def _check_labels(path: str, labels: np.ndarray) -> int:
  """Checks the h5 ``labels`` dataset; returns the number of rows."""
  if (labels.ndim != 2 or labels.shape[1] != len(FACTOR_NAMES) or
      not np.issubdtype(labels.dtype, np.floating) or not len(labels)):
    raise errors.BadFileError(
        f"{path}: 'labels' must be a non-empty float [N, 6] array of factor "
        f"values ({', '.join(FACTOR_NAMES)}), got {labels.dtype} "
        f"{list(labels.shape)}. {ORIGIN}")
  if not np.all(np.isfinite(labels)):
    raise errors.BadFileError(f"{path}: 'labels' contains NaN or inf. {ORIGIN}")
  return len(labels)
