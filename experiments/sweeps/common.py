"""Helpers shared by the sweep files: config variants and small grids.

A sweep file's argument is ``[variant][,seeds=N]``
(``factorvae_jax.sweeps.parse_arg``): the variant is the config variant of
``experiments/configs`` ('full', 'quick' or 'test'), and ``test`` also
shrinks every grid to its first and last value so the whole sweep runs in
the test suite.
"""

from __future__ import annotations

from typing import Sequence

import ml_collections


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
