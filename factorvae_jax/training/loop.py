"""``train_and_evaluate``: the training loop behind ``experiments.run``."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax.builder import AXIS_NAME, Checkpointer, TrainedModel, TrainState, build_step_config, init_state
from factorvae_jax.builder import run_config
from factorvae_jax.evaluation import evaluate as evaluation
from factorvae_jax.monitoring import MetricWriter, ProgressBar
from factorvae_jax.training.preemption import StopSignals
from factorvae_jax.training.host_data import HostBatches
from factorvae_jax.training.train_step import train_steps, train_steps_on_batches
from factorvae_jax.visualisation.snapshots import SnapshotWriter


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf; the last good checkpoint was kept."""


class RunTakenOver(RuntimeError):
  """Another process took the run's workdir over (a sweep's claim, after
  this one stalled); training stopped without writing anything more there."""


def _always_owned(workdir: str) -> bool:
  del workdir
  return True


class TrainingInterrupted(KeyboardInterrupt):
  """SIGINT/SIGTERM during training or the final evaluation.

  Raised after a checkpoint of the last finished step was saved and the
  writers were closed. A ``KeyboardInterrupt``, so notebooks and callers that
  catch that still do; ``experiments.run`` exits with
  ``preemption.EXIT_RESUMABLE``.
  """


def first_non_finite(metrics: dict, first_step: int) -> Optional[str]:
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
  return {k: np.asarray(v) for k, v in unreplicate(metrics).items()}


def scalar_summary(chunks: list[dict]) -> dict:
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


def numeric_scores(scores: dict, prefix: str) -> dict:
  """The finite-or-not numeric scores, prefixed, for the metric writer."""
  return {prefix + k: float(v) for k, v in scores.items()
          if isinstance(v, (int, float, np.number)) and not isinstance(v, bool)}


def needs_host(config: ml_collections.ConfigDict, step: int) -> bool:
  """Whether anything (log, checkpoint, images, evaluation) is due at
  ``step``, so the state must be copied to the host."""
  return (step % config.log_every_steps == 0 or
          step % config.checkpoint_every_steps == 0 or
          step % config.image_every_steps == 0 or
          bool(config.eval_every_steps and
               step % config.eval_every_steps == 0) or
          step == config.num_steps)


def replicate(tree: Any) -> Any:
  """Copies ``tree`` to every local device, as ``pmap`` lays out its outputs.

  The copies carry the sharding a pmapped function returns, so the train
  step's first call hits the same compilation as every later call (which
  receive its outputs). ``flax.jax_utils.replicate`` lays them out on another
  mesh, which made the step compile twice.
  """
  if not jax.tree.leaves(tree):  # E.g. procedural data: nothing to copy.
    return tree
  stacked = jax.tree.map(
      lambda x: np.broadcast_to(np.asarray(x), (jax.local_device_count(),
                                                *np.shape(x))), tree)
  return jax.pmap(lambda x: x, axis_name=AXIS_NAME)(stacked)


def unreplicate(tree: Any) -> Any:
  """Device 0's copy of a replicated tree, on the host."""
  return jax.device_get(jax.tree.map(lambda x: x[0], tree))


def open_run(config: ml_collections.ConfigDict, workdir: str, dataset,
             step_config) -> tuple[TrainState, Checkpointer, MetricWriter]:
  """A run's state, resumed from ``workdir``'s newest checkpoint if any.

  Also writes the run files (``config.json``, ``data_source.json``) and opens
  the metric writer, dropping logged steps after the resumed one.

  Args:
    config: the run's experiment config.
    workdir: its workdir (existing).
    dataset: the run's dataset.
    step_config: its ``StepConfig``.

  Returns:
    ``(state, checkpointer, writer)``; the caller closes the last two.

  Raises:
    ValueError: the workdir's checkpoints are of a different experiment.
  """
  state = init_state(config, step_config, dataset.observation_shape)
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"),
                              config.keep_checkpoints)
  if checkpointer.latest_step() is not None:
    try:
      run_config.check_resume_compatible(config, workdir)
    except ValueError:
      checkpointer.close()
      raise
    state = checkpointer.restore(state)
    logging.info("Resumed from step %d in %s", int(state.step), workdir)
  run_config.write_run_files(config, dataset, workdir)
  writer = MetricWriter(workdir)
  writer.truncate_after(int(state.step))
  writer.write_text(int(state.step), "data_source", dataset.source)
  return state, checkpointer, writer


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *,
    still_owned: Optional[Callable[[str], bool]] = None) -> TrainState:
  """Trains ``config``'s model in ``workdir``, resuming from its checkpoint.

  Writes to ``workdir``: ``config.json``, ``data_source.json``,
  ``checkpoints/``, ``metrics.jsonl``, ``tensorboard/``, ``images/`` and, after
  the final evaluation, ``results.json``.

  SIGINT and SIGTERM (Ctrl-C, a notebook's interrupt, a scheduler's
  preemption) are handled while it runs: the current chunk of steps finishes,
  a checkpoint of it is saved, the writers are closed and
  ``TrainingInterrupted`` is raised; calling it again resumes.

  Args:
    config: an experiment config (see ``experiments/configs``).
    workdir: output directory; created if missing.
    still_owned: called with ``workdir`` between chunks and before every
      save and result; False (another process took the run over) raises
      ``RunTakenOver`` with nothing more written. The sweep runner passes
      ``claims.may_write``.

  Returns:
    The final train state (host copy).

  Raises:
    NonFiniteLossError: a loss became NaN/Inf; checkpoints up to the last good
      step are kept.
    TrainingInterrupted: a stop signal; the last finished step was saved.
    RunTakenOver: ``still_owned`` returned False.
    ValueError: the config is inconsistent, or differs from the one the
      workdir's checkpoints were trained with.
  """
  with StopSignals() as stop:
    return _train_and_evaluate(config, workdir, stop,
                               still_owned or _always_owned)


@dataclasses.dataclass
class RunRecorder:
  """What one run writes while it trains: logs, checkpoints and images.

  Shared by the single-run loop and the packed loop (one per packed run),
  so a run writes the same files whichever trained it.

  Attributes:
    config: the run's experiment config.
    workdir: its workdir.
    checkpointer: its checkpoint manager.
    writer: its metric writer (TensorBoard and metrics.jsonl).
    snapshots: its image writer.
    watch: the objective's training watch (FactorVAE's discriminator), or
      None.
    last_saved: the newest saved step, or None.
    pending: chunk metrics since the last log line.
    still_owned: False once another process took the workdir over; checked
      before every write (``check_owner``).
  """
  config: ml_collections.ConfigDict
  workdir: str
  checkpointer: Checkpointer
  writer: MetricWriter
  snapshots: SnapshotWriter
  watch: Optional[Any]
  last_saved: Optional[int]
  pending: list = dataclasses.field(default_factory=list)
  still_owned: Callable[[str], bool] = _always_owned

  @classmethod
  def open(cls, config, workdir: str, dataset, step_config,
           still_owned: Callable[[str], bool] = _always_owned):
    """``(state, recorder)``: ``open_run`` plus the image writer and watch."""
    state, checkpointer, writer = open_run(config, workdir, dataset,
                                           step_config)
    aux = step_config.auxiliary
    watch = (aux.make_watch(config)
             if aux is not None and aux.make_watch is not None else None)
    snapshots = SnapshotWriter(
        dataset.sample_observations(8,
                                    np.random.RandomState(config.eval_seed)),
        os.path.join(workdir, "images"))
    return state, cls(config=config, workdir=workdir,
                      checkpointer=checkpointer, writer=writer,
                      snapshots=snapshots, watch=watch,
                      last_saved=checkpointer.latest_step(),
                      still_owned=still_owned)

  def check_owner(self, step: int) -> None:
    """Raises ``RunTakenOver`` if another process took the workdir over."""
    if not self.still_owned(self.workdir):
      raise RunTakenOver(
          f"{self.workdir}: another process took this run over (its sweep "
          f"claim) while this one was at step {step}; stopped without "
          f"writing anything more there.")

  def save(self, state: TrainState) -> None:
    self.check_owner(int(state.step))
    self.checkpointer.save(state)
    self.last_saved = int(state.step)

  def record(self, step: int, state: TrainState, networks,
             steps_per_second: float) -> None:
    """Writes the log line, checkpoint and images due at ``step``.

    Args:
      step: the step just finished.
      state: the host copy of the run's state at ``step``.
      networks: the VAE networks (for the images).
      steps_per_second: the progress bar's rate (logged if finite).
    """
    config = self.config
    self.check_owner(step)
    if step % config.log_every_steps == 0 or step == config.num_steps:
      scalars = scalar_summary(self.pending)
      if np.isfinite(steps_per_second):  # Unknown until two chunks ran.
        scalars["steps_per_second"] = steps_per_second
      self.writer.write_scalars(step, scalars)
      self.pending = []
      warning = self.watch(step, scalars) if self.watch is not None else None
      if warning:
        logging.warning("%s step %d: %s", self.workdir, step, warning)
        self.writer.write_text(step, "warnings", warning)
    if step % config.checkpoint_every_steps == 0:
      self.save(state)
    if step % config.image_every_steps == 0 or step == config.num_steps:
      pictures = self.snapshots.write(
          TrainedModel(networks, state.vae_params, step), step)
      self.writer.write_images(step, pictures)


def _train_and_evaluate(config, workdir, stop: StopSignals,
                        still_owned: Callable[[str], bool]) -> TrainState:
  start_time = time.monotonic()
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  num_devices = jax.local_device_count()
  run_config.validate(config, num_devices)

  dataset = data_lib.make_dataset(config.data)
  logging.info("Data: %s", dataset.source)
  step_config = build_step_config(config, dataset.observation_shape)
  state, recorder = RunRecorder.open(config, workdir, dataset, step_config,
                                     still_owned)
  checkpointer, writer = recorder.checkpointer, recorder.writer
  try:
    host_state = _train(config, dataset, step_config, state, recorder, stop,
                        start_time)
    if config.final_eval:
      try:
        results = evaluation.evaluate_state(
            config, step_config.networks.encoder,
            host_state.vae_params["encoder"], dataset, int(host_state.step),
            sizes=config.final_eval_sizes,
            metric_names=config.final_eval_metrics,
            should_stop=lambda: stop.requested)
      except evaluation.EvaluationInterrupted:
        raise TrainingInterrupted(
            f"{stop.signal_name}: stopped the final evaluation. Training is "
            f"complete and saved (step {int(host_state.step)} in "
            f"{checkpointer.directory}); evaluate it with python -m "
            f"experiments.evaluate --workdir={workdir}") from None
      recorder.check_owner(int(host_state.step))
      evaluation.write_results(results, workdir)
      writer.write_scalars(int(host_state.step),
                           numeric_scores(results["scores"], "final/"))
      print(evaluation.format_table(results))
  finally:
    writer.close()
  return host_state


def _train(config, dataset, step_config, state, recorder: RunRecorder,
           stop: StopSignals, start_time: float) -> TrainState:
  """The training loop proper: chunks of steps until done or stopped."""
  start_step = int(state.step)
  checkpointer, writer = recorder.checkpointer, recorder.writer
  shown = step_config.objective.progress_metrics

  local_batch = config.batch_size // jax.local_device_count()
  compiled = {}
  host_batches = None
  if config.data.get("on_device", True):
    device_arrays = replicate(dataset.device_arrays())
  else:
    # The arrays stay on the host; each chunk's batches are drawn there.
    host_batches = HostBatches(dataset, step_config, config.batch_size,
                               jax.local_device_count(), state.rng)

  def run_chunk(num_steps, state, step):
    if num_steps not in compiled:
      if host_batches is None:
        fn = functools.partial(train_steps, step_config,
                               dataset.sample_device_batch, local_batch,
                               num_steps)
      else:
        fn = functools.partial(train_steps_on_batches, step_config, num_steps)
      compiled[num_steps] = jax.pmap(fn, axis_name=AXIS_NAME,
                                     donate_argnums=(0,))
    if host_batches is None:
      return compiled[num_steps](state, device_arrays)
    batches = host_batches.get(step, num_steps)
    # Drawn on the host while the device runs this chunk.
    host_batches.prefetch(step + num_steps,
                          min(config.steps_per_dispatch,
                              config.num_steps - step - num_steps))
    return compiled[num_steps](state, batches)

  device_state = replicate(state)
  progress = ProgressBar(config.num_steps, initial_step=start_step)
  step = start_step
  host_state = state

  def evaluate_now(s) -> bool:
    """Periodic evaluation; False if a stop signal cut it short."""
    try:
      scores = evaluation.evaluate_state(
          config, step_config.networks.encoder, s.vae_params["encoder"],
          dataset, int(s.step), sizes=config.periodic_eval_sizes,
          metric_names=config.periodic_eval_metrics,
          should_stop=lambda: stop.requested)
    except evaluation.EvaluationInterrupted:
      return False
    writer.write_scalars(int(s.step), numeric_scores(scores["scores"], "eval/"))
    return True

  try:
    while step < config.num_steps and not stop.requested:
      chunk = min(config.steps_per_dispatch, config.num_steps - step)
      if step == start_step:
        logging.info("Compiling the train step (%d steps per dispatch); a "
                     "stop signal now takes effect after its first run.",
                     chunk)
      # The old state's buffers are donated; on a NaN nothing of the new one
      # is ever saved.
      device_state, metrics = run_chunk(chunk, device_state, step)
      metrics = _host_metrics(metrics)
      problem = first_non_finite(metrics, step)
      if problem is not None:
        raise NonFiniteLossError(
            f"Training diverged at {problem}. Nothing after step {step} was "
            f"saved; the last good checkpoint is step {recorder.last_saved} "
            f"in {checkpointer.directory}. Lower the learning rates "
            f"(config.optim.*_learning_rate) or the regulariser weight, or "
            f"change config.seed, and run again in a new workdir (or delete "
            f"the checkpoints after {recorder.last_saved}).")
      if step == start_step:
        # Startup cost (data, init, compilation) is what a sweep of short
        # runs pays per model; make it visible.
        logging.info("First %d steps done %.1f s after start (data, init and "
                     "compilation included).", chunk,
                     time.monotonic() - start_time)
      step += chunk
      recorder.check_owner(step)  # Between chunks: a stall may have lost it.
      recorder.pending.append(metrics)
      progress.update(step, {k: float(v[-1]) for k, v in metrics.items()
                             if v.ndim == 1 and k in shown})
      if not needs_host(config, step):
        continue
      host_state = unreplicate(device_state)
      recorder.record(step, host_state, step_config.networks,
                      progress.steps_per_second())
      if config.eval_every_steps and step % config.eval_every_steps == 0:
        evaluate_now(host_state)
    # Finished or stopped: the device state is consistent after every chunk.
    host_state = unreplicate(device_state)
    if int(host_state.step) > start_step or recorder.last_saved is not None:
      recorder.save(host_state)
  finally:
    progress.close()
    if host_batches is not None:
      host_batches.close()
    checkpointer.close()  # Waits for the pending asynchronous save.
  if stop.requested:
    writer.flush()
    if int(host_state.step) == start_step and recorder.last_saved is None:
      where = "no step had run, so there is nothing to resume from yet"
    else:
      where = f"the checkpoint is in {checkpointer.directory}"
    message = (f"{stop.signal_name}: stopped at step {int(host_state.step)} "
               f"of {config.num_steps}; {where}. Run the same command again "
               f"to resume.")
    logging.warning(message)
    raise TrainingInterrupted(message)
  return host_state
