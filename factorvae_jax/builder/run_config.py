"""Checks on an experiment config and the files that describe a run."""

from __future__ import annotations

import json
import platform
import sys
from typing import Any, Mapping

import jax
import ml_collections

from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir

# Settings that may change between a run and its resumption: they affect how
# long training lasts and what is logged, not the parameters at a given step.
RESUMABLE_CHANGES = frozenset({
    "num_steps", "steps_per_dispatch", "log_every_steps", "image_every_steps",
    "checkpoint_every_steps", "keep_checkpoints", "eval_every_steps",
    "final_eval", "final_eval_sizes", "periodic_eval_sizes", "eval_seed",
    "final_eval_metrics", "periodic_eval_metrics",
    "disc_watch_warmup_steps", "disc_watch_window_steps", "data.path",
    "data.tfds_data_dir", "data.scream_path", "data.on_device",
    "dci_backend",
    # Same parameters, same function (models/layers.py); also lets workdirs
    # written before the field existed resume under its default 'auto'.
    "model.conv_impl",
})

_INTERVALS = ("log_every_steps", "image_every_steps", "checkpoint_every_steps",
              "eval_every_steps")


# Fields a non-positive value makes meaningless (a zero learning rate trains
# nothing, a zero batch divides by zero in the losses).
_POSITIVE = ("batch_size", "model.latent_dim", "keep_checkpoints",
             "optim.vae_learning_rate", "optim.disc_learning_rate",
             "optim.adam_eps")


def validate(config: ml_collections.ConfigDict, num_devices: int) -> None:
  """Raises ValueError with a fix if ``config`` cannot be run as given."""
  if config.num_steps <= 0:
    raise errors.InvalidValueError(
        f"config.num_steps={config.num_steps} must be positive.")
  if config.steps_per_dispatch <= 0:
    raise errors.InvalidValueError(
        f"config.steps_per_dispatch={config.steps_per_dispatch} must be "
        f"positive.")
  for name in _POSITIVE:
    node = config
    for part in name.split("."):
      node = node[part]
    if node is not None and not node > 0:
      raise errors.InvalidValueError(
          f"config.{name}={node} must be positive; the config file's value "
          f"is a sensible start.")
  if config.batch_size % num_devices:
    raise errors.InvalidValueError(
        f"config.batch_size={config.batch_size} is not divisible by the "
        f"{num_devices} local devices; use a multiple of {num_devices}.")
  for name in _INTERVALS:
    value = config[name]
    if value < 0 or (value and value % config.steps_per_dispatch):
      raise errors.InvalidValueError(
          f"config.{name}={value} must be a multiple of "
          f"config.steps_per_dispatch={config.steps_per_dispatch} (the loop "
          f"only sees the state between dispatches); e.g. "
          f"{max(1, round(value / config.steps_per_dispatch)) * config.steps_per_dispatch}.")
  if config.checkpoint_every_steps == 0 or config.log_every_steps == 0:
    raise errors.InvalidValueError("config.checkpoint_every_steps and "
                                   "config.log_every_steps must be positive.")
  # Metric names against the metric table now, not after training; None is
  # every metric that applies to the dataset (resolved when the evaluation
  # runs).
  from factorvae_jax import metrics  # pylint: disable=g-import-not-at-top
  for name in ("final_eval_metrics", "periodic_eval_metrics"):
    if config.get(name) is not None:
      metrics.check_metric_names(config[name], f"config.{name}")
  # Raises InvalidValueError naming the allowed values and the fix.
  from factorvae_jax.models import layers  # pylint: disable=g-import-not-at-top
  layers.resolve_conv_impl(config.model.get("conv_impl", "auto"))


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """A nested config dict as ``{dotted key: leaf}`` (tuples as lists, as
  they read back from JSON)."""
  out = {}
  for k, v in d.items():
    key = f"{prefix}{k}"
    if isinstance(v, Mapping):
      out.update(flatten(v, key + "."))
    else:
      out[key] = list(v) if isinstance(v, tuple) else v
  return out


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """A JSON round-trippable dict of ``config``."""
  return json.loads(config.to_json_best_effort())


def packing_key(config: ml_collections.ConfigDict) -> str:
  """Runs with equal keys can be trained packed in one compiled program.

  That is: configs equal in everything but the seed and the values of the
  objective's hyperparameters (``objectives.get_objective(...).hparam_names``,
  e.g. FactorVAE's gamma), which are per-model values in the train state.
  Everything else -- architecture, objective, optimiser, data, batch size,
  the step counts and intervals -- is shared by the pack.

  Args:
    config: an experiment config.

  Returns:
    A string, equal for packable configs.
  """
  # Imported here: the config checks above are used without the objectives.
  from factorvae_jax import objectives  # pylint: disable=g-import-not-at-top
  d = config_to_dict(config)
  d.pop("seed", None)
  for name in objectives.get_objective(config.model.name).hparam_names:
    d["model"].pop(name, None)
  return json.dumps(d, sort_keys=True)


def check_resume_compatible(config: ml_collections.ConfigDict,
                            workdir: str) -> None:
  """Refuses to resume a checkpoint trained with a different model/data/optim.

  Raises:
    ValueError: listing the differing keys and the fix.
  """
  saved = run_dir.read_config(workdir)
  if saved is None:
    return
  saved = flatten(saved)
  current = flatten(config_to_dict(config))
  # A setting added after the checkpoint was written is compatible while it
  # is unset (its empty value keeps the old behaviour).
  diffs = sorted(
      k for k in set(saved) | set(current)
      if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k) and
      not (k not in saved and current.get(k) in (None, "")))
  if diffs:
    details = "; ".join(
        f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}"
        for k in diffs[:5])
    raise errors.IncompatibleResumeError(
        f"{workdir} holds checkpoints of a different experiment ({details}). "
        f"Use a new --workdir for a new experiment, or rerun with the "
        f"original settings to resume.")


def write_run_files(config: ml_collections.ConfigDict, dataset,
                    workdir: str) -> None:
  """Writes the run's config and data source (``utils.run_dir``)."""
  run_dir.write_config(workdir, config_to_dict(config))
  run_dir.write_data_source(workdir, {
      **dataset.describe(),
      "jax_version": jax.__version__,
      "python": sys.version.split()[0],
      "platform": platform.platform(),
      "devices": [str(d) for d in jax.local_devices()],
  })


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a workdir was trained with (its run's saved config).

  Raises:
    NothingToDoError: naming the workdir, if it holds no run.
  """
  raw = run_dir.read_config(workdir)
  if raw is None:
    raise errors.NothingToDoError(
        f"{run_dir.config_path(workdir)} does not exist: {workdir} is not a "
        f"training workdir (train with python -m experiments.run "
        f"--workdir={workdir} first).")

  def to_config(d):
    return ml_collections.ConfigDict(
        {k: (to_config(v) if isinstance(v, dict) else
             (tuple(v) if isinstance(v, list) else v)) for k, v in d.items()})

  return to_config(raw)
