"""Encodes a dataset with a trained model and runs the metric suite.

Representations are the mean of q(z|x) (disentanglement_lib's default).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import time
from typing import Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax import metrics

# Sample sizes for each metric: None = disentanglement_lib's study defaults.
# 'tiny' exists for tests and smoke runs: its numbers are not comparable.
TINY_SIZES = {
    "mig": {"num_train": 200},
    "dci": {"num_train": 200, "num_test": 100},
    "sap": {"num_train": 200, "num_test": 100},
    "modularity": {"num_train": 200, "num_test": 100},
    "unsupervised": {"num_train": 200},
    "beta_vae": {"batch_size": 8, "num_train": 40, "num_eval": 20},
    "factor_vae": {"batch_size": 8, "num_train": 40, "num_eval": 20,
                   "num_variance_estimate": 200},
}
SIZE_PRESETS = {"default": None, "cheap": metrics.CHEAP_SIZES,
                "tiny": TINY_SIZES}

_ENCODE_CHUNK = 500
_VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
                       "numpy", "scikit-learn", "tensorflow-datasets")


def resolve_sizes(name: str) -> Optional[dict]:
  """Maps a size preset name to the metric suite's ``sizes`` argument.

  Raises:
    ValueError: naming the bad value and the presets.
  """
  if name not in SIZE_PRESETS:
    raise ValueError(f"evaluation sizes {name!r} are unknown; choose one of "
                     f"{sorted(SIZE_PRESETS)}.")
  return SIZE_PRESETS[name]


def make_representation_fn(encoder, encoder_params):
  """numpy observations -> numpy mean codes, jitted on fixed-size chunks.

  Chunks are padded to one shape so the encoder compiles once whatever the
  batch sizes the metrics ask for.
  """
  encode = jax.jit(lambda p, x: encoder.apply(p, x)[0])

  def representation_fn(observations):
    observations = np.asarray(observations, np.float32)
    out = []
    for start in range(0, len(observations), _ENCODE_CHUNK):
      chunk = observations[start:start + _ENCODE_CHUNK]
      n = len(chunk)
      if n < _ENCODE_CHUNK:
        chunk = np.concatenate(
            [chunk, np.zeros((_ENCODE_CHUNK - n, *chunk.shape[1:]),
                             np.float32)])
      out.append(np.asarray(encode(encoder_params, chunk))[:n])
    return np.concatenate(out)

  return representation_fn


def _versions() -> dict:
  found = {}
  for name in _VERSIONED_PACKAGES:
    try:
      found[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  return found


def evaluate_state(config, step_config, dataset, state,
                   sizes: str = "default",
                   metric_names: Optional[Sequence[str]] = None) -> dict:
  """Runs every metric on the mean representation of ``state``'s encoder.

  Args:
    config: the experiment config (for the evaluation seed).
    step_config: the run's ``StepConfig`` (for the encoder module).
    dataset: the ground-truth dataset.
    state: a host ``TrainState``.
    sizes: 'default' (disentanglement_lib's study sizes), 'cheap' or 'tiny'.
    metric_names: which metrics to run (default: all).

  Returns:
    ``{'scores': {...}, 'settings': {...}, 'checkpoint_step', 'dataset',
    'model', 'versions', 'seconds', 'stage_seconds'}`` (JSON-serialisable;
    ``stage_seconds`` is the wall time of the shared sample pool and of each
    metric).
  """
  start = time.time()
  representation_fn = make_representation_fn(
      step_config.networks.encoder, state.vae_params["encoder"])
  stage_seconds = {}

  def on_progress(stage, seconds):
    # Logged as it goes: at the default sizes a CPU run takes many minutes,
    # most of it in DCI's boosted trees.
    stage_seconds[stage] = round(seconds, 2)
    logging.info("evaluation: %s took %.1f s", stage, seconds)

  raw = metrics.evaluate_representation(
      dataset, representation_fn, random_state=int(config.eval_seed),
      sizes=resolve_sizes(sizes), metrics=metric_names,
      on_progress=on_progress)
  scores = {k: v for k, v in raw.items() if not k.startswith("settings/")}
  settings = {k[len("settings/"):]: v for k, v in raw.items()
              if k.startswith("settings/")}
  settings["sizes_preset"] = sizes
  settings["representation"] = "mean of q(z|x)"
  return {
      "scores": scores,
      "settings": settings,
      "checkpoint_step": int(state.step),
      "dataset": dataset.describe(),
      "model": {"name": config.model.name,
                "hparams": {k: float(v) for k, v in state.hparams.items()}},
      "versions": _versions(),
      "seconds": time.time() - start,
      "stage_seconds": stage_seconds,
  }


def write_results(results: dict, workdir: str,
                  filename: str = "results.json") -> str:
  """Writes ``results`` atomically into ``workdir``; returns the path."""
  path = os.path.join(workdir, filename)
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(results, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
  return path


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
                     metric_names: Optional[Sequence[str]] = None) -> dict:
  """Evaluates the checkpoint of a training workdir and writes results.json.

  Args:
    workdir: a directory written by ``train_and_evaluate``.
    sizes: metric sample sizes preset.
    step: checkpoint step (default: the newest).
    metric_names: which metrics to run (default: all).

  Returns:
    The results dict (also written to ``<workdir>/results.json``).
  """
  # Imported here: the metrics package must not depend on training code, and
  # this module is imported by the training loop.
  from factorvae_jax import data as data_lib
  from factorvae_jax.training import loop, run_config
  from factorvae_jax.training.checkpointing import Checkpointer

  config = run_config.load_config(workdir)
  dataset = data_lib.make_dataset(config.data)
  step_config = loop.build_step_config(config, dataset, axis_name=None)
  template = loop.init_state(config, step_config, dataset)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              config.keep_checkpoints)
  if checkpointer.latest_step() is None:
    raise FileNotFoundError(
        f"{workdir}/checkpoints holds no checkpoint to evaluate; train first "
        f"with python -m experiments.run --workdir={workdir}.")
  state = checkpointer.restore(template, step)
  checkpointer.close()
  results = evaluate_state(config, step_config, dataset, state, sizes,
                           metric_names)
  write_results(results, workdir)
  return results
