"""A plain VAE (beta = 1) on dSprites: the reference point for the baselines.

Run (from the repository root):

  python -m experiments.run --config=experiments/configs/vae_dsprites.py \
      --workdir=runs/vae_dsprites
  # variants: :test (seconds), :quick (minutes); overrides e.g.
  #   --config.model.latent_dim=6

Cost: as factorvae_dsprites.py without the discriminator (300k steps at
batch 64 for the full config).
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = common.get_base_config()
  config.model.name = "vae"
  config = common.apply_variant(config, arg or "full")
  config.lock()
  return config
