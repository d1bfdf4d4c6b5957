"""One run of the training engine: its files, checkpoints and failure.

``RunRecorder`` is what ``training.loop`` keeps per run, whether it trains
alone or in a pack: the run opened (resumed from its workdir's newest
checkpoint), its latest host state, the log lines, checkpoints and images
due at a step, and the error that stopped it alone. A state holding a NaN
or Inf is never saved: the run is marked failed in its workdir at once
(``utils.run_dir``), its last good checkpoint kept.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

from absl import logging
import jax
import ml_collections
import numpy as np

from factorvae_jax.builder import Checkpointer, TrainedModel, TrainState, init_state
from factorvae_jax.builder import run_config
from factorvae_jax.monitoring import MetricWriter
from factorvae_jax.utils import run_dir
from factorvae_jax.visualisation.snapshots import SnapshotWriter


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or Inf; the last good checkpoint was kept."""


class RunTakenOver(RuntimeError):
  """Another process took the run's workdir over (a sweep's claim, after
  this one stalled); training stopped without writing anything more there."""


def always_owned(workdir: str) -> bool:
  del workdir
  return True


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


def all_finite(state: TrainState) -> bool:
  """Whether every floating-point leaf of ``state`` is finite (NaN and Inf
  parameters or optimiser moments are never saved)."""
  for leaf in jax.tree.leaves(state):
    if (hasattr(leaf, "dtype") and np.issubdtype(leaf.dtype, np.inexact) and
        not np.isfinite(np.asarray(leaf)).all()):
      return False
  return True


def open_run(config: ml_collections.ConfigDict, workdir: str, dataset,
             step_config) -> tuple[TrainState, Checkpointer, MetricWriter]:
  """A run's state, resumed from ``workdir``'s newest checkpoint if any.

  Also writes the run's config and data source, forgets an earlier failure
  (training it again is what was asked) and opens the metric writer,
  dropping logged steps after the resumed one.

  Args:
    config: the run's experiment config.
    workdir: its workdir (existing).
    dataset: the run's dataset.
    step_config: its ``StepConfig``.

  Returns:
    ``(state, checkpointer, writer)``; the caller closes the last two.

  Raises:
    IncompatibleResumeError: the workdir's checkpoints are of a different
      experiment.
  """
  state = init_state(config, step_config, dataset.observation_shape)
  checkpointer = Checkpointer(run_dir.checkpoint_dir(workdir),
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
  run_dir.clear_failure(workdir)
  writer = MetricWriter(workdir)
  writer.truncate_after(int(state.step))
  writer.write_text(int(state.step), "data_source", dataset.source)
  return state, checkpointer, writer


@dataclasses.dataclass
class RunRecorder:
  """One run of the engine: what it writes while it trains, its latest host
  state, and the error that stopped it alone, if any.

  Attributes:
    config: the run's experiment config.
    workdir: its workdir.
    checkpointer: its checkpoint manager.
    writer: its metric writer (TensorBoard and the metrics log).
    snapshots: its image writer.
    watch: the objective's training watch (FactorVAE's discriminator), or
      None.
    last_saved: the newest saved step, or None.
    pending: chunk metrics since the last log line.
    still_owned: False once another process took the workdir over; checked
      before every write (``check_owner``).
    state: the newest host copy of its train state.
    error: what stopped this run alone (``NonFiniteLossError``,
      ``RunTakenOver``), or None while it trains.
    pack_size: how many runs train together (for messages).
  """
  config: ml_collections.ConfigDict
  workdir: str
  checkpointer: Checkpointer
  writer: MetricWriter
  snapshots: SnapshotWriter
  watch: Optional[Any]
  last_saved: Optional[int]
  pending: list = dataclasses.field(default_factory=list)
  still_owned: Callable[[str], bool] = always_owned
  state: Optional[TrainState] = None
  error: Optional[BaseException] = None
  pack_size: int = 1

  @classmethod
  def open(cls, config, workdir: str, dataset, step_config,
           still_owned: Callable[[str], bool] = always_owned,
           pack_size: int = 1):
    """``open_run`` plus the image writer and the watch."""
    state, checkpointer, writer = open_run(config, workdir, dataset,
                                           step_config)
    aux = step_config.auxiliary
    watch = (aux.make_watch(config)
             if aux is not None and aux.make_watch is not None else None)
    snapshots = SnapshotWriter(
        dataset.sample_observations(8,
                                    np.random.RandomState(config.eval_seed)),
        workdir)
    return cls(config=config, workdir=workdir, checkpointer=checkpointer,
               writer=writer, snapshots=snapshots, watch=watch,
               last_saved=checkpointer.latest_step(), still_owned=still_owned,
               state=state, pack_size=pack_size)

  @property
  def live(self) -> bool:
    return self.error is None

  def check_owner(self, step: int) -> None:
    """Raises ``RunTakenOver`` if another process took the workdir over."""
    if not self.still_owned(self.workdir):
      raise RunTakenOver(
          f"{self.workdir}: another process took this run over (its sweep "
          f"claim) while this one was at step {step}; stopped without "
          f"writing anything more there.")

  def owned(self, step: int) -> bool:
    """False, with ``error`` set, once another process took the run over."""
    if self.error is None:
      try:
        self.check_owner(step)
      except RunTakenOver as e:
        logging.warning("%s", e)
        self.error = e
    return self.error is None

  def fail(self, problem: str, step: int, unsaved_from: int) -> None:
    """Stops this run as diverged and marks it failed in its workdir now,
    whatever happens next (a signal, another run failing).

    Args:
      problem: what went non-finite, and at which step.
      step: the step it was detected at (recorded).
      unsaved_from: the first step of which nothing may be saved.
    """
    kept = (f"the last good checkpoint is step {self.last_saved} in "
            f"{self.checkpointer.directory}" if self.last_saved is not None
            else "no checkpoint had been saved")
    others = (" The other runs of the pack go on." if self.pack_size > 1
              else "")
    self.error = NonFiniteLossError(
        f"Training diverged at {problem}. Nothing from step {unsaved_from} "
        f"on was saved; {kept}.{others} Lower the learning rates "
        f"(config.optim.*_learning_rate) or the regulariser weight, or "
        f"change config.seed, and run again in a new workdir (or delete the "
        f"checkpoints after {self.last_saved}).")
    logging.error("Run %s: %s", self.workdir, self.error)
    if self.still_owned(self.workdir):
      run_dir.mark_failed(self.workdir,
                          f"NonFiniteLossError: {self.error}", step)
      self.writer.write_text(step, "warnings", str(self.error))

  def _finite_or_fail(self, state: TrainState) -> bool:
    """Whether ``state`` is finite; if not, the run fails here."""
    if all_finite(state):
      return True
    step = int(state.step)
    self.fail(f"step {step}: the parameters or optimiser states became "
              f"NaN/Inf in the chunk's last step (its loss was still "
              f"finite)", step, unsaved_from=step)
    return False

  def save(self, state: TrainState) -> None:
    """Saves ``state``, unless it holds a NaN/Inf (then the run fails)."""
    self.check_owner(int(state.step))
    if self._finite_or_fail(state):
      self._write_checkpoint(state)

  def _write_checkpoint(self, state: TrainState) -> None:
    self.checkpointer.save(state)  # A no-op if that step is saved.
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
    self.state = state
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
    if not self._finite_or_fail(state):
      return  # Nothing of a NaN state is saved or drawn.
    if step % config.checkpoint_every_steps == 0:
      self._write_checkpoint(state)
    if step % config.image_every_steps == 0 or step == config.num_steps:
      pictures = self.snapshots.write(
          TrainedModel(networks, state.vae_params, step), step)
      self.writer.write_images(step, pictures)
