"""FactorVAE on dsprites_noshape, otherwise as factorvae_dsprites.py.

disentanglement_lib's dsprites_noshape: dSprites with the shape drawn at random
per image instead of being a factor (4 factors).

  python -m experiments.run \
      --config=experiments/configs/factorvae_dsprites_noshape.py \
      --workdir=runs/fvae_dsprites_noshape
  # needs: nothing (procedural renderer); data.source=npz|tfds and data.path
  #   for the official images
  # variants: ...factorvae_dsprites_noshape.py:test (seconds), :quick (minutes)

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
    config.data.name = "dsprites_noshape"
    config.data.source = "procedural"
  return config
