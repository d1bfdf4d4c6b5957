"""Settings shared by every experiment config (data, optimisation, logging).

Model configs call ``get_base_config()`` and then set ``config.model``;
``apply_variant`` shrinks a config for the ``:test`` and ``:quick`` variants.
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from factorvae_jax.metrics import registry as metrics_registry
from factorvae_jax.utils import errors

VARIANTS = ("full", "test", "quick")


def get_base_config() -> ml_collections.ConfigDict:
  """Returns the settings every model shares (FactorVAE paper defaults)."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  # disentanglement_lib's datasets (factorvae_jax.data.DATASETS;
  # docs/data.md): 'dsprites', 'dsprites_noshape', 'color_dsprites',
  # 'noisy_dsprites', 'scream_dsprites', 'shapes3d', 'smallnorb', 'cars3d',
  # 'mpi3d_toy', 'mpi3d_realistic', 'mpi3d_real'.
  config.data.name = "dsprites"
  # The dSprites family: 'procedural' (embedded renderer, no download), 'npz'
  # (the official dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz at
  # data.path) or 'tfds'. shapes3d: 'h5' (3dshapes.h5 at data.path) or
  # 'tfds'. '' = the dataset's default (the first listed).
  config.data.source = "procedural"
  # The dataset's file, or a folder holding it under its official name.
  config.data.path = ""
  # tfds data_dir with the dataset prepared as array_record ('' = default).
  config.data.tfds_data_dir = ""
  # scream_dsprites only: the Scream painting (scream.jpg), a file the user
  # downloads (see docs/data.md).
  config.data.scream_path = ""
  # True: the dataset's arrays are copied to every device and batches are
  # drawn there (fastest). False: they stay in host memory and each chunk's
  # batches are drawn on the host and sent over -- for datasets larger than
  # the device's free memory (docs/data.md, "Memory"). Same batches, same
  # parameters either way.
  config.data.on_device = True

  config.model = ml_collections.ConfigDict()
  # 'paper' (Kim & Mnih 2018, Appendix) or 'dlib' (disentanglement_lib).
  config.model.architecture = "paper"
  config.model.latent_dim = 10
  # Optional overrides of the architecture preset (None = the preset's value).
  config.model.encoder_channels = config_dict.placeholder(tuple)
  config.model.encoder_kernels = config_dict.placeholder(tuple)
  config.model.encoder_hidden = config_dict.placeholder(int)
  config.model.decoder_hidden = config_dict.placeholder(int)
  config.model.decoder_channels = config_dict.placeholder(tuple)
  config.model.disc_hidden = config_dict.placeholder(int)
  config.model.disc_layers = config_dict.placeholder(int)
  # The stride-2 convolutions' modules: 'fast' (custom-gradient forms written
  # and measured for XLA:CPU), 'standard' (Flax's nn.Conv / nn.ConvTranspose:
  # cuDNN's or the TPU's convolutions; jax.jvp works) or 'auto': 'fast' on
  # CPU, 'standard' on GPU/TPU. Same parameters either way, so a checkpoint
  # restores and runs under any choice (factorvae_jax/models/layers.py).
  config.model.conv_impl = "auto"

  config.optim = ml_collections.ConfigDict()
  # Kim & Mnih (2018): VAE Adam(1e-4, 0.9, 0.999); discriminator
  # Adam(1e-4, 0.5, 0.9).
  config.optim.vae_learning_rate = 1e-4
  config.optim.vae_beta1 = 0.9
  config.optim.vae_beta2 = 0.999
  config.optim.disc_learning_rate = 1e-4
  config.optim.disc_beta1 = 0.5
  config.optim.disc_beta2 = 0.9
  config.optim.adam_eps = 1e-8

  # Global batch (split across local devices).
  config.batch_size = 64
  config.num_steps = 300_000
  # Steps run per host dispatch (lax.scan). Logging, images, evaluation and
  # checkpoint intervals must be multiples of it.
  config.steps_per_dispatch = 50

  config.log_every_steps = 500
  config.image_every_steps = 10_000
  config.checkpoint_every_steps = 10_000
  config.keep_checkpoints = 3
  # Cheap disentanglement metrics during training (0 = never).
  config.eval_every_steps = 50_000
  # Full metric suite at the end of training.
  config.final_eval = True
  # Sample sizes of the evaluations: 'default' = disentanglement_lib's study
  # sizes, 'cheap' = the small sizes used during training, 'tiny' = seconds.
  config.final_eval_sizes = "default"
  config.periodic_eval_sizes = "cheap"
  config.eval_seed = 0
  # Which metrics each evaluation runs: names from factorvae_jax.metrics.
  # METRICS, checked against that table by run_config.validate before
  # training (override: --config.final_eval_metrics=mig,dci).
  # The final evaluation's default (None) is every metric of that table that
  # applies to the dataset (metrics.metric_names(dataset)), resolved when it
  # runs, so a metric added to the table joins it. UDR compares seeds:
  # python -m experiments.udr. DCI, the downstream tasks and fairness fit
  # boosted trees or classifiers per factor (seconds each on a CPU with
  # numba even at the cheap sizes, repeated at every periodic evaluation;
  # docs/performance.md), so the periodic evaluation leaves them out.
  config.final_eval_metrics = config_dict.placeholder(tuple)
  config.periodic_eval_metrics = metrics_registry.check_metric_names(
      ("mig", "sap", "modularity", "unsupervised", "beta_vae", "factor_vae"),
      "config.periodic_eval_metrics")
  # DCI's gradient-boosted trees: 'numba' (sklearn's arithmetic compiled for
  # the CPU: sklearn's results, much faster), 'jax' (sklearn's algorithm
  # ported to JAX, all factors at once on the device; equal to sklearn up to
  # ties between equally good splits), 'sklearn' (the reference), or 'auto':
  # 'jax' on a GPU/TPU, 'numba' on a CPU (docs/metrics.md, DCI).
  config.dci_backend = "auto"
  # Discriminator health warning (FactorVAE): accuracy inside the chance band
  # or above the saturation level for this many steps.
  config.disc_watch_warmup_steps = 5_000
  config.disc_watch_window_steps = 20_000
  return config


def apply_variant(config: ml_collections.ConfigDict,
                  variant: str) -> ml_collections.ConfigDict:
  """Shrinks ``config`` for a variant; ``full`` leaves it unchanged.

  Raises:
    ValueError: naming the bad variant and the allowed ones.
  """
  if variant == "full":
    return config
  if variant == "test":
    # Seconds on a CPU: tiny networks, several checkpoints during the run.
    config.model.latent_dim = 4
    config.model.encoder_channels = (4, 4, 8, 8)
    config.model.encoder_hidden = 16
    config.model.decoder_hidden = 16
    config.model.decoder_channels = (8, 4, 4)
    config.model.disc_hidden = 32
    config.model.disc_layers = 2
    config.batch_size = 8
    config.num_steps = 40
    config.steps_per_dispatch = 5
    config.log_every_steps = 5
    config.image_every_steps = 20
    config.checkpoint_every_steps = 10
    config.keep_checkpoints = 2
    config.eval_every_steps = 20
    config.final_eval_sizes = "tiny"
    # Seconds matter more than coverage here: the metrics whose entry says
    # so (MetricSpec.in_smoke_runs=False: the per-factor classifier fits of
    # the downstream tasks and fairness) stay out of smoke runs.
    config.final_eval_metrics = tuple(
        m for m in metrics_registry.metric_names()
        if metrics_registry.METRICS[m].in_smoke_runs)
    config.periodic_eval_sizes = "tiny"
    config.disc_watch_warmup_steps = 10
    config.disc_watch_window_steps = 20
    return config
  if variant == "quick":
    # Minutes on a laptop CPU: full architecture, short run.
    config.num_steps = 3_000
    config.steps_per_dispatch = 50
    config.log_every_steps = 100
    config.image_every_steps = 1_000
    config.checkpoint_every_steps = 1_000
    config.eval_every_steps = 0
    config.final_eval_sizes = "cheap"
    config.disc_watch_warmup_steps = 500
    config.disc_watch_window_steps = 1_000
    return config
  raise errors.InvalidValueError(
      f"config variant {variant!r} is unknown; use one of {VARIANTS}, e.g. "
      f"--config=experiments/configs/factorvae_dsprites.py:test")
