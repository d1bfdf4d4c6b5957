"""beta-VAE (Higgins et al. 2017) on dSprites: loss = recon + beta * KL.

Run (from the repository root):

  python -m experiments.run --config=experiments/configs/betavae_dsprites.py \
      --workdir=runs/betavae_dsprites
  # variants: :test (seconds), :quick (minutes); overrides e.g.
  #   --config.model.beta=...

Cost: as factorvae_dsprites.py without the discriminator (300k steps at
batch 64 for the full config).
disentanglement_lib study grid: beta in {1, 2, 4, 6, 8, 16}.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = common.get_base_config()
  config.model.name = "beta_vae"
  # Weight of the KL term. disentanglement_lib has no default (its study
  # grid is in experiments/sweeps/); 4 is Higgins et al.'s dSprites value.
  config.model.beta = 4.0
  config = common.apply_variant(config, arg or "full")
  config.lock()
  return config
