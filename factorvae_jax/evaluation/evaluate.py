"""Encodes a dataset with a trained model and runs the metric suite.

Representations are the mean of q(z|x) (disentanglement_lib's default).
"""

from __future__ import annotations

import importlib.metadata
import os
import time
from typing import Callable, Optional, Sequence

from absl import logging
import jax

from factorvae_jax import data as data_lib
from factorvae_jax import metrics
from factorvae_jax import objectives
from factorvae_jax.builder import run_config
from factorvae_jax.builder.trained_model import encode_in_chunks, restore_vae_params
from factorvae_jax.models import make_networks
from factorvae_jax.utils.files import write_json_atomically


class EvaluationInterrupted(KeyboardInterrupt):
  """A stop signal arrived during an evaluation; nothing was written."""


# Sample-size presets live with the metric table (factorvae_jax.metrics.
# registry); re-exported here for the evaluate CLI and older callers.
TINY_SIZES = metrics.TINY_SIZES
SIZE_PRESETS = metrics.SIZE_PRESETS

_ENCODE_CHUNK = 500
_VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
                       "numpy", "scikit-learn", "tensorflow-datasets")


def resolve_sizes(name: str) -> dict:
  """Maps a size preset name to the metric suite's ``sizes`` argument.

  Raises:
    ValueError: naming the bad value and the presets.
  """
  return metrics.preset(name)


def make_representation_fn(encoder, encoder_params):
  """numpy observations -> numpy mean codes, jitted on fixed-size chunks.

  Chunks are padded to one shape so the encoder compiles once whatever the
  batch sizes the metrics ask for.
  """
  encode = jax.jit(lambda p, x: encoder.apply(p, x)[0])
  return lambda observations: encode_in_chunks(encode, encoder_params,
                                               observations, _ENCODE_CHUNK)


def library_versions() -> dict:
  """Installed versions of the libraries that decide the numbers."""
  found = {}
  for name in _VERSIONED_PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def evaluate_state(config, encoder, encoder_params, dataset, step: int,
                   sizes: str = "default",
                   metric_names: Optional[Sequence[str]] = None,
                   should_stop: Optional[Callable[[], bool]] = None) -> dict:
  """Runs every metric on the mean representation of an encoder.

  Args:
    config: the experiment config (evaluation seed, model name and hparams).
    encoder: the encoder module.
    encoder_params: its parameters.
    dataset: the ground-truth dataset.
    step: the training step of the parameters (recorded).
    sizes: 'default' (disentanglement_lib's study sizes), 'cheap' or 'tiny'.
    metric_names: which metrics to run (default: all).
    should_stop: polled between encoder calls and metrics; when it returns
      True the evaluation stops with ``EvaluationInterrupted`` (a stop signal
      during training's final evaluation).

  Returns:
    ``{'scores': {...}, 'settings': {...}, 'checkpoint_step', 'dataset',
    'model', 'versions', 'seconds', 'stage_seconds'}`` (JSON-serialisable;
    ``stage_seconds`` is the wall time of the shared sample pool and of each
    metric).

  Raises:
    EvaluationInterrupted: ``should_stop`` returned True.
  """
  def check_stop():
    if should_stop is not None and should_stop():
      raise EvaluationInterrupted("evaluation stopped by a signal")

  start = time.time()
  encode = make_representation_fn(encoder, encoder_params)

  def representation_fn(observations):
    # Polled here and between metrics: the signal is acted on between two
    # encoder calls, never inside one.
    check_stop()
    return encode(observations)

  stage_seconds = {}

  def on_progress(stage, seconds):
    check_stop()
    # Logged as it goes: at the default sizes a CPU run takes many minutes,
    # most of it in DCI's boosted trees.
    stage_seconds[stage] = round(seconds, 2)
    logging.info("evaluation: %s took %.1f s", stage, seconds)

  raw = metrics.evaluate_representation(
      dataset, representation_fn, random_state=int(config.eval_seed),
      sizes=resolve_sizes(sizes), metrics=metric_names,
      on_progress=on_progress,
      # Configs written before the backend existed lack the field.
      dci_backend=config.get("dci_backend", "auto"))
  scores = {k: v for k, v in raw.items() if not k.startswith("settings/")}
  settings = {k[len("settings/"):]: v for k, v in raw.items()
              if k.startswith("settings/")}
  settings["sizes_preset"] = sizes
  settings["representation"] = "mean of q(z|x)"
  return {
      "scores": scores,
      "settings": settings,
      "checkpoint_step": int(step),
      "dataset": dataset.describe(),
      "model": {"name": config.model.name,
                "hparams": {n: float(config.model[n]) for n in
                            objectives.get_objective(
                                config.model.name).hparam_names}},
      "versions": library_versions(),
      "seconds": time.time() - start,
      "stage_seconds": stage_seconds,
  }


def write_results(results: dict, workdir: str,
                  filename: str = "results.json") -> str:
  """Writes ``results`` atomically into ``workdir``; returns the path."""
  return write_json_atomically(os.path.join(workdir, filename), results)


def format_table(results: dict) -> str:
  """A plain-text table of the scores."""
  lines = [f"Evaluation at step {results['checkpoint_step']} "
           f"({results['settings']['sizes_preset']} sizes, data: "
           f"{results['dataset']['source']})"]
  width = max(len(k) for k in results["scores"])
  for name, value in sorted(results["scores"].items()):
    shown = f"{value:.4f}" if isinstance(value, float) else str(value)
    lines.append(f"  {name:<{width}}  {shown}")
  return "\n".join(lines)


def evaluate_workdir(workdir: str, sizes: str = "default",
                     step: Optional[int] = None,
                     metric_names: Optional[Sequence[str]] = None,
                     dci_backend: Optional[str] = None) -> dict:
  """Evaluates the checkpoint of a training workdir and writes results.json.

  Args:
    workdir: a directory written by ``train_and_evaluate``.
    sizes: metric sample sizes preset.
    step: checkpoint step (default: the newest).
    metric_names: which metrics to run (default: all).
    dci_backend: 'auto', 'jax' or 'sklearn'; None keeps the run's
      ``config.dci_backend``.

  Returns:
    The results dict (also written to ``<workdir>/results.json``).
  """
  config = run_config.load_config(workdir)
  if dci_backend is not None:
    config.dci_backend = dci_backend
  dataset = data_lib.make_dataset(config.data)
  networks = make_networks(config.model, dataset.observation_shape)
  params, step = restore_vae_params(workdir, config, networks,
                                    dataset.observation_shape, step,
                                    parts=("encoder",))
  results = evaluate_state(config, networks.encoder, params["encoder"],
                           dataset, step, sizes, metric_names)
  write_results(results, workdir)
  return results
