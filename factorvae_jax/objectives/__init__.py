"""VAE objectives: one module per model, selected by ``config.model.name``."""

from __future__ import annotations

from factorvae_jax.objectives import annealed_vae
from factorvae_jax.objectives import base
from factorvae_jax.objectives import beta_tcvae
from factorvae_jax.objectives import betavae
from factorvae_jax.objectives import dip_vae
from factorvae_jax.objectives import factorvae
from factorvae_jax.objectives import vae
from factorvae_jax.utils import errors

_REGISTRY = {
    factorvae.FACTOR_VAE.name: factorvae.FACTOR_VAE,
    vae.VAE.name: vae.VAE,
    betavae.BETA_VAE.name: betavae.BETA_VAE,
    annealed_vae.ANNEALED_VAE.name: annealed_vae.ANNEALED_VAE,
    beta_tcvae.BETA_TCVAE.name: beta_tcvae.BETA_TCVAE,
    dip_vae.DIP_VAE_I.name: dip_vae.DIP_VAE_I,
    dip_vae.DIP_VAE_II.name: dip_vae.DIP_VAE_II,
}


def register(objective: base.Objective) -> None:
  """Adds an objective to the registry (names must be unique).

  Its hyperparameters' default values belong in its config file
  (``experiments/configs/<model>_<dataset>.py``), its study grid in
  ``experiments/sweeps/``.
  """
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
    raise errors.InvalidValueError(
        f"config.model.name={name!r} is not a known model; choose one of "
        f"{sorted(_REGISTRY)}.") from None


def list_objectives() -> list[str]:
  """Names of the registered objectives, sorted."""
  return sorted(_REGISTRY)
