"""FactorVAE on smallnorb, otherwise as factorvae_dsprites.py.

SmallNORB as disentanglement_lib uses it: both parts, left camera resized to
64x64x1, 4 factors (the instance is drawn at random).

  python -m experiments.run \
      --config=experiments/configs/factorvae_smallnorb.py \
      --workdir=runs/fvae_smallnorb
  # needs: --config.data.path=/data/small_norb (the folder of the six
  #   official .mat files; or data.source=tfds)
  # variants: ...factorvae_smallnorb.py:test (seconds), :quick (minutes)

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
    config.data.name = "smallnorb"
    config.data.source = "mat"
  return config
