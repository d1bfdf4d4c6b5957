"""Encodes a dataset with a trained model and runs the metric suite.

Representations are the mean of q(z|x) (disentanglement_lib's default).
"""

from __future__ import annotations

import importlib.metadata
import time
from typing import Callable, Optional, Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax import metrics
from factorvae_jax import objectives
from factorvae_jax.builder import run_config
from factorvae_jax.builder.trained_model import encode_in_chunks
from factorvae_jax.builder.trained_model import make_gaussian_encoder
from factorvae_jax.builder.trained_model import restore_vae_params
from factorvae_jax.models import make_networks
from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir


class EvaluationInterrupted(KeyboardInterrupt):
  """A stop signal arrived during an evaluation; nothing was written."""


_ENCODE_CHUNK = 500
_VERSIONED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint",
                       "numpy", "scikit-learn", "tensorflow-datasets")


def _mean_encoder(encoder, block: Optional[int] | str = "auto"):
  """``(params, x [n, ...]) -> mean codes [n, D]``, the convolutions in
  blocks (``trained_model.make_gaussian_encoder``)."""
  encode = make_gaussian_encoder(encoder, block)
  return lambda params, x: encode(params, x)[0]


def make_representation_fn(encoder, encoder_params,
                           block: Optional[int] | str = "auto"):
  """numpy observations -> numpy mean codes, jitted on fixed-size chunks.

  Chunks are padded to one shape so the encoder compiles once whatever the
  batch sizes the metrics ask for.

  Args:
    encoder: the encoder module.
    encoder_params: its parameters.
    block: images per block of the convolutions inside a chunk's program
      (``trained_model.make_gaussian_encoder``); "auto": the platform's
      (``trained_model.encode_block_size``), None: the whole chunk.
  """
  encode = jax.jit(_mean_encoder(encoder, block))
  return lambda observations: encode_in_chunks(encode, encoder_params,
                                               observations, _ENCODE_CHUNK)


def make_many_models_encode_fn(encoder, stacked_params, mode: str = "auto"):
  """numpy observations [B, ...] -> mean codes [B, M, C] of M encoders.

  One jitted program encodes a chunk with every model, so a pack of runs is
  encoded with one dispatch per chunk.

  Args:
    encoder: the encoder module (the same architecture for every model).
    stacked_params: its parameters, stacked on a leading model axis (M).
    mode: 'auto', 'map' or 'vmap' as in ``training.packed``: ``map`` runs
      the models one after another inside the program (ungrouped
      convolutions, fastest on a CPU; each model's codes are bitwise those
      of ``make_representation_fn``), ``vmap`` batches them (grouped
      convolutions, for accelerators; codes equal to float rounding);
      'auto' picks ``map`` on CPU and ``vmap`` elsewhere.

  Returns:
    The encode function.
  """
  if mode == "auto":
    # As training.packed's 'auto': XLA:CPU runs grouped convolutions slowly.
    mode = "map" if jax.default_backend() == "cpu" else "vmap"
  if mode not in ("map", "vmap"):
    raise ValueError(f"mode must be 'auto', 'map' or 'vmap' for encoding, "
                     f"got {mode!r}.")

  encode_one = _mean_encoder(encoder)

  def encode_all(params, x):
    if mode == "map":
      codes = jax.lax.map(lambda p: encode_one(p, x), params)
    else:
      codes = jax.vmap(encode_one, in_axes=(0, None))(params, x)
    return jnp.swapaxes(codes, 0, 1)

  encode = jax.jit(encode_all)
  return lambda observations: encode_in_chunks(encode, stacked_params,
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
    'model', 'versions', 'seconds', 'stage_seconds',
    'observations_encoded'}`` (JSON-serialisable; ``stage_seconds`` is the
    wall time of the shared sample pool and of each metric).

  Raises:
    EvaluationInterrupted: ``should_stop`` returned True.
  """
  encode = make_representation_fn(encoder, encoder_params)
  return _evaluate_models([config], lambda obs: encode(obs)[:, None],
                          dataset, [step], sizes, metric_names,
                          should_stop, single=[encode])[0]


def evaluate_states(configs: Sequence, encoder, stacked_params, dataset,
                    steps: Sequence[int], sizes: str = "default",
                    metric_names: Optional[Sequence[str]] = None,
                    should_stop: Optional[Callable[[], bool]] = None,
                    mode: str = "auto",
                    on_result: Optional[Callable[[int, dict], None]] = None
                    ) -> list[dict]:
  """``evaluate_state`` for M models of one architecture, encoded together.

  Every distinct observation the metrics draw is encoded once, by one
  program for all M models (``make_many_models_encode_fn``), when the
  dataset names its observations by index (``metrics.CodeCache``); the
  first model's pass fills every model's codes and the others' passes, with
  the same evaluation seed, only look them up. Each model's results are
  those ``evaluate_state`` gives it alone. On a dataset without an
  observation index the models are evaluated one after another.

  Args:
    configs: each model's experiment config.
    encoder: the encoder module.
    stacked_params: the encoders' parameters on a leading model axis (M).
    dataset: the ground-truth dataset.
    steps: each model's training step (recorded).
    sizes: size preset, as in ``evaluate_state``.
    metric_names: which metrics to run (default: all).
    should_stop: as in ``evaluate_state``.
    mode: how the models are batched in the program ('auto', 'map',
      'vmap'; ``make_many_models_encode_fn``).
    on_result: called as ``on_result(k, results)`` as soon as model ``k``
      is evaluated (so a stop signal during model ``k + 1`` loses nothing
      of model ``k``'s).

  Returns:
    One results dict per model, as ``evaluate_state`` returns;
    ``observations_encoded`` counts the encodes a model's pass caused
    (zero for models whose codes an earlier pass filled).

  Raises:
    EvaluationInterrupted: ``should_stop`` returned True.
  """
  num_models = len(configs)
  if len(steps) != num_models:
    raise ValueError(f"{num_models} configs but {len(steps)} steps.")
  for leaf in jax.tree.leaves(stacked_params):
    if leaf.shape[:1] != (num_models,):
      raise ValueError(f"stacked_params must have a leading axis of "
                       f"{num_models} models, got a leaf of shape "
                       f"{leaf.shape}.")
  single = None
  if not metrics.supports_code_cache(dataset):
    single = [make_representation_fn(
        encoder, jax.tree.map(lambda a, k=k: a[k], stacked_params))
              for k in range(num_models)]
  return _evaluate_models(
      configs, make_many_models_encode_fn(encoder, stacked_params, mode),
      dataset, steps, sizes, metric_names, should_stop, single=single,
      on_result=on_result)


def _evaluate_models(configs, encode_many, dataset, steps, sizes,
                     metric_names, should_stop, single,
                     on_result=None) -> list[dict]:
  """Evaluates M models through one code cache, or one by one.

  Args:
    encode_many: observations -> codes [B, M, C].
    single: the per-model representation functions, used when the dataset
      has no observation index.
  """
  def check_stop():
    if should_stop is not None and should_stop():
      raise EvaluationInterrupted("evaluation stopped by a signal")

  def polled(fn):
    # Polled here and between metrics: the signal is acted on between two
    # encoder calls, never inside one.
    def wrapped(observations):
      check_stop()
      return fn(observations)
    return wrapped

  cache = None
  if metrics.supports_code_cache(dataset):
    cache = metrics.CodeCache(dataset, polled(encode_many), len(configs),
                              chunk_size=2 * _ENCODE_CHUNK,
                              fill_to=_ENCODE_CHUNK)
  results = []
  for k, (config, step) in enumerate(zip(configs, steps)):
    encoded_before = cache.num_encoded if cache is not None else 0
    if cache is not None:
      data, representation_fn = cache.dataset, cache.representation_fn(k)
    else:
      data, representation_fn = dataset, polled(single[k])
    result = _evaluate_one(config, data, representation_fn, step, sizes,
                           metric_names, check_stop, dataset.describe())
    if cache is not None:
      result["observations_encoded"] = cache.num_encoded - encoded_before
      result["models_encoded_together"] = len(configs)
    results.append(result)
    if on_result is not None:
      on_result(k, result)
  return results


def _evaluate_one(config, data, representation_fn, step, sizes,
                  metric_names, check_stop, dataset_description) -> dict:
  """The suite on one representation; the results dict of one model."""
  start = time.time()
  stage_seconds = {}

  def on_progress(stage, seconds):
    check_stop()
    # Logged as it goes: at the default sizes a CPU run takes many minutes,
    # most of it in DCI's boosted trees.
    stage_seconds[stage] = round(seconds, 2)
    logging.info("evaluation: %s took %.1f s", stage, seconds)

  counted = _CountingRepresentation(representation_fn)
  raw = metrics.evaluate_representation(
      data, counted, random_state=int(config.eval_seed),
      sizes=metrics.preset(sizes), metrics=metric_names,
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
      "dataset": dataset_description,
      "model": {"name": config.model.name,
                "hparams": {n: float(config.model[n]) for n in
                            objectives.get_objective(
                                config.model.name).hparam_names}},
      "versions": library_versions(),
      "seconds": time.time() - start,
      "stage_seconds": stage_seconds,
      # Replaced by the cache's count when codes are cached.
      "observations_encoded": counted.count,
      "observations_drawn": counted.count,
  }


class _CountingRepresentation:
  """Counts the observations the metrics ask a representation for."""

  def __init__(self, fn):
    self._fn = fn
    self.count = 0

  def __call__(self, observations):
    self.count += len(observations)
    return self._fn(observations)


def write_results(results: dict, workdir: str) -> str:
  """Writes ``results`` atomically as the run's results; returns the path.

  UDR's scores (``python -m experiments.udr``, which evaluation does not
  compute) are kept when the results already there are of the same
  checkpoint step: they depend on that checkpoint and its sibling runs only,
  so evaluating the run again does not make them stale. Of another step
  they are dropped (run ``experiments.udr`` again).
  """
  try:
    old = run_dir.read_results(workdir)
  except errors.BadFileError:
    old = None  # Unreadable: replaced, with nothing to keep.
  if old is not None and old.get("checkpoint_step") == results.get(
      "checkpoint_step"):
    results = dict(results, scores=dict(results["scores"]))
    for name, score in old["scores"].items():
      if name.startswith(run_dir.UDR_SCORE_PREFIX):
        results["scores"].setdefault(name, score)
    if run_dir.UDR_SECTION in old:
      results.setdefault(run_dir.UDR_SECTION, old[run_dir.UDR_SECTION])
  return run_dir.write_results(workdir, results)


def format_table(results: dict) -> str:
  """A plain-text table of the scores."""
  lines = [f"Evaluation at step {results['checkpoint_step']} "
           f"({results['settings']['sizes_preset']} sizes, data: "
           f"{results['dataset']['source']})"]
  width = max(len(k) for k in results["scores"])
  for name, value in sorted(results["scores"].items()):
    shown = f"{value:.4f}" if isinstance(value, float) else str(value)
    lines.append(f"  {name:<{width}}  {shown}")
  if "observations_drawn" in results and "seconds" in results:
    lines.append(f"({results['observations_drawn']:,} observations drawn, "
                 f"{results['observations_encoded']:,} encoded; "
                 f"{results['seconds']:.0f} s)")
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
    dci_backend: one of ``metrics.registry.DCI_BACKENDS``; None keeps the run's
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


def evaluate_workdirs(workdirs: Sequence[str], sizes: str = "default",
                      step: Optional[int] = None,
                      metric_names: Optional[Sequence[str]] = None,
                      dci_backend: Optional[str] = None,
                      mode: str = "auto") -> list[dict]:
  """Evaluates several training workdirs together (``evaluate_states``).

  The runs may be of different models (FactorVAE, beta-VAE, ...) and seeds,
  but must share the dataset and the encoder architecture: every distinct
  observation is then encoded once, by one program for all of them.

  Args:
    workdirs: directories written by ``train_and_evaluate``.
    sizes: metric sample sizes preset.
    step: checkpoint step of every run (default: each run's newest).
    metric_names: which metrics to run (default: all).
    dci_backend: one of ``metrics.registry.DCI_BACKENDS``; None keeps each run's
      ``config.dci_backend``.
    mode: how the encoders are batched ('auto', 'map', 'vmap').

  Returns:
    One results dict per workdir (each also written to its
    ``results.json`` as soon as it is done).

  Raises:
    ValueError: the runs differ in their data or encoder architecture, or a
      workdir repeats.
  """
  workdirs = list(workdirs)
  if not workdirs or len(set(workdirs)) != len(workdirs):
    raise errors.InvalidValueError(
        f"give one or more distinct workdirs, got {workdirs}.")
  configs = [run_config.load_config(w) for w in workdirs]
  for config in configs:
    if dci_backend is not None:
      config.dci_backend = dci_backend
  dataset = data_lib.make_dataset(configs[0].data)
  shape = dataset.observation_shape
  encoder = make_networks(configs[0].model, shape).encoder
  params, steps = [], []
  for workdir, config in zip(workdirs, configs):
    if config.data.to_dict() != configs[0].data.to_dict():
      raise errors.InvalidValueError(
          f"{workdir} was trained on other data than {workdirs[0]} "
          f"({config.data.to_dict()} vs {configs[0].data.to_dict()}); "
          f"evaluate them in separate calls.")
    networks = make_networks(config.model, shape)
    if networks.encoder != encoder:
      raise errors.InvalidValueError(
          f"{workdir}'s encoder differs from {workdirs[0]}'s ({networks.encoder} "
          f"vs {encoder}); only runs of one encoder architecture are encoded "
          f"together: evaluate them in separate calls.")
    restored, restored_step = restore_vae_params(
        workdir, config, networks, shape, step, parts=("encoder",))
    params.append(restored["encoder"])
    steps.append(restored_step)
  return evaluate_states(
      configs, encoder, jax.tree.map(lambda *a: np.stack(a), *params),
      dataset, steps, sizes, metric_names, mode=mode,
      on_result=lambda k, results: write_results(results, workdirs[k]))
