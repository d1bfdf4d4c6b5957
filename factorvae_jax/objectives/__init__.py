"""VAE objectives: one module per model, selected by ``config.model.name``."""

from __future__ import annotations

from factorvae_jax.objectives import base
from factorvae_jax.objectives import factorvae

_REGISTRY = {
    factorvae.FACTOR_VAE.name: factorvae.FACTOR_VAE,
}


def register(objective: base.Objective) -> None:
  """Adds an objective to the registry (names must be unique)."""
  if objective.name in _REGISTRY:
    raise ValueError(f"objective {objective.name!r} is already registered")
  _REGISTRY[objective.name] = objective


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
