"""Ground-truth datasets: dSprites (official or procedural) and 3D Shapes.

``make_dataset(config.data)`` is the one entry point training and the metrics
use; the classes are exported for direct use in tests and notebooks.
"""

from __future__ import annotations

from typing import Any

from factorvae_jax.data.dsprites import DSprites
from factorvae_jax.data.dsprites_procedural import ProceduralDSprites
from factorvae_jax.data.dsprites_procedural import render
from factorvae_jax.data.dsprites_procedural import render_from_classes
from factorvae_jax.data.ground_truth import GroundTruthData
from factorvae_jax.data.shapes3d import Shapes3D

# name -> (default source, allowed sources).
SOURCES = {
    "dsprites": ("procedural", ("procedural", "npz", "tfds")),
    "shapes3d": ("h5", ("h5", "tfds")),
}

__all__ = [
    "DSprites", "GroundTruthData", "ProceduralDSprites", "SOURCES",
    "Shapes3D", "make_dataset", "render", "render_from_classes",
]


def make_dataset(data_config: Any) -> GroundTruthData:
  """Builds the dataset a ``config.data`` block describes.

  Args:
    data_config: a ConfigDict (or any object with attributes) with ``name``
      ('dsprites' | 'shapes3d') and optionally ``source`` (dsprites:
      'procedural' (default) | 'npz' | 'tfds'; shapes3d: 'h5' (default) |
      'tfds'), ``path`` (the file for 'npz'/'h5', or a directory holding it)
      and ``tfds_data_dir`` ('' = the tfds default).

  Returns:
    The dataset.

  Raises:
    ValueError: for an unknown name or source.
    FileNotFoundError: if the file or prepared tfds data is missing.
  """
  name = str(getattr(data_config, "name", "") or "").lower()
  if name not in SOURCES:
    raise ValueError(f"data.name={name!r} is not a known dataset; use one of "
                     f"{sorted(SOURCES)}.")
  default_source, allowed = SOURCES[name]
  source = str(getattr(data_config, "source", "") or default_source).lower()
  if source not in allowed:
    raise ValueError(f"data.source={source!r} is not available for {name}; "
                     f"use one of {list(allowed)}.")
  path = str(getattr(data_config, "path", "") or "")
  tfds_data_dir = str(getattr(data_config, "tfds_data_dir", "") or "")

  if name == "dsprites":
    if source == "procedural":
      return ProceduralDSprites()
    if source == "npz":
      return DSprites.from_npz(path)
    return DSprites.from_tfds(tfds_data_dir)
  if source == "h5":
    return Shapes3D.from_h5(path)
  return Shapes3D.from_tfds(tfds_data_dir)
