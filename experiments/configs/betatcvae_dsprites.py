"""beta-TCVAE (Chen et al. 2018) on dSprites: ELBO with the total correlation weighted by beta.

Run (from the repository root):

  python -m experiments.run --config=experiments/configs/betatcvae_dsprites.py \
      --workdir=runs/betatcvae_dsprites
  # variants: :test (seconds), :quick (minutes); overrides e.g.
  #   --config.model.beta=...

Cost: as factorvae_dsprites.py without the discriminator (300k steps at
batch 64 for the full config).
disentanglement_lib study grid: beta in {1, 2, 4, 6, 8, 10}.
"""

import ml_collections

from experiments.configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = common.get_base_config()
  config.model.name = "beta_tcvae"
  # Weight of the total-correlation term (loss adds (beta - 1) * TC).
  # disentanglement_lib has no default; 6 is our choice.
  config.model.beta = 6.0
  # 0: disentanglement_lib's estimator (drops the constant log(N*M)); N > 0
  # adds it back (changes the logged value, not the gradient).
  config.model.dataset_size = 0.0
  config = common.apply_variant(config, arg or "full")
  config.lock()
  return config
