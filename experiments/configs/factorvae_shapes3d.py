"""FactorVAE on shapes3d, otherwise as factorvae_dsprites.py.

3D Shapes (Burgess & Kim 2018), 64x64x3, 6 factors.

  python -m experiments.run \
      --config=experiments/configs/factorvae_shapes3d.py \
      --workdir=runs/fvae_shapes3d
  # needs: --config.data.path=/data/3dshapes.h5 (or data.source=tfds)
  # variants: ...factorvae_shapes3d.py:test (seconds), :quick (minutes)

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
    config.data.name = "shapes3d"
    config.data.source = "h5"
  return config
