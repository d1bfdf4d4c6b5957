"""FactorVAE on color_dsprites, otherwise as factorvae_dsprites.py.

disentanglement_lib's color_dsprites: each sprite in a random colour (RGB
channels uniform in [0.5, 1)), 64x64x3.

  python -m experiments.run \
      --config=experiments/configs/factorvae_color_dsprites.py \
      --workdir=runs/fvae_color_dsprites
  # needs: nothing (procedural renderer); data.source=npz|tfds and data.path
  #   for the official images
  # variants: ...factorvae_color_dsprites.py:test (seconds), :quick (minutes)

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
    config.data.name = "color_dsprites"
    config.data.source = "procedural"
  return config
