"""VAE objectives: one module per model, selected by ``config.model.name``.

``OBJECTIVES`` is the table of every model (one ``base.Objective`` entry
each, keyed by its name); ``get_objective`` looks one up. A new model is its
module plus one entry here; its hyperparameters' default values belong in its
config file (``experiments/configs/<model>_<dataset>.py``), its study grid in
``experiments/sweeps/``.
"""

from __future__ import annotations

from factorvae_jax.objectives import annealed_vae
from factorvae_jax.objectives import base
from factorvae_jax.objectives import beta_tcvae
from factorvae_jax.objectives import betavae
from factorvae_jax.objectives import dip_vae
from factorvae_jax.objectives import factorvae
from factorvae_jax.objectives import vae
from factorvae_jax.utils import errors

#: Every model, keyed by ``config.model.name`` (= its ``Objective.name``).
OBJECTIVES: dict[str, base.Objective] = {
    factorvae.FACTOR_VAE.name: factorvae.FACTOR_VAE,
    vae.VAE.name: vae.VAE,
    betavae.BETA_VAE.name: betavae.BETA_VAE,
    annealed_vae.ANNEALED_VAE.name: annealed_vae.ANNEALED_VAE,
    beta_tcvae.BETA_TCVAE.name: beta_tcvae.BETA_TCVAE,
    dip_vae.DIP_VAE_I.name: dip_vae.DIP_VAE_I,
    dip_vae.DIP_VAE_II.name: dip_vae.DIP_VAE_II,
}


def get_objective(name: str) -> base.Objective:
  """Returns the entry of ``OBJECTIVES`` called ``name``.

  Raises:
    InvalidValueError: naming the bad value, the known ones and the fix.
  """
  return errors.lookup(OBJECTIVES, name, lambda: (
      f"config.model.name={name!r} is not a known model; choose one of "
      f"{sorted(OBJECTIVES)} (a new model needs its Objective in "
      f"OBJECTIVES, factorvae_jax/objectives/__init__.py)."))


def list_objectives() -> list[str]:
  """Names of the objectives in ``OBJECTIVES``, sorted."""
  return sorted(OBJECTIVES)
