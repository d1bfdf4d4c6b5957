"""The training engine: one loop for a single run and for a pack of runs.

``train_and_evaluate`` (``experiments.run``) trains one run; the sweep's
packed trainer (``packed_loop.train_and_evaluate_packed``) trains several
runs of one model in one program. Both go through ``train_runs``: a single
run is a pack of one whose device program is ``train_steps`` itself, so its
arithmetic is exactly one model's. Dispatch, host-side data, NaN handling,
stop signals and the periodic and final evaluations exist once, here; what
one run writes (logs, checkpoints, images, its failure) is its
``run_recorder.RunRecorder``.

NaN/Inf: a run whose loss goes non-finite, or whose parameters or optimiser
states do (a NaN gradient in a chunk's last step leaves finite losses), is
stopped, marked failed in its workdir at once (``utils.run_dir``) and never
saved past its last good checkpoint; the other runs of a pack go on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Any, Callable, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax.builder import AXIS_NAME, TrainState, build_step_config
from factorvae_jax.builder import run_config
from factorvae_jax.evaluation import evaluate as evaluation
from factorvae_jax.monitoring import ProgressBar
from factorvae_jax.training import packed
from factorvae_jax.training.preemption import StopSignals
from factorvae_jax.training.host_data import HostBatches
from factorvae_jax.training.run_recorder import RunRecorder, always_owned
from factorvae_jax.training.train_step import train_steps, train_steps_on_batches
from factorvae_jax.utils import errors


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
  """Device 0's copy of a replicated tree, on the host.

  Each leaf is read from the buffer of the device that holds its first row.
  Indexing (``x[0]``, what ``flax.jax_utils.unreplicate`` does) would
  compile and run one program per leaf shape, each an all-reduce across
  every device: about 50 compilations at the start of a run and collective
  programs outside the train step. The rows are copied, so a checkpoint
  being written never aliases a buffer the next step is donated.
  """
  return jax.tree.map(_first_row, tree)


def _first_row(x: Any) -> np.ndarray:
  """Row 0 of ``x``, copied to the host from the device that holds it."""
  if isinstance(x, jax.Array):
    x = next(shard.data for shard in x.addressable_shards
             if (shard.index[0].start or 0) == 0)
  return np.array(np.asarray(x)[0])


@dataclasses.dataclass(frozen=True)
class _Program:
  """How the engine's runs advance together on the devices.

  A single run is a pack of one whose program is ``train_steps`` itself
  (so its arithmetic is exactly that of one model); a pack stacks its runs
  on a model axis and runs ``packed.packed_train_steps``.

  Attributes:
    stack: host states of the runs -> the program's state.
    unstack: the program's host state -> one state per run.
    run_metrics: ``(chunk metrics, i)`` -> run ``i``'s metrics.
    make_chunk: ``(num_steps) -> fn(device_state, first_step)``, compiled
      once per chunk length.
    close: releases what the program holds (host data threads).
    description: for the log.
  """
  stack: Callable[[list], TrainState]
  unstack: Callable[[TrainState], list]
  run_metrics: Callable[[dict, int], dict]
  make_chunk: Callable[[int], Callable]
  close: Callable[[], None]
  description: str


def _solo_program(config, dataset, step_config, state) -> _Program:
  local_batch = config.batch_size // jax.local_device_count()
  host_batches = None
  if config.data.get("on_device", True):
    device_arrays = replicate(dataset.device_arrays())
  else:
    # The arrays stay on the host; each chunk's batches are drawn there.
    host_batches = HostBatches(dataset, step_config, config.batch_size,
                               jax.local_device_count(), state.rng)

  def make_chunk(num_steps):
    if host_batches is None:
      fn = jax.pmap(functools.partial(
          train_steps, step_config, dataset.sample_device_batch, local_batch,
          num_steps), axis_name=AXIS_NAME, donate_argnums=(0,))
      return lambda device_state, step: fn(device_state, device_arrays)
    fn = jax.pmap(functools.partial(train_steps_on_batches, step_config,
                                    num_steps),
                  axis_name=AXIS_NAME, donate_argnums=(0,))

    def run(device_state, step):
      batches = host_batches.get(step, num_steps)
      # Drawn on the host while the device runs this chunk.
      host_batches.prefetch(step + num_steps,
                            min(config.steps_per_dispatch,
                                config.num_steps - step - num_steps))
      return fn(device_state, batches)
    return run

  return _Program(
      stack=lambda states: states[0], unstack=lambda state: [state],
      run_metrics=lambda metrics, i: metrics, make_chunk=make_chunk,
      close=host_batches.close if host_batches is not None else lambda: None,
      description="")


def _packed_program(config, dataset, step_config, mode: str,
                    num_runs: int) -> _Program:
  local_batch = config.batch_size // jax.local_device_count()
  device_arrays = replicate(dataset.device_arrays())

  def make_chunk(num_steps):
    fn = jax.pmap(functools.partial(
        packed.packed_train_steps, step_config, dataset.sample_device_batch,
        local_batch, num_steps, mode=mode),
                  axis_name=AXIS_NAME, donate_argnums=(0,))
    return lambda device_states, step: fn(device_states, device_arrays)

  return _Program(
      stack=packed.stack_states, unstack=packed.unstack_states,
      run_metrics=lambda metrics, i: {k: v[i] for k, v in metrics.items()},
      make_chunk=make_chunk, close=lambda: None,
      description=f" of {num_runs} packed runs ({mode})")


def train_and_evaluate(
    config: ml_collections.ConfigDict, workdir: str, *,
    still_owned: Optional[Callable[[str], bool]] = None) -> TrainState:
  """Trains ``config``'s model in ``workdir``, resuming from its checkpoint.

  Writes the run's files into ``workdir`` (``utils.run_dir``): its config
  and data source, checkpoints, the metrics log, TensorBoard events, images
  and, after the final evaluation, its results. A run that diverges is
  marked failed there.

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
    NonFiniteLossError: a loss, parameter or optimiser state became NaN/Inf;
      checkpoints up to the last good step are kept and the run is marked
      failed.
    TrainingInterrupted: a stop signal; the last finished step was saved.
    RunTakenOver: ``still_owned`` returned False.
    ValueError: the config is inconsistent, or differs from the one the
      workdir's checkpoints were trained with.
  """
  with StopSignals() as stop:
    runs = train_runs([config], [workdir], stop, still_owned=still_owned)
  if runs[0].error is not None:
    raise runs[0].error
  return runs[0].state


def train_runs(configs: Sequence[ml_collections.ConfigDict],
               workdirs: Sequence[str], stop: StopSignals, *,
               mode: Optional[str] = None,
               still_owned: Optional[Callable[[str], bool]] = None
               ) -> list[RunRecorder]:
  """The engine: trains and evaluates runs together, each in its workdir.

  One run (``mode=None``) advances with ``train_steps``; several with
  ``packed.packed_train_steps`` in ``mode``. Everything else -- chunk
  dispatch, NaN handling, signals, logging, checkpoints, images, periodic
  and final evaluation -- is this one loop.

  Args:
    configs: experiment configs (equal ``run_config.packing_key`` if more
      than one).
    workdirs: one per config, all at the same step.
    stop: the stop-signal handler in effect.
    mode: the packed form (``packed.PACKED_MODES``, resolved), or None for
      a single run's own program.
    still_owned: as for ``train_and_evaluate``.

  Returns:
    The runs, each with its final state and ``error`` (None if it trained
    and was evaluated).

  Raises:
    TrainingInterrupted: a stop signal; every live run's last finished step
      was saved.
  """
  start_time = time.monotonic()
  workdirs = [os.path.abspath(w) for w in workdirs]
  base = configs[0]
  num_devices = jax.local_device_count()
  for config in configs:
    run_config.validate(config, num_devices)
  dataset = data_lib.make_dataset(base.data)
  logging.info("Data: %s", dataset.source)
  step_config = build_step_config(base, dataset.observation_shape)
  runs = _open_runs(configs, workdirs, dataset, step_config,
                    still_owned or always_owned)
  try:
    if mode is None:
      program = _solo_program(base, dataset, step_config, runs[0].state)
    else:
      program = _packed_program(base, dataset, step_config, mode, len(runs))
    _train(base, runs, dataset, step_config, program, stop, start_time)
    if base.final_eval:
      _evaluate_final(runs, dataset, step_config, stop)
  finally:
    for r in runs:
      r.writer.close()
  return runs


def _open_runs(configs, workdirs, dataset, step_config,
               still_owned) -> list[RunRecorder]:
  """Opens every run; all must be at the same step."""
  runs = []
  try:
    for config, workdir in zip(configs, workdirs):
      os.makedirs(workdir, exist_ok=True)
      runs.append(RunRecorder.open(config, workdir, dataset, step_config,
                                   still_owned, len(configs)))
    steps = sorted({int(r.state.step) for r in runs})
    if len(steps) > 1:
      raise errors.InvalidValueError(
          f"the runs are at different steps ({steps}); a pack advances all "
          f"its runs together, so pack runs at the same step (the sweep "
          f"runner groups them so) or train them one by one.")
  except BaseException:
    for r in runs:
      r.checkpointer.close()
      r.writer.close()
    raise
  return runs


def _train(base, runs: list[RunRecorder], dataset, step_config,
           program: _Program, stop: StopSignals, start_time: float) -> None:
  """Chunks of steps for every run until done or stopped."""
  start_step = int(runs[0].state.step)
  num_steps = base.num_steps
  shown = step_config.objective.progress_metrics
  n = len(runs)
  compiled = {}
  device_state = replicate(program.stack([r.state for r in runs]))
  progress = ProgressBar(num_steps, initial_step=start_step)
  step = start_step
  try:
    while (step < num_steps and not stop.requested and
           any(r.live for r in runs)):
      chunk = min(base.steps_per_dispatch, num_steps - step)
      if chunk not in compiled:
        if step == start_step:
          logging.info("Compiling the train step%s (%d steps per dispatch); "
                       "a stop signal now takes effect after its first run.",
                       program.description, chunk)
        compiled[chunk] = program.make_chunk(chunk)
      # The old state's buffers are donated; a run whose metrics are not
      # finite is failed before anything of its new state is saved.
      device_state, metrics = compiled[chunk](device_state, step)
      metrics = unreplicate(metrics)  # pmean-ed: device 0's copy is all.
      per_run = [program.run_metrics(metrics, i) for i in range(n)]
      for r, own in zip(runs, per_run):
        if not r.live:
          continue
        problem = first_non_finite(own, step)
        if problem is None:
          r.pending.append(own)
        elif r.owned(step):
          # The chunk's first state was finite (it was checked, or its
          # losses were); the ones after it are not kept.
          r.fail(problem, step, unsaved_from=step + 1)
      if step == start_step:
        # Startup cost (data, init, compilation) is what a sweep of short
        # runs pays per model; make it visible.
        what = f"{chunk} steps" if n == 1 else f"{chunk} steps of {n} runs"
        logging.info("First %s done %.1f s after start (data, init and "
                     "compilation included).", what,
                     time.monotonic() - start_time)
      step += chunk
      for r in runs:  # Between chunks: a stall may have lost a run.
        r.owned(step)
      live = [own for r, own in zip(runs, per_run) if r.live]
      progress.update(step, {
          k: float(np.mean([own[k][-1] for own in live]))
          for k in shown if live and k in live[0] and live[0][k].ndim == 1})
      if needs_host(base, step):
        _on_host(base, runs, program.unstack(unreplicate(device_state)),
                 step, progress, step_config, dataset, stop)
    # Finished or stopped: every live run is saved at its last step.
    for r, state in zip(runs, program.unstack(unreplicate(device_state))):
      if r.live and r.owned(step):
        r.state = state
        if int(state.step) > start_step or r.last_saved is not None:
          r.save(state)
  finally:
    progress.close()
    program.close()
    for r in runs:
      r.checkpointer.close()  # Waits for the pending asynchronous saves.
  if stop.requested:
    for r in runs:
      r.writer.flush()
    if n == 1:
      r = runs[0]
      if int(r.state.step) == start_step and r.last_saved is None:
        where = "no step had run, so there is nothing to resume from yet"
      else:
        where = f"the checkpoint is in {r.checkpointer.directory}"
      message = (f"{stop.signal_name}: stopped at step {int(r.state.step)} "
                 f"of {num_steps}; {where}. Run the same command again to "
                 f"resume.")
    else:
      message = (f"{stop.signal_name}: stopped {n} packed runs at step "
                 f"{step} of {num_steps}; their checkpoints are in "
                 f"{', '.join(r.workdir for r in runs)}. Run the same "
                 f"command again to resume.")
    logging.warning(message)
    raise TrainingInterrupted(message)


def _on_host(config, runs: list[RunRecorder], states: list, step: int,
             progress: ProgressBar, step_config, dataset,
             stop: StopSignals) -> None:
  """Per run: log, checkpoint, images and periodic evaluation at ``step``."""
  for r, state in zip(runs, states):
    if r.live and r.owned(step):
      r.record(step, state, step_config.networks,
               progress.steps_per_second())
  if (config.eval_every_steps and step % config.eval_every_steps == 0 and
      not stop.requested):
    live = [r for r in runs if r.live]
    if not live:
      return

    def write(k, results):
      live[k].writer.write_scalars(
          step, numeric_scores(results["scores"], "eval/"))

    try:
      _evaluate(live, dataset, step_config, config.periodic_eval_sizes,
                config.periodic_eval_metrics, stop, write)
    except evaluation.EvaluationInterrupted:
      pass


def _evaluate(runs: list[RunRecorder], dataset, step_config, sizes: str,
              metric_names, stop: StopSignals, on_result) -> None:
  """One evaluation of the runs' latest states, encoded together."""
  evaluation.evaluate_states(
      [r.config for r in runs], step_config.networks.encoder,
      jax.tree.map(lambda *leaves: np.stack(leaves),
                   *[r.state.vae_params["encoder"] for r in runs]),
      dataset, [int(r.state.step) for r in runs], sizes=sizes,
      metric_names=metric_names, should_stop=lambda: stop.requested,
      on_result=on_result)


def _evaluate_final(runs: list[RunRecorder], dataset, step_config,
                    stop: StopSignals) -> None:
  """The final evaluation of every run that trained to the end."""
  live = [r for r in runs if r.live]
  if not live:
    return
  done = []

  def write(k, results):
    r = live[k]
    if not r.owned(results["checkpoint_step"]):
      return
    evaluation.write_results(results, r.workdir)
    r.writer.write_scalars(results["checkpoint_step"],
                           numeric_scores(results["scores"], "final/"))
    table = evaluation.format_table(results)
    if len(runs) == 1:
      print(table)
    else:
      logging.info("%s:\n%s", r.workdir, table)
    done.append(k)

  try:
    _evaluate(live, dataset, step_config, live[0].config.final_eval_sizes,
              live[0].config.final_eval_metrics, stop, write)
  except evaluation.EvaluationInterrupted:
    left = [r for k, r in enumerate(live) if k not in done]
    raise TrainingInterrupted(
        f"{stop.signal_name}: stopped the final evaluation of "
        f"{', '.join(r.workdir for r in left)}. Training is complete and "
        f"saved (step {int(left[0].state.step)}); run the same command "
        f"again, or evaluate with python -m experiments.evaluate "
        f"--workdir={left[0].workdir}") from None
