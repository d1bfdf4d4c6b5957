"""SmallNORB (LeCun et al. 2004) as disentanglement_lib uses it.

Both official parts (training and testing, 24,300 stereo pairs each) together
form the full grid category (5) x instance (10) x elevation (9) x azimuth (18)
x lighting (6). Only the left camera is used, resized from 96 x 96 to 64 x 64.
The ground-truth factors are category, elevation, azimuth and lighting; the
instance is drawn at random per observation.

Resizing reproduces disentanglement_lib exactly: it reads the pixels as int8
and PIL turns such an array into a 32-bit integer image, so the Lanczos filter
is not clipped to [0, 255] and a few values fall slightly outside [0, 1] after
/ 255. The images are kept as int16.
"""

from __future__ import annotations

import gzip
import os
from typing import Sequence

import numpy as np

from factorvae_jax.data import files
from factorvae_jax.data import image_grid
from factorvae_jax.utils import errors

FULL_FACTOR_NAMES = ("category", "instance", "elevation", "azimuth",
                     "lighting")
FULL_FACTOR_SIZES = (5, 10, 9, 18, 6)
LATENT_FACTOR_INDICES = (0, 2, 3, 4)
PARTS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
KINDS = ("dat", "cat", "info")
IMAGE_SIZE = 64
ORIGIN = (
    "SmallNORB's official files are smallnorb-<part>-{dat,cat,info}.mat(.gz) "
    "for the parts 5x46789x9x18x6x2x96x96-training and "
    "5x01235x9x18x6x2x96x96-testing, from "
    "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ (all six files, "
    "gzipped or not, in the folder data.path).")

TFDS_NAME = "smallnorb"
TFDS_SPLITS = ("train", "test")

# Magic numbers of the NORB binary matrix format.
_MAGIC_DTYPES = {507333717: np.uint8, 507333716: np.int32}


def file_name(part: str, kind: str) -> str:
  """The official (unzipped) name of one file of a part."""
  return f"smallnorb-{part}-{kind}.mat"


def read_matrix(path: str) -> np.ndarray:
  """Reads a NORB binary matrix file (``.mat``, or gzipped ``.mat.gz``).

  The format: little-endian int32 magic (the element type), int32 number of
  dimensions, max(3, ndim) int32 sizes, then the elements.

  Args:
    path: the file.

  Returns:
    The array (uint8 for images, int32 for labels).

  Raises:
    ValueError: if the header or the length is wrong.
  """
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as err:
    raise errors.BadFileError(
        f"{path} cannot be read ({err}). {ORIGIN}") from err
  if len(raw) < 20:
    raise errors.BadFileError(
        f"{path} is {len(raw)} bytes, too short for a NORB "
        f"matrix header. {ORIGIN}")
  magic, ndim = (int(v) for v in np.frombuffer(raw, "<i4", 2))
  if magic not in _MAGIC_DTYPES or not 1 <= ndim <= 8:
    raise errors.BadFileError(
        f"{path}: header (magic {magic}, {ndim} dimensions) is "
        f"not a NORB byte or int32 matrix. {ORIGIN}")
  header_dims = max(3, ndim)
  dims = tuple(int(v) for v in np.frombuffer(raw, "<i4", ndim, 8))
  offset = 8 + 4 * header_dims
  dtype = np.dtype(_MAGIC_DTYPES[magic]).newbyteorder("<")
  expected = int(np.prod(dims)) * dtype.itemsize
  if len(raw) - offset != expected:
    raise errors.BadFileError(
        f"{path}: {len(raw) - offset} data bytes for shape "
        f"{dims} ({expected} expected): truncated or damaged. "
        f"{ORIGIN}")
  return np.frombuffer(raw, dtype, offset=offset).reshape(dims)


def resize_like_dlib(images: np.ndarray) -> np.ndarray:
  """Resizes uint8 [N, 96, 96] to int16 [N, 64, 64] as disentanglement_lib.

  Args:
    images: uint8 [N, H, W] grey images.

  Returns:
    int16 [N, 64, 64]: PIL's Lanczos resize of the 32-bit integer image.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = np.empty((len(images), IMAGE_SIZE, IMAGE_SIZE), np.int16)
  for i, image in enumerate(images):
    # int32 input gives PIL mode "I", as disentanglement_lib's int8 read did.
    picture = Image.fromarray(image.astype(np.int32))
    out[i] = np.asarray(picture.resize((IMAGE_SIZE, IMAGE_SIZE),
                                       Image.LANCZOS))
  return out


def _find(directory: str, name: str) -> str:
  for candidate in (name, name + ".gz"):
    path = os.path.join(directory, candidate)
    if os.path.isfile(path):
      return path
  raise errors.MissingFileError(
      f"smallnorb: no file {os.path.join(directory, name)}"
      f"(.gz). {ORIGIN}")


def _grid(images: np.ndarray, features: np.ndarray, where: str,
          origin: str) -> tuple[np.ndarray, tuple[int, ...], bool]:
  """Puts images into full-grid order: (images, grid sizes, official?)."""
  sizes, index = files.grid_index_from_classes(features, FULL_FACTOR_NAMES,
                                               where, origin)
  official = files.warn_if_not_official(sizes, FULL_FACTOR_SIZES, where)
  return files.reorder_to_grid(images, index), sizes, official


class SmallNORB(image_grid.ImageGridData):
  """SmallNORB: 4 ground-truth factors, instance as nuisance, 64x64x1."""

  @classmethod
  def from_mat(cls, directory: str) -> "SmallNORB":
    """Loads the six official files from a folder.

    Args:
      directory: folder holding the training and testing dat/cat/info files
        (``.mat`` or ``.mat.gz``).

    Returns:
      The dataset.

    Raises:
      FileNotFoundError: naming the missing file and where it comes from.
      ValueError: if a file is malformed or the grid is incomplete.
    """
    if not directory or not os.path.isdir(directory):
      raise errors.MissingFileError(
          f"smallnorb: data.path={directory!r} is not a folder; set it to the "
          f"folder holding the six files. {ORIGIN}")
    images, features, details = [], [], {}
    for part in PARTS:
      paths = {kind: _find(directory, file_name(part, kind))
               for kind in KINDS}
      dat, cat, info = (read_matrix(paths[kind]) for kind in KINDS)
      num = len(dat)
      if dat.ndim != 4 or dat.shape[1:] != (2, 96, 96):
        raise errors.BadFileError(
            f"{paths['dat']}: images must be [N, 2, 96, 96] "
            f"stereo pairs, got {list(dat.shape)}. {ORIGIN}")
      if cat.shape != (num,) or info.shape != (num, 4):
        raise errors.BadFileError(
            f"{paths['cat']}, {paths['info']}: need [{num}] categories and "
            f"[{num}, 4] (instance, elevation, azimuth, lighting) infos, got "
            f"{list(cat.shape)} and {list(info.shape)}. {ORIGIN}")
      images.append(resize_like_dlib(dat[:, 0]))
      part_features = np.column_stack([cat, info]).astype(np.int64)
      # Azimuths are stored as 0, 2, ..., 34.
      part_features[:, 3] //= 2
      features.append(part_features)
      details[part] = files.describe_file(paths["dat"])
    images = np.concatenate(images)[..., None]
    grid_images, sizes, official = _grid(images, np.concatenate(features),
                                         directory, ORIGIN)
    details["official_grid"] = official
    return cls(grid_images, FULL_FACTOR_NAMES, sizes, LATENT_FACTOR_INDICES,
               source=f"smallnorb (official files in "
               f"{os.path.abspath(directory)})", details=details)

  @classmethod
  def from_tfds(cls, data_dir: str = "",
                splits: Sequence[str] = TFDS_SPLITS) -> "SmallNORB":
    """Loads tfds ``smallnorb`` (both splits) without TensorFlow.

    tfds stores the left image as ``image`` (96x96x1 uint8), the classes as
    ``label_category``, ``instance``, ``label_elevation``, ``label_azimuth``
    (already halved) and ``label_lighting``.

    Args:
      data_dir: tfds data_dir ('' for the default), prepared as array_record.
      splits: the splits forming the grid (both, as disentanglement_lib).

    Returns:
      The dataset.
    """
    where = f"tfds '{TFDS_NAME}' ({data_dir or 'default data_dir'})"
    keys = ("label_category", "instance", "label_elevation", "label_azimuth",
            "label_lighting")
    images, features = [], []
    for split in splits:
      source = files.open_tfds_source(TFDS_NAME, data_dir, split)

      def encode(batch):
        if batch.shape[1:] != (96, 96, 1) or batch.dtype != np.uint8:
          raise errors.BadFileError(
              f"{where}: images must be uint8 96x96x1, got "
              f"{batch.dtype} {list(batch.shape[1:])}.")
        return resize_like_dlib(batch[..., 0])

      part_images, classes, _ = files.read_tfds(source, keys, (), encode,
                                                where)
      images.append(part_images)
      features.append(classes)
    origin = f"Re-prepare the tfds dataset '{TFDS_NAME}'. {ORIGIN}"
    grid_images, sizes, official = _grid(np.concatenate(images)[..., None],
                                         np.concatenate(features), where,
                                         origin)
    details = {"tfds_name": TFDS_NAME, "tfds_data_dir": data_dir,
               "tfds_splits": list(splits), "official_grid": official}
    return cls(grid_images, FULL_FACTOR_NAMES, sizes, LATENT_FACTOR_INDICES,
               source=f"smallnorb (tfds '{TFDS_NAME}', array_record in "
               f"{data_dir or 'the default data_dir'})", details=details)
