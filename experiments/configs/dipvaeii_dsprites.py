"""DIP-VAE-II (Kumar et al. 2018) on dSprites: covariance of the aggregate posterior pushed to identity.

Run (from the repository root):

  python -m experiments.run --config=experiments/configs/dipvaeii_dsprites.py \
      --workdir=runs/dipvaeii_dsprites
  # variants: :test (seconds), :quick (minutes); overrides e.g.
  #   --config.model.lambda_od=...

Cost: as factorvae_dsprites.py without the discriminator (300k steps at
batch 64 for the full config).
disentanglement_lib study grid: lambda_od in {1, 2, 5, 10, 20, 50}.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = common.get_base_config()
  config.model.name = "dip_vae_ii"
  # Weight of the off-diagonal covariance penalty. disentanglement_lib has
  # no default; 10 is our choice.
  config.model.lambda_od = 10.0
  # lambda_d = lambda_d_factor * lambda_od (1 for type II).
  config.model.lambda_d_factor = 1.0
  config = common.apply_variant(config, arg or "full")
  config.lock()
  return config
