"""``train_and_evaluate``: the training loop behind ``experiments.run``."""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any, Optional

from absl import logging
import flax.jax_utils
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax import objectives
from factorvae_jax.evaluation import evaluate as evaluation
from factorvae_jax.models import make_networks
from factorvae_jax.monitoring import DiscriminatorWatch, MetricWriter, ProgressBar
from factorvae_jax.training import run_config
from factorvae_jax.training.checkpointing import Checkpointer
from factorvae_jax.training.train_state import StepConfig, TrainState, create_train_state, make_optimizers, read_hparams
from factorvae_jax.training.train_step import train_steps
from factorvae_jax.visualisation import grids

AXIS_NAME = "batch"


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf; the last good checkpoint was kept."""


class TrainingInterrupted(KeyboardInterrupt):
  """Ctrl-C during training; a checkpoint of the last finished step was saved.

  A ``KeyboardInterrupt``, so notebooks and callers that catch that still do.
  """


def build_step_config(config: ml_collections.ConfigDict,
                      dataset: data_lib.GroundTruthData,
                      axis_name: Optional[str] = AXIS_NAME) -> StepConfig:
  """Networks, objective and optimisers of ``config`` for ``dataset``."""
  objective = objectives.get_objective(config.model.name)
  networks = make_networks(config.model, dataset.observation_shape,
                           objective.uses_discriminator)
  vae_tx, disc_tx = make_optimizers(config)
  return StepConfig(networks=networks, objective=objective, vae_tx=vae_tx,
                    disc_tx=disc_tx,
                    second_batch=bool(config.model.get("second_batch", True)),
                    axis_name=axis_name)


def init_state(config: ml_collections.ConfigDict, step_config: StepConfig,
               dataset: data_lib.GroundTruthData) -> TrainState:
  """The step-0 train state of ``config`` (parameters from ``config.seed``)."""
  # Jitted, initialisation compiles once instead of op by op (about half the
  # start-up time; the parameters are bit-identical, docs/performance.md).
  return jax.jit(create_train_state, static_argnums=(0, 2))(
      step_config, jax.random.PRNGKey(config.seed),
      tuple(dataset.observation_shape),
      read_hparams(step_config.objective, config.model))


def _first_non_finite(metrics: dict, first_step: int) -> Optional[str]:
  """Describes the first NaN/Inf in stacked chunk metrics, or returns None.

  Steps are named by the state step the loss was computed at.
  """
  bad_steps = {}
  for name, values in metrics.items():
    values = np.asarray(values).reshape(len(values), -1)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
      bad_steps[name] = int(np.argmax(bad))
  if not bad_steps:
    return None
  # Report the loss that went bad first (the others usually follow it).
  name = min(bad_steps, key=lambda n: (bad_steps[n], n != "loss", n))
  i = bad_steps[name]
  value = np.asarray(metrics[name])[i]
  return f"step {first_step + i}: {name}={value}"


def _host_metrics(metrics: Any) -> dict:
  """Device 0's copy of pmean-ed chunk metrics as numpy arrays."""
  return {k: np.asarray(v[0]) for k, v in jax.device_get(metrics).items()}


def _scalar_summary(chunks: list[dict]) -> dict:
  """Averages a list of stacked chunk metrics into loggable scalars."""
  out = {}
  for name in chunks[0]:
    stacked = np.concatenate([c[name] for c in chunks], axis=0)
    mean = stacked.mean(axis=0)
    if mean.ndim == 0:
      out[name] = float(mean)
    else:  # kl_per_dim
      for i, v in enumerate(mean):
        out[f"{name}/{i}"] = float(v)
  return out


def _numeric(scores: dict, prefix: str) -> dict:
  """The finite-or-not numeric scores, prefixed, for the metric writer."""
  return {prefix + k: float(v) for k, v in scores.items()
          if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


class _Visualiser:
  """Encodes a fixed set of images and writes reconstruction/traversal PNGs."""

  def __init__(self, step_config: StepConfig, dataset, workdir: str,
               seed: int, num_images: int = 8, num_traversed: int = 3):
    nets = step_config.networks
    self._encode = jax.jit(lambda p, x: nets.encoder.apply(p, x))
    self._decode = jax.jit(
        lambda p, z: jax.nn.sigmoid(nets.decoder.apply(p, z)))
    self._images = dataset.sample_observations(
        num_images, np.random.RandomState(seed))
    self._num_traversed = num_traversed
    self._dir = os.path.join(workdir, "images")

  def write(self, vae_params, step: int, writer: MetricWriter) -> None:
    mean, logvar = self._encode(vae_params["encoder"], self._images)
    recon = np.asarray(self._decode(vae_params["decoder"], mean))
    recon_grid = grids.make_reconstruction_grid(self._images, recon)
    kl = np.asarray(jnp.mean(
        0.5 * (mean ** 2 + jnp.exp(logvar) - logvar - 1.0), axis=0))
    decode = lambda z: np.asarray(self._decode(vae_params["decoder"], z))
    traversal_grid = grids.make_traversal_grid(
        decode, np.asarray(mean[:self._num_traversed]), kl_per_dim=kl)
    grids.save_png(os.path.join(self._dir, f"reconstructions_{step:08d}.png"),
                   recon_grid)
    grids.save_png(os.path.join(self._dir, f"traversals_{step:08d}.png"),
                   traversal_grid)
    writer.write_images(step, {"reconstructions": recon_grid,
                               "traversals": traversal_grid})


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: str) -> TrainState:
  """Trains ``config``'s model in ``workdir``, resuming from its checkpoint.

  Writes to ``workdir``: ``config.json``, ``data_source.json``,
  ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/``, ``images/`` and, after
  the final evaluation, ``results.json``.

  Args:
    config: an experiment config (see ``experiments/configs``).
    workdir: output directory; created if missing.

  Returns:
    The final train state (host copy).

  Raises:
    NonFiniteLossError: a loss became NaN/Inf; checkpoints up to the last good
      step are kept.
    TrainingInterrupted: Ctrl-C; the last finished step was checkpointed.
    ValueError: the config is inconsistent, or differs from the one the
      workdir's checkpoints were trained with.
  """
  start_time = time.monotonic()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  num_devices = jax.local_device_count()
  run_config.validate(config, num_devices)

  dataset = data_lib.make_dataset(config.data)
  logging.info("Data: %s", dataset.source)
  step_config = build_step_config(config, dataset)
  state = init_state(config, step_config, dataset)

  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              config.keep_checkpoints)
  if checkpointer.latest_step() is not None:
    run_config.check_resume_compatible(config, workdir)
    state = checkpointer.restore(state)
    logging.info("Resumed from step %d in %s", int(state.step), workdir)
  run_config.write_run_files(config, dataset, workdir)
  start_step = int(state.step)

  writer = MetricWriter(workdir)
  writer.truncate_after(start_step)
  writer.write_text(start_step, "data_source", dataset.source)
  visualiser = _Visualiser(step_config, dataset, workdir, config.eval_seed)
  watch = (DiscriminatorWatch(config.disc_watch_warmup_steps,
                              config.disc_watch_window_steps)
           if step_config.uses_discriminator else None)

  local_batch = config.batch_size // num_devices
  compiled = {}

  def run_chunk(num_steps, state, arrays):
    if num_steps not in compiled:
      compiled[num_steps] = jax.pmap(
          functools.partial(train_steps, step_config,
                            dataset.sample_device_batch, local_batch,
                            num_steps),
          axis_name=AXIS_NAME, donate_argnums=(0,))
    return compiled[num_steps](state, arrays)

  device_arrays = flax.jax_utils.replicate(dataset.device_arrays())
  device_state = flax.jax_utils.replicate(state)
  progress = ProgressBar(config.num_steps, initial_step=start_step)
  pending = []  # Chunk metrics since the last log line.
  step = start_step
  last_saved = checkpointer.latest_step()
  host_state = state

  def save(s):
    nonlocal last_saved
    checkpointer.save(s)
    last_saved = int(s.step)

  try:
    while step < config.num_steps:
      chunk = min(config.steps_per_dispatch, config.num_steps - step)
      # The old state's buffers are donated; on a NaN nothing of the new one
      # is ever saved.
      device_state, metrics = run_chunk(chunk, device_state, device_arrays)
      metrics = _host_metrics(metrics)
      problem = _first_non_finite(metrics, step)
      if problem is not None:
        raise NonFiniteLossError(
            f"Training diverged at {problem}. Nothing after step {step} was "
            f"saved; the last good checkpoint is step {last_saved} in "
            f"{checkpointer.directory}. Lower the learning rates "
            f"(config.optim.*_learning_rate) or the regulariser weight, or "
            f"change config.seed, and run again in a new workdir (or delete "
            f"the checkpoints after {last_saved}).")
      if step == start_step:
        # Startup cost (data, init, compilation) is what a sweep of short
        # runs pays per model; make it visible.
        logging.info("First %d steps done %.1f s after start (data, init and "
                     "compilation included).", chunk,
                     time.monotonic() - start_time)
      step += chunk
      pending.append(metrics)
      progress.update(step, {k: float(v[-1]) for k, v in metrics.items()
                             if v.ndim == 1 and k in ("loss", "reconstruction",
                                                      "kl", "tc_estimate",
                                                      "disc_accuracy")})
      needs_host = (step % config.log_every_steps == 0 or
                    step % config.checkpoint_every_steps == 0 or
                    step % config.image_every_steps == 0 or
                    (config.eval_every_steps and
                     step % config.eval_every_steps == 0) or
                    step == config.num_steps)
      if not needs_host:
        continue
      host_state = jax.device_get(flax.jax_utils.unreplicate(device_state))
      if step % config.log_every_steps == 0 or step == config.num_steps:
        scalars = _scalar_summary(pending)
        rate = progress.steps_per_second()
        if np.isfinite(rate):  # Unknown until two chunks have run.
          scalars["steps_per_second"] = rate
        writer.write_scalars(step, scalars)
        pending = []
        if watch is not None:
          warning = watch.update(step, scalars["disc_accuracy"])
          if warning:
            logging.warning("step %d: %s", step, warning)
            writer.write_text(step, "warnings", warning)
      if step % config.checkpoint_every_steps == 0:
        save(host_state)
      if step % config.image_every_steps == 0 or step == config.num_steps:
        visualiser.write(host_state.vae_params, step, writer)
      if config.eval_every_steps and step % config.eval_every_steps == 0:
        scores = evaluation.evaluate_state(
            config, step_config, dataset, host_state,
            sizes=config.periodic_eval_sizes,
            metric_names=config.periodic_eval_metrics)
        writer.write_scalars(step, _numeric(scores["scores"], "eval/"))
    host_state = jax.device_get(flax.jax_utils.unreplicate(device_state))
    save(host_state)
  except KeyboardInterrupt:
    # Keep the work finished so far: the device state is consistent after
    # every completed chunk.
    host_state = jax.device_get(flax.jax_utils.unreplicate(device_state))
    logging.warning("Interrupted at step %d; saving a checkpoint.",
                    int(host_state.step))
    save(host_state)
    raise TrainingInterrupted(
        f"Interrupted at step {int(host_state.step)}; the checkpoint is in "
        f"{checkpointer.directory}. Run the same command again to resume.")
  finally:
    progress.close()
    checkpointer.close()  # Waits for pending asynchronous saves.
    writer.flush()

  if config.final_eval:
    results = evaluation.evaluate_state(
        config, step_config, dataset, host_state,
        sizes=config.final_eval_sizes,
        metric_names=config.final_eval_metrics)
    evaluation.write_results(results, workdir)
    writer.write_scalars(step, _numeric(results["scores"], "final/"))
    print(evaluation.format_table(results))
  writer.close()
  return host_state
