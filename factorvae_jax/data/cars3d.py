"""Cars3D (Reed et al. 2015) as disentanglement_lib uses it.

The official data is a folder of MATLAB files, one per car model (183), each
holding ``im``: uint8 [128, 128, 3, 24, 4] (height, width, RGB, azimuth,
elevation). Factors, in disentanglement_lib's order: elevation (4), azimuth
(24), object type (183). Images are resized to 64 x 64 with PIL's Lanczos
filter and kept as uint8 (17,568 images, 216 MB).

disentanglement_lib numbers the car models in the order its directory listing
returns the files, which depends on the file system; here they are numbered
in sorted file-name order. Metrics do not depend on how a factor's classes
are numbered.
"""

from __future__ import annotations

import os

import numpy as np

from factorvae_jax.data import files
from factorvae_jax.data import image_grid
from factorvae_jax.utils import errors

FACTOR_NAMES = ("elevation", "azimuth", "object_type")
OFFICIAL_FACTOR_SIZES = (4, 24, 183)
IMAGE_SIZE = 64
ORIGIN = (
    "Cars3D's official files are the 183 car_*_mesh.mat files in data/cars/ "
    "of http://www.scottreed.info/files/nips2015-analogy-data.tar.gz "
    "(disentanglement_lib's bin/dlib_download_data); set data.path to that "
    "folder.")


def _load_mesh(path: str) -> np.ndarray:
  """One car model: uint8 [4 elevations, 24 azimuths, 64, 64, 3]."""
  import scipy.io  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    mesh = scipy.io.loadmat(path)
  except (ValueError, OSError, TypeError) as err:
    raise errors.BadFileError(f"{path} is not a readable MATLAB file ({err}). "
                              f"{ORIGIN}") from err
  if "im" not in mesh:
    raise errors.BadFileError(
        f"{path}: variable 'im' is missing (the file has "
        f"{sorted(k for k in mesh if not k.startswith('__'))}). "
        f"{ORIGIN}")
  im = mesh["im"]
  if (im.ndim != 5 or im.shape[2:] != (3, 24, 4) or im.dtype != np.uint8):
    raise errors.BadFileError(
        f"{path}: 'im' must be uint8 [H, W, 3, 24, 4] (RGB, "
        f"azimuth, elevation), got {im.dtype} {list(im.shape)}. "
        f"{ORIGIN}")
  out = np.empty((4, 24, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
  for elevation in range(4):
    for azimuth in range(24):
      picture = Image.fromarray(np.ascontiguousarray(
          im[:, :, :, azimuth, elevation]))
      # disentanglement_lib calls thumbnail((64, 64)): for the square
      # 128 x 128 images that is this resize.
      out[elevation, azimuth] = np.asarray(
          picture.resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS))
  return out


class Cars3D(image_grid.ImageGridData):
  """Cars3D: elevation, azimuth, object type; 64x64x3."""

  @classmethod
  def from_mat(cls, directory: str) -> "Cars3D":
    """Loads every ``*.mat`` file of a folder (one per car model).

    Args:
      directory: the folder (``data/cars`` of the official archive).

    Returns:
      The dataset.

    Raises:
      FileNotFoundError: if the folder is missing or holds no .mat file.
      ValueError: if a file is malformed.
    """
    if not directory or not os.path.isdir(directory):
      raise errors.MissingFileError(
          f"cars3d: data.path={directory!r} is not a folder; set it to the "
          f"folder of car_*_mesh.mat files. {ORIGIN}")
    names = sorted(n for n in os.listdir(directory) if n.endswith(".mat"))
    if not names:
      raise errors.MissingFileError(f"cars3d: no .mat files in {directory}. "
                                    f"{ORIGIN}")
    sizes = (4, 24, len(names))
    official = files.warn_if_not_official(sizes, OFFICIAL_FACTOR_SIZES,
                                          directory)
    grid = np.empty((4, 24, len(names), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for i, name in enumerate(names):
      grid[:, :, i] = _load_mesh(os.path.join(directory, name))
    details = {"path": os.path.abspath(directory), "num_files": len(names),
               "first_file": names[0], "last_file": names[-1],
               "official_grid": official}
    return cls(grid.reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3), FACTOR_NAMES,
               sizes, (0, 1, 2),
               source=f"cars3d (official .mat files in "
               f"{os.path.abspath(directory)})", details=details)
