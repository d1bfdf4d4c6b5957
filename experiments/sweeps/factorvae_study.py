"""Kim & Mnih (2018), Section 4: FactorVAE's gamma against beta-VAE's beta.

The paper compares FactorVAE with gamma in {10, 20, 30, 40, 50, 100} against
beta-VAE with beta in {1, 2, 4, 6, 8, 16} on dSprites, 10 random seeds each
(its Figures 4, 5 and 8: disentanglement metric and reconstruction error
against the weight). Both models use the paper's architecture and optimiser
(experiments/configs/*_dsprites.py); only the weight and the seed vary.

  python -m experiments.sweep --sweep=experiments/sweeps/factorvae_study.py \
      --sweep_dir=runs/factorvae_study --list
  # argument: [full|quick|test][,seeds=N], e.g. ...factorvae_study.py:quick,seeds=3
  # full: 2 x 6 x 10 = 120 runs of 300k steps; test: 2 x 2 x 2 = 8 tiny runs.
"""

from experiments.configs import betavae_dsprites
from experiments.configs import factorvae_dsprites
from experiments.sweeps import common
from factorvae_jax import sweeps

# Kim & Mnih (2018), Section 4 (Experiments).
FACTOR_VAE_GAMMAS = (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)
BETA_VAE_BETAS = (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)
PAPER_SEEDS = 10


def get_sweep(arg: str | None = None) -> sweeps.Sweep:
  """Returns the sweep; ``arg`` is ``[variant][,seeds=N]``."""
  variant, num_seeds = sweeps.parse_arg(arg, default_seeds=PAPER_SEEDS)
  seeds = range(num_seeds)
  grids = [
      sweeps.product(
          common.for_variant(factorvae_dsprites.get_config(variant), variant),
          {"gamma": common.grid_values(FACTOR_VAE_GAMMAS, variant)}, seeds),
      sweeps.product(
          common.for_variant(betavae_dsprites.get_config(variant), variant),
          {"beta": common.grid_values(BETA_VAE_BETAS, variant)}, seeds),
  ]
  return sweeps.Sweep(
      name="factorvae_study", grids=grids,
      description="Kim & Mnih (2018) Sec. 4: FactorVAE gamma vs beta-VAE "
                  "beta on dSprites")
