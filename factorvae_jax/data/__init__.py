"""Ground-truth datasets: disentanglement_lib's datasets and their sources.

``make_dataset(config.data)`` is the one entry point training and the metrics
use; it builds an entry of ``DATASETS`` (one ``DatasetSpec`` per dataset: its
sources and its builder; ``get_dataset_spec`` looks one up). The classes are
exported for direct use in tests and notebooks.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

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

__all__ = [
    "Cars3D", "DATASETS", "DSprites", "DSpritesNoShape", "DSpritesVariant",
    "DatasetSpec", "GroundTruthData", "ImageGridData", "MPI3D",
    "ProceduralDSprites", "Shapes3D", "SmallNORB", "get_dataset_spec",
    "load_scream", "make_dataset", "render", "render_from_classes",
]


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """One dataset ``make_dataset`` can build.

  Attributes:
    sources: where its data can come from (``config.data.source``); the
      first is the default.
    build: ``(source, data_config) -> GroundTruthData``, for a ``source`` of
      ``sources``; it reads the ``config.data`` fields it needs (``path``,
      ``tfds_data_dir``, ...).
  """
  sources: tuple[str, ...]
  build: Callable[[str, Any], GroundTruthData]


def _field(data_config: Any, name: str) -> str:
  return str(getattr(data_config, name, "") or "")


def _dsprites(source: str, data_config: Any) -> GroundTruthData:
  if source == "procedural":
    return ProceduralDSprites()
  if source == "npz":
    return DSprites.from_npz(_field(data_config, "path"))
  return DSprites.from_tfds(_field(data_config, "tfds_data_dir"))


def _dsprites_variant(variant: str):
  def build(source: str, data_config: Any) -> GroundTruthData:
    return DSpritesVariant(_dsprites(source, data_config), variant)
  return build


def _scream_dsprites(source: str, data_config: Any) -> GroundTruthData:
  # Check the painting before loading a large dSprites file.
  scream_path = scream_path_or_error(_field(data_config, "scream_path"))
  scream, details = load_scream(scream_path)
  return DSpritesVariant(_dsprites(source, data_config), "scream", scream,
                         details)


def _file_or_tfds(from_file, from_tfds):
  """A builder reading ``path`` for the first source, tfds for 'tfds'."""
  def build(source: str, data_config: Any) -> GroundTruthData:
    if source == "tfds":
      return from_tfds(_field(data_config, "tfds_data_dir"))
    return from_file(_field(data_config, "path"))
  return build


def _mpi3d(name: str):
  def build(source: str, data_config: Any) -> GroundTruthData:
    del source  # 'npz' only.
    return MPI3D.from_npz(_field(data_config, "path"), name)
  return build


_DSPRITES_SOURCES = ("procedural", "npz", "tfds")

#: Every dataset, keyed by ``config.data.name``.
DATASETS: dict[str, DatasetSpec] = {
    "dsprites": DatasetSpec(_DSPRITES_SOURCES, _dsprites),
    "dsprites_noshape": DatasetSpec(
        _DSPRITES_SOURCES,
        lambda source, c: DSpritesNoShape(_dsprites(source, c))),
    "color_dsprites": DatasetSpec(_DSPRITES_SOURCES,
                                  _dsprites_variant("color")),
    "noisy_dsprites": DatasetSpec(_DSPRITES_SOURCES,
                                  _dsprites_variant("noisy")),
    "scream_dsprites": DatasetSpec(_DSPRITES_SOURCES, _scream_dsprites),
    "shapes3d": DatasetSpec(("h5", "tfds"), _file_or_tfds(
        Shapes3D.from_h5, Shapes3D.from_tfds)),
    "smallnorb": DatasetSpec(("mat", "tfds"), _file_or_tfds(
        SmallNORB.from_mat, SmallNORB.from_tfds)),
    "cars3d": DatasetSpec(
        ("mat",), lambda source, c: Cars3D.from_mat(_field(c, "path"))),
    "mpi3d_toy": DatasetSpec(("npz",), _mpi3d("mpi3d_toy")),
    "mpi3d_realistic": DatasetSpec(("npz",), _mpi3d("mpi3d_realistic")),
    "mpi3d_real": DatasetSpec(("npz",), _mpi3d("mpi3d_real")),
}


def get_dataset_spec(name: str) -> DatasetSpec:
  """Returns the entry of ``DATASETS`` called ``name`` (case-insensitive).

  Raises:
    InvalidValueError: naming the bad value, the known ones and the fix.
  """
  return errors.lookup(DATASETS, name.lower(), lambda: (
      f"data.name={name!r} is not a known dataset; use one of "
      f"{sorted(DATASETS)} (a new dataset needs its DatasetSpec in "
      f"DATASETS, factorvae_jax/data/__init__.py)."))


def make_dataset(data_config: Any) -> GroundTruthData:
  """Builds the dataset a ``config.data`` block describes.

  Args:
    data_config: a ConfigDict (or any object with attributes) with ``name``
      (a key of ``DATASETS``) and optionally ``source`` (default: the first
      of ``DATASETS[name].sources``; the dSprites family: 'procedural' | 'npz' | 'tfds';
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
  spec = get_dataset_spec(name)
  source = (_field(data_config, "source") or spec.sources[0]).lower()
  if source not in spec.sources:
    raise errors.InvalidValueError(
        f"data.source={source!r} is not available for {name}; "
        f"use one of {list(spec.sources)}.")
  return spec.build(source, data_config)
