"""disentanglement_lib's unsupervised study (Locatello et al. 2019) on dSprites.

The study trains six models, each over a grid of six values of one
regularisation weight, with 50 random seeds per value (Locatello et al.,
"Challenging Common Assumptions in the Unsupervised Learning of Disentangled
Representations", ICML 2019, Appendix, hyperparameter table; the same values
as disentanglement_lib's unsupervised_study_v1 model configs):

  model         swept          values                     fixed
  beta_vae      beta           1, 2, 4, 6, 8, 16
  annealed_vae  c_max          5, 10, 25, 50, 75, 100     gamma 1000, iteration_threshold 100000
  factor_vae    gamma          10, 20, 30, 40, 50, 100
  dip_vae_i     lambda_od      1, 2, 5, 10, 20, 50        lambda_d_factor 10
  dip_vae_ii    lambda_od      1, 2, 5, 10, 20, 50        lambda_d_factor 1
  beta_tcvae    beta           1, 2, 4, 6, 8, 10

The fixed values are the defaults of experiments/configs/*_dsprites.py. The
study's networks are disentanglement_lib's (``model.architecture = 'dlib'``)
and its FactorVAE permutes the codes of the same batch
(``model.second_batch = False``); batch 64, 300k steps and Adam(1e-4) are
the configs' defaults. The plain VAE is not part of the study (it is
beta_vae with beta = 1).

  python -m experiments.sweep --sweep=experiments/sweeps/dlib_study.py \
      --sweep_dir=runs/dlib_study --list
  # argument: [full|quick|test][,seeds=N][,dataset=NAME][,data_path=FILE]
  #   [,scream_path=FILE]; full: 6 x 6 x 50 = 1800 runs per dataset.
  # Locatello et al.'s datasets: dsprites (default), color_dsprites,
  # noisy_dsprites, scream_dsprites, smallnorb, cars3d, shapes3d; e.g.
  #   --sweep=experiments/sweeps/dlib_study.py:dataset=shapes3d,data_path=/data/3dshapes.h5
  # The grids are the same on every dataset (the study's table).
"""

from experiments.configs import annealedvae_dsprites
from experiments.configs import betatcvae_dsprites
from experiments.configs import betavae_dsprites
from experiments.configs import dipvaei_dsprites
from experiments.configs import dipvaeii_dsprites
from experiments.configs import factorvae_dsprites
from experiments.sweeps import common
from factorvae_jax import sweeps

STUDY_SEEDS = 50
# config module, swept config.model field, values (Locatello et al. 2019).
GRIDS = (
    (betavae_dsprites, "beta", (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    (annealedvae_dsprites, "c_max", (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)),
    (factorvae_dsprites, "gamma", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
    (dipvaei_dsprites, "lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    (dipvaeii_dsprites, "lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    (betatcvae_dsprites, "beta", (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
)


def study_grids() -> dict[str, dict[str, list[float]]]:
  """model name -> {swept hparam: values}: the study's grids as data."""
  return {module.get_config("test").model.name: {hparam: list(values)}
          for module, hparam, values in GRIDS}


def _study_config(module, variant: str):
  config = common.for_variant(module.get_config(variant), variant)
  with config.unlocked():
    config.model.architecture = "dlib"
    if "second_batch" in config.model:
      config.model.second_batch = False
  return config


def get_sweep(arg: str | None = None) -> sweeps.Sweep:
  """Returns the sweep; ``arg`` is ``[variant][,seeds=N][,dataset=NAME]
  [,data_path=FILE][,scream_path=FILE]``."""
  arg, options = sweeps.parse_options(arg, common.DATA_OPTIONS)
  variant, num_seeds = sweeps.parse_arg(arg, default_seeds=STUDY_SEEDS)
  grids = [sweeps.product(
      common.with_dataset(_study_config(module, variant), options),
      {hparam: common.grid_values(values, variant)}, range(num_seeds))
           for module, hparam, values in GRIDS]
  dataset = options.get("dataset", "dsprites")
  return sweeps.Sweep(
      name="dlib_study", grids=grids,
      description=f"disentanglement_lib unsupervised study (Locatello et al. "
                  f"2019) on {dataset}")
