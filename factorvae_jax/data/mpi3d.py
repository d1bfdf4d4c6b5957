"""MPI3D toy, realistic and real (Gondal et al. 2019) from their npz files.

Each file holds ``images``: uint8 [N, 64, 64, 3] in row-major order of the
factors object_color, object_shape, object_size (2), camera_height (3),
background_color (3), first_dof (40), second_dof (40). disentanglement_lib
uses 4 colours x 4 shapes (460,800 images) for ``mpi3d_toy`` and
``mpi3d_realistic`` and 6 x 6 (1,036,800 images) for ``mpi3d_real``; the
grid is inferred from N (those two counts, or ``factor_sizes`` for reduced
test files). The file carries no labels, so its order is taken as given.

The images are streamed from the npz into one uint8 array (no second copy):
5.3 GiB (4 x 4) or 11.9 GiB (6 x 6), on the host and on every device.
"""

from __future__ import annotations

import warnings
import zipfile
from typing import Optional, Sequence

import numpy as np

from factorvae_jax.data import files
from factorvae_jax.data import image_grid
from factorvae_jax.utils import errors

FACTOR_NAMES = ("object_color", "object_shape", "object_size",
                "camera_height", "background_color", "first_dof",
                "second_dof")
GRID_4X4 = (4, 4, 2, 3, 3, 40, 40)
GRID_6X6 = (6, 6, 2, 3, 3, 40, 40)
# disentanglement_lib's grid for each variant.
DLIB_GRIDS = {"mpi3d_toy": GRID_4X4, "mpi3d_realistic": GRID_4X4,
              "mpi3d_real": GRID_6X6}
FILENAMES = {name: name + ".npz" for name in DLIB_GRIDS}
IMAGE_SHAPE = (64, 64, 3)


def origin(variant: str) -> str:
  """Where a variant's file comes from."""
  dlib = (" (disentanglement_lib's bin/dlib_download_data saves "
          "https://storage.googleapis.com/disentanglement_dataset/data_npz/"
          "sim_toy_64x_ordered_without_heldout_factors.npz as "
          "mpi3d_toy/mpi3d_toy.npz)" if variant == "mpi3d_toy" else "")
  return (f"The file is {FILENAMES[variant]} of the MPI3D release "
          f"(https://github.com/rr-learning/disentanglement_dataset; "
          f"https://storage.googleapis.com/disentanglement_dataset/"
          f"Final_Dataset/{FILENAMES[variant]}){dlib}; set data.path to it.")


class MPI3D(image_grid.ImageGridData):
  """An MPI3D variant: 7 factors, 64x64x3."""

  @classmethod
  def from_npz(cls, path: str, variant: str = "mpi3d_toy",
               factor_sizes: Optional[Sequence[int]] = None) -> "MPI3D":
    """Loads a variant's npz file, streaming the images.

    Args:
      path: the npz file, or a folder holding ``FILENAMES[variant]``.
      variant: 'mpi3d_toy', 'mpi3d_realistic' or 'mpi3d_real'.
      factor_sizes: the grid of a reduced file (tests); None infers 4 x 4 or
        6 x 6 from the number of images.

    Returns:
      The dataset.

    Raises:
      FileNotFoundError: if there is no file at ``path``.
      ValueError: if the file is not in the official format.
    """
    if variant not in DLIB_GRIDS:
      raise errors.InvalidValueError(
          f"variant={variant!r} is not an MPI3D variant; use "
          f"one of {sorted(DLIB_GRIDS)}.")
    where = origin(variant)
    path = files.resolve_file(path, FILENAMES[variant], variant, where)
    try:
      archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as err:
      raise errors.BadFileError(
          f"{path} is not an npz (zip) archive. {where}") from err
    with archive:
      if "images.npy" not in archive.namelist():
        raise errors.BadFileError(
            f"{path}: array 'images' is missing (the file has "
            f"{sorted(m[:-4] for m in archive.namelist())}). {where}")
      with archive.open("images.npy") as f:
        shape, fortran_order, dtype = files.read_npy_header(f, "images", path,
                                                            where)
        num = shape[0] if shape else 0
        sizes = _grid_sizes(num, factor_sizes, path, where)
        if (tuple(shape[1:]) != IMAGE_SHAPE or dtype != np.uint8 or
            fortran_order):
          raise errors.BadFileError(
              f"{path}: 'images' must be C-ordered uint8 [N, 64, 64, 3], got "
              f"{dtype} {tuple(shape)}"
              f"{' in Fortran order' if fortran_order else ''}. {where}")
        images = np.empty((num, *IMAGE_SHAPE), np.uint8)
        for start, chunk in files.iterate_npy_rows(f, num, IMAGE_SHAPE,
                                                   "images", path, where):
          images[start:start + len(chunk)] = chunk
    details = files.describe_file(path)
    details["variant"] = variant
    details["official_grid"] = tuple(sizes) in (GRID_4X4, GRID_6X6)
    if details["official_grid"] and tuple(sizes) != DLIB_GRIDS[variant]:
      warnings.warn(
          f"{path}: {variant} has the {sizes[0]} x {sizes[1]} colour x shape "
          f"grid; disentanglement_lib's {variant} uses "
          f"{DLIB_GRIDS[variant][0]} x {DLIB_GRIDS[variant][1]}, so results "
          f"are not comparable with its numbers.", stacklevel=2)
    return cls(images, FACTOR_NAMES, sizes, tuple(range(7)),
               source=f"{variant} (npz file {details['path']})",
               details=details)


def _grid_sizes(num: int, factor_sizes: Optional[Sequence[int]], path: str,
                where: str) -> tuple[int, ...]:
  if factor_sizes is not None:
    sizes = tuple(int(n) for n in factor_sizes)
    if len(sizes) != 7 or int(np.prod(sizes)) != num:
      raise errors.BadFileError(
          f"{path}: factor_sizes {sizes} (7 factors) do not "
          f"match its {num} images. {where}")
    return sizes
  for sizes in (GRID_4X4, GRID_6X6):
    if num == int(np.prod(sizes)):
      return sizes
  raise errors.BadFileError(
      f"{path}: 'images' has {num} rows; an MPI3D file has "
      f"{int(np.prod(GRID_4X4))} (4 colours x 4 shapes) or "
      f"{int(np.prod(GRID_6X6))} (6 x 6). The file is truncated or not "
      f"MPI3D. {where}")
