"""AnnealedVAE (Burgess et al. 2018) on dSprites: loss = recon + gamma * |KL - C|.

Run (from the repository root):

  python -m experiments.run --config=experiments/configs/annealedvae_dsprites.py \
      --workdir=runs/annealedvae_dsprites
  # variants: :test (seconds), :quick (minutes); overrides e.g.
  #   --config.model.gamma=...

Cost: as factorvae_dsprites.py without the discriminator (300k steps at
batch 64 for the full config).
disentanglement_lib study grid: c_max in {5, 10, 25, 50, 75, 100}.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = common.get_base_config()
  config.model.name = "annealed_vae"
  # Weight of the capacity penalty (study value).
  config.model.gamma = 1000.0
  # Final capacity C in nats. disentanglement_lib has no default; 25 is
  # Burgess et al.'s dSprites run.
  config.model.c_max = 25.0
  # Steps over which C grows linearly from 0 to c_max.
  config.model.iteration_threshold = 100_000.0
  config = common.apply_variant(config, arg or "full")
  config.lock()
  return config
