"""A study a CPU affords: FactorVAE against beta-VAE and a plain VAE.

One weight per model -- FactorVAE gamma = 35 (the configs' default, inside
Kim & Mnih's grid), beta-VAE beta = 4 (Higgins et al. 2017's value for
dSprites, inside Kim & Mnih's beta grid) and the plain VAE (beta = 1) --
on procedural dSprites with the paper's architecture and optimiser, 3 seeds
each. Runs are ordered seed by seed (every model's seed 0, then seed 1, ...)
so a study cut short still compares all three models.

  python -m experiments.sweep --sweep=experiments/sweeps/cpu_comparison.py \
      --sweep_dir=runs/cpu_comparison
  python -m experiments.aggregate --sweep_dir=runs/cpu_comparison
  # argument: [full|test][,seeds=N][,steps=N]; full: 3 models x 3 seeds of
  # STEPS steps each (batch 64).

Cost: on the 2-core CPU of docs/results.md, 2 h 22 min for the 9 runs at
3000 steps (training and evaluation, partly under load); :test is seconds
per run.

The final evaluation uses the 'cheap' sample sizes and leaves out the two
metrics that cost minutes per model on a CPU (BetaVAE's and DCI's); run
``python -m experiments.evaluate --workdir=<run>`` for the full suite.
"""

from experiments.configs import betavae_dsprites
from experiments.configs import factorvae_dsprites
from experiments.configs import vae_dsprites
from experiments.sweeps import common
from factorvae_jax import sweeps
from factorvae_jax.utils import errors

SEEDS = 3
# Steps per run at the full variant: what 2 CPU cores train in about 2 hours
# for the 9 runs (docs/results.md gives the measured cost).
STEPS = 3_000
# model config module, the model's weight overrides.
MODELS = (
    (factorvae_dsprites, {"gamma": (35.0,)}),
    (betavae_dsprites, {"beta": (4.0,)}),
    (vae_dsprites, {}),
)
FINAL_METRICS = ("factor_vae", "mig", "sap", "modularity", "unsupervised")


def _parse(arg: str | None) -> tuple[str, int, int]:
  """``[full|test][,seeds=N][,steps=N]`` -> (variant, seeds, steps)."""
  arg, options = sweeps.parse_options(arg, ("steps",))
  steps = STEPS
  if "steps" in options:
    try:
      steps = int(options["steps"])
    except ValueError:
      steps = 0
    if steps <= 0:
      raise errors.InvalidValueError(
          f"sweep argument steps={options['steps']!r}: steps "
          f"must be a positive integer, e.g. "
          f"--sweep=<file>:steps=5000.")
  variant, num_seeds = sweeps.parse_arg(arg, default_seeds=SEEDS,
                                        variants=("full", "test"))
  return variant, num_seeds, steps


def _config(module, variant: str, steps: int):
  if variant == "test":
    return common.for_variant(module.get_config("test"), "test")
  config = module.get_config("quick")  # The paper's networks, short-run
  with config.unlocked():             # logging and checkpoint intervals.
    config.num_steps = steps
    config.checkpoint_every_steps = 500
    config.final_eval_metrics = FINAL_METRICS
  return config


def get_sweep(arg: str | None = None) -> sweeps.Sweep:
  """Returns the sweep; ``arg`` is ``[full|test][,seeds=N][,steps=N]``."""
  variant, num_seeds, steps = _parse(arg)
  grids = []
  for seed in range(num_seeds):
    for module, hparams in MODELS:
      config = _config(module, variant, steps)
      if hparams:
        grids.append(sweeps.product(config, hparams, [seed]))
      else:
        grids.append(sweeps.Grid(config=config, overrides=[{"seed": seed}]))
  return sweeps.Sweep(
      name="cpu_comparison", grids=grids,
      description="FactorVAE gamma=35 vs beta-VAE beta=4 vs VAE on "
                  "procedural dSprites, a CPU budget")
