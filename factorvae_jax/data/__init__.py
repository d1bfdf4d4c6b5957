"""Ground-truth datasets: disentanglement_lib's datasets and their sources.

``make_dataset(config.data)`` is the one entry point training and the metrics
use; the classes are exported for direct use in tests and notebooks.
"""

from __future__ import annotations

from typing import Any

from factorvae_jax.data.cars3d import Cars3D
from factorvae_jax.data.dsprites import DSprites
from factorvae_jax.data.dsprites_procedural import ProceduralDSprites
from factorvae_jax.data.dsprites_procedural import render
from factorvae_jax.data.dsprites_procedural import render_from_classes
from factorvae_jax.data.dsprites_variants import DSpritesNoShape
from factorvae_jax.data.dsprites_variants import DSpritesVariant
from factorvae_jax.data.dsprites_variants import load_scream
from factorvae_jax.data.dsprites_variants import scream_path_or_error
from factorvae_jax.data.ground_truth import GroundTruthData
from factorvae_jax.data.image_grid import ImageGridData
from factorvae_jax.data.mpi3d import MPI3D
from factorvae_jax.data.shapes3d import Shapes3D
from factorvae_jax.data.smallnorb import SmallNORB
from factorvae_jax.utils import errors

_DSPRITES_SOURCES = ("procedural", ("procedural", "npz", "tfds"))
# name -> (default source, allowed sources).
SOURCES = {
    "dsprites": _DSPRITES_SOURCES,
    "dsprites_noshape": _DSPRITES_SOURCES,
    "color_dsprites": _DSPRITES_SOURCES,
    "noisy_dsprites": _DSPRITES_SOURCES,
    "scream_dsprites": _DSPRITES_SOURCES,
    "shapes3d": ("h5", ("h5", "tfds")),
    "smallnorb": ("mat", ("mat", "tfds")),
    "cars3d": ("mat", ("mat",)),
    "mpi3d_toy": ("npz", ("npz",)),
    "mpi3d_realistic": ("npz", ("npz",)),
    "mpi3d_real": ("npz", ("npz",)),
}

__all__ = [
    "Cars3D", "DSprites", "DSpritesNoShape", "DSpritesVariant",
    "GroundTruthData", "ImageGridData", "MPI3D", "ProceduralDSprites",
    "SOURCES", "Shapes3D", "SmallNORB", "load_scream", "make_dataset",
    "render", "render_from_classes",
]


def _field(data_config: Any, name: str) -> str:
  return str(getattr(data_config, name, "") or "")


def _dsprites(source: str, path: str, tfds_data_dir: str) -> GroundTruthData:
  if source == "procedural":
    return ProceduralDSprites()
  if source == "npz":
    return DSprites.from_npz(path)
  return DSprites.from_tfds(tfds_data_dir)


def make_dataset(data_config: Any) -> GroundTruthData:
  """Builds the dataset a ``config.data`` block describes.

  Args:
    data_config: a ConfigDict (or any object with attributes) with ``name``
      (a key of ``SOURCES``) and optionally ``source`` (default: the first of
      ``SOURCES[name]``; the dSprites family: 'procedural' | 'npz' | 'tfds';
      shapes3d: 'h5' | 'tfds'; smallnorb: 'mat' | 'tfds'; cars3d: 'mat';
      mpi3d_*: 'npz'), ``path`` (the dataset's file, or a directory holding
      it; for smallnorb and cars3d the folder of .mat files),
      ``tfds_data_dir`` ('' = the tfds default) and, for scream_dsprites,
      ``scream_path`` (the painting).

  Returns:
    The dataset.

  Raises:
    ValueError: for an unknown name or source.
    FileNotFoundError: if a file or prepared tfds data is missing.
  """
  name = _field(data_config, "name").lower()
  if name not in SOURCES:
    raise errors.InvalidValueError(
        f"data.name={name!r} is not a known dataset; use one of "
        f"{sorted(SOURCES)}.")
  default_source, allowed = SOURCES[name]
  source = (_field(data_config, "source") or default_source).lower()
  if source not in allowed:
    raise errors.InvalidValueError(
        f"data.source={source!r} is not available for {name}; "
        f"use one of {list(allowed)}.")
  path = _field(data_config, "path")
  tfds_data_dir = _field(data_config, "tfds_data_dir")

  if name == "shapes3d":
    if source == "h5":
      return Shapes3D.from_h5(path)
    return Shapes3D.from_tfds(tfds_data_dir)
  if name == "smallnorb":
    if source == "mat":
      return SmallNORB.from_mat(path)
    return SmallNORB.from_tfds(tfds_data_dir)
  if name == "cars3d":
    return Cars3D.from_mat(path)
  if name.startswith("mpi3d"):
    return MPI3D.from_npz(path, name)
  if name == "scream_dsprites":
    # Check the painting before loading a large dSprites file.
    scream_path = scream_path_or_error(_field(data_config, "scream_path"))
    scream, details = load_scream(scream_path)
    return DSpritesVariant(_dsprites(source, path, tfds_data_dir), "scream",
                           scream, details)
  base = _dsprites(source, path, tfds_data_dir)
  if name == "dsprites":
    return base
  if name == "dsprites_noshape":
    return DSpritesNoShape(base)
  return DSpritesVariant(base, name[:-len("_dsprites")])
