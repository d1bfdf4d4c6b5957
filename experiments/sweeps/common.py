"""Helpers shared by the sweep files: config variants and small grids.

A sweep file's argument is ``[variant][,seeds=N]``
(``factorvae_jax.sweeps.parse_arg``): the variant is the config variant of
``experiments/configs`` ('full', 'quick' or 'test'), and ``test`` also
shrinks every grid to its first and last value so the whole sweep runs in
the test suite.
"""

from __future__ import annotations

import copy
import importlib
import os
from typing import Sequence

import ml_collections

from factorvae_jax.utils import errors

#: What a study file's argument may add: the dataset, and its files.
DATA_OPTIONS = ("dataset", "data_path", "scream_path")


def grid_values(values: Sequence[float], variant: str) -> list[float]:
  """The grid's values; the first and last only for the 'test' variant."""
  values = list(values)
  return [values[0], values[-1]] if variant == "test" else values


def for_variant(config: ml_collections.ConfigDict,
                variant: str) -> ml_collections.ConfigDict:
  """Trims a ':test' config further so a sweep of several runs takes
  seconds each: 20 steps, one periodic evaluation of two cheap metrics, and
  no DCI (its boosted trees take most of a tiny run's time).

  Other variants are returned unchanged.
  """
  if variant != "test":
    return config
  with config.unlocked():
    config.num_steps = 20
    config.checkpoint_every_steps = 10
    config.eval_every_steps = 10
    config.image_every_steps = 20
    config.periodic_eval_metrics = ("mig", "factor_vae")
    config.final_eval_metrics = ("mig", "sap", "beta_vae", "factor_vae")
  return config


def available_datasets() -> list[str]:
  """Datasets with a ``experiments/configs/factorvae_<dataset>.py``."""
  folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "configs")
  return sorted(f[len("factorvae_"):-len(".py")] for f in os.listdir(folder)
                if f.startswith("factorvae_") and f.endswith(".py"))


def with_dataset(config: ml_collections.ConfigDict,
                 options: dict) -> ml_collections.ConfigDict:
  """``config`` on the dataset a study's argument names (default dSprites).

  The data settings are those of ``experiments/configs/factorvae_<dataset>.py``
  (its name and source), with the file paths from the argument, so a study
  runs on any dataset that has a config, e.g.
  ``--sweep=experiments/sweeps/dlib_study.py:dataset=shapes3d,data_path=/data/3dshapes.h5``.

  Args:
    config: a study's base config (locked or not).
    options: from ``sweeps.parse_options(arg, DATA_OPTIONS)``.

  Returns:
    A copy of ``config`` with its ``data`` block replaced.

  Raises:
    ValueError: the dataset has no config, naming the ones that do.
  """
  dataset = options.get("dataset", "dsprites")
  if dataset not in available_datasets():
    raise errors.InvalidValueError(
        f"sweep argument dataset={dataset!r}: no experiments/configs/"
        f"factorvae_{dataset}.py; datasets with a config: "
        f"{available_datasets()}.")
  module = importlib.import_module(f"experiments.configs.factorvae_{dataset}")
  data = copy.deepcopy(module.get_config("test").data)
  config = copy.deepcopy(config)
  with config.unlocked(), data.unlocked():
    if "data_path" in options:
      data.path = options["data_path"]
    if "scream_path" in options:
      data.scream_path = options["scream_path"]
    config.data = data
  config.lock()
  return config
