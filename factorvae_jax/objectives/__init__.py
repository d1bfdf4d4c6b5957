"""VAE objectives: one module per model, selected by ``config.model.name``."""

from __future__ import annotations

import copy
from typing import Mapping, Optional

from factorvae_jax.objectives import annealed_vae
from factorvae_jax.objectives import base
from factorvae_jax.objectives import beta_tcvae
from factorvae_jax.objectives import betavae
from factorvae_jax.objectives import dip_vae
from factorvae_jax.objectives import factorvae
from factorvae_jax.objectives import vae

_REGISTRY = {
    factorvae.FACTOR_VAE.name: factorvae.FACTOR_VAE,
    vae.VAE.name: vae.VAE,
    betavae.BETA_VAE.name: betavae.BETA_VAE,
    annealed_vae.ANNEALED_VAE.name: annealed_vae.ANNEALED_VAE,
    beta_tcvae.BETA_TCVAE.name: beta_tcvae.BETA_TCVAE,
    dip_vae.DIP_VAE_I.name: dip_vae.DIP_VAE_I,
    dip_vae.DIP_VAE_II.name: dip_vae.DIP_VAE_II,
}

# Sweep grids of disentanglement_lib's unsupervised study (Locatello et al.
# 2019): hparam -> values; hparams not listed stay at their defaults.
_SWEEPS: dict[str, dict[str, list[float]]] = {
    # FactorVAE's grid lives here so factorvae.py stays as it is.
    factorvae.FACTOR_VAE.name: {
        "gamma": [10.0, 20.0, 30.0, 40.0, 50.0, 100.0]},
    vae.VAE.name: vae.SWEEP,
    betavae.BETA_VAE.name: betavae.SWEEP,
    annealed_vae.ANNEALED_VAE.name: annealed_vae.SWEEP,
    beta_tcvae.BETA_TCVAE.name: beta_tcvae.SWEEP,
    dip_vae.DIP_VAE_I.name: dip_vae.SWEEP,
    dip_vae.DIP_VAE_II.name: dip_vae.SWEEP,
}

# Default value of every hparam in each objective's ``hparam_names``.
_DEFAULTS: dict[str, dict[str, float]] = {
    factorvae.FACTOR_VAE.name: {"gamma": 35.0},
    vae.VAE.name: vae.DEFAULT_HPARAMS,
    betavae.BETA_VAE.name: betavae.DEFAULT_HPARAMS,
    annealed_vae.ANNEALED_VAE.name: annealed_vae.DEFAULT_HPARAMS,
    beta_tcvae.BETA_TCVAE.name: beta_tcvae.DEFAULT_HPARAMS,
    dip_vae.DIP_VAE_I.name: dip_vae.DEFAULT_HPARAMS_I,
    dip_vae.DIP_VAE_II.name: dip_vae.DEFAULT_HPARAMS_II,
}


def register(objective: base.Objective,
             sweep: Optional[Mapping[str, list[float]]] = None,
             defaults: Optional[Mapping[str, float]] = None) -> None:
  """Adds an objective to the registry (names must be unique).

  Args:
    objective: the objective.
    sweep: optional sweep grid (hparam -> values) for ``get_sweep_grid``.
    defaults: optional default hparams for ``default_hparams``.
  """
  if objective.name in _REGISTRY:
    raise ValueError(f"objective {objective.name!r} is already registered")
  _REGISTRY[objective.name] = objective
  if sweep is not None:
    _SWEEPS[objective.name] = {k: list(v) for k, v in sweep.items()}
  if defaults is not None:
    _DEFAULTS[objective.name] = dict(defaults)


def get_objective(name: str) -> base.Objective:
  """Returns the objective called ``name``.

  Raises:
    ValueError: naming the bad value and the registered ones.
  """
  try:
    return _REGISTRY[name]
  except KeyError:
    raise ValueError(
        f"config.model.name={name!r} is not a known model; choose one of "
        f"{sorted(_REGISTRY)}.") from None


def list_objectives() -> list[str]:
  return sorted(_REGISTRY)


def get_sweep_grid(name: str) -> dict[str, list[float]]:
  """The study's sweep grid of objective ``name`` (a copy): hparam -> values.

  Empty for a model with a single configuration (``vae``) or one registered
  without a grid.

  Raises:
    ValueError: if ``name`` is not a registered objective.
  """
  get_objective(name)
  return copy.deepcopy(_SWEEPS.get(name, {}))


def default_hparams(name: str) -> dict[str, float]:
  """Default value of every hparam of objective ``name`` (a copy).

  Raises:
    ValueError: if ``name`` is not registered, or was registered without
      defaults while it has hparams.
  """
  objective = get_objective(name)
  if name not in _DEFAULTS:
    if objective.hparam_names:
      raise ValueError(f"objective {name!r} has no registered defaults")
    return {}
  return dict(_DEFAULTS[name])
