"""FactorVAE on cars3d, otherwise as factorvae_dsprites.py.

Cars3D (Reed et al. 2015), 64x64x3: elevation, azimuth, object type.

  python -m experiments.run \
      --config=experiments/configs/factorvae_cars3d.py \
      --workdir=runs/fvae_cars3d
  # needs: --config.data.path=/data/cars (the 183 car_*_mesh.mat files)
  # variants: ...factorvae_cars3d.py:test (seconds), :quick (minutes)

Everything but ``config.data`` is ``factorvae_dsprites.py``'s (gamma 35; the
disentanglement_lib study sweeps gamma over the same values on every
dataset). docs/data.md describes the dataset, its files and its memory.
"""

import ml_collections

from experiments.configs import factorvae_dsprites


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = factorvae_dsprites.get_config(arg)
  with config.unlocked():
    config.data.name = "cars3d"
    config.data.source = "mat"
  return config
