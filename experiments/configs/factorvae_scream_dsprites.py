"""FactorVAE on scream_dsprites, otherwise as factorvae_dsprites.py.

disentanglement_lib's scream_dsprites: the sprite drawn by inverting a random
patch of Munch's The Scream, 64x64x3.

  python -m experiments.run \
      --config=experiments/configs/factorvae_scream_dsprites.py \
      --workdir=runs/fvae_scream_dsprites
  # needs: --config.data.scream_path=/data/scream/scream.jpg (the painting; see
  #   docs/data.md); data.source=npz|tfds for the official dSprites
  # variants: ...factorvae_scream_dsprites.py:test (seconds), :quick (minutes)

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
    config.data.name = "scream_dsprites"
    config.data.source = "procedural"
  return config
