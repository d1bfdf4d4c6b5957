"""``train_and_evaluate_packed``: several runs trained in one program.

The runs of a sweep that differ only in their seed and the objective's
hyperparameters (``run_config.packing_key``) train together: their states
are stacked on a model axis and ``packed.packed_train_steps`` advances all
of them per dispatch, under the same ``pmap`` over devices as a single run.
Everything a run writes is per run and exactly what ``train_and_evaluate``
writes in its workdir -- ``config.json``, checkpoints, ``metrics.jsonl``,
TensorBoard events, images and ``results.json`` -- so each run resumes,
evaluates and reports as a single run (and may be resumed by
``train_and_evaluate`` alone, or packed with other runs).

A run whose loss becomes NaN/Inf is dropped from the pack's outputs (its
last good checkpoint is kept, as for a single run) and the others go on.
A stop signal checkpoints every run of the pack and raises
``TrainingInterrupted``.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable, Optional, Sequence

from absl import logging
import jax
import ml_collections
import numpy as np

from factorvae_jax import data as data_lib
from factorvae_jax.builder import AXIS_NAME, TrainState, build_step_config
from factorvae_jax.builder import run_config
from factorvae_jax.evaluation import evaluate as evaluation
from factorvae_jax.monitoring import ProgressBar
from factorvae_jax.training import loop
from factorvae_jax.training import packed
from factorvae_jax.training.preemption import StopSignals


@dataclasses.dataclass
class _Run(loop.RunRecorder):
  """One run of the pack: what it writes, its latest state, and the error
  that stopped it alone (a NaN), if any."""
  state: Optional[TrainState] = None
  error: Optional[BaseException] = None


def train_and_evaluate_packed(
    configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str], *,
    mode: str = "auto",
    still_owned: Optional[Callable[[str], bool]] = None
) -> list[Optional[BaseException]]:
  """Trains ``configs[i]`` in ``workdirs[i]`` for all i, packed in one program.

  Args:
    configs: experiment configs with equal ``run_config.packing_key`` (the
      same model but for seed and the objective's hyperparameters).
    workdirs: one workdir per config; each is resumed from its checkpoint.
      All must be at the same step (new, or checkpointed together).
    mode: how the models are packed (``packed.PACKED_MODES``).
    still_owned: as for ``loop.train_and_evaluate``, per workdir: a run
      whose workdir was taken over stops alone, with nothing more written.

  Returns:
    Per run, None if it trained and was evaluated (``results.json`` written),
    or the error that stopped it alone (``loop.NonFiniteLossError``,
    ``loop.RunTakenOver``).

  Raises:
    loop.TrainingInterrupted: a stop signal; every run's last finished step
      was saved.
    ValueError: the configs cannot be packed, differ from their workdirs'
      checkpoints, or the workdirs are at different steps.
  """
  configs, workdirs = list(configs), [os.path.abspath(w) for w in workdirs]
  if not configs or len(configs) != len(workdirs):
    raise ValueError(f"need one workdir per config; got {len(configs)} "
                     f"configs and {len(workdirs)} workdirs.")
  if len(set(workdirs)) != len(workdirs):
    raise ValueError(f"workdirs repeat: {workdirs}; give each run its own.")
  keys = [run_config.packing_key(c) for c in configs]
  for i, key in enumerate(keys[1:], 1):
    if key != keys[0]:
      raise ValueError(
          f"run {i} ({workdirs[i]}) cannot be packed with run 0 "
          f"({workdirs[0]}): their configs differ in more than the seed and "
          f"the objective's hyperparameters. Train them in separate packs.")
  if not configs[0].data.get("on_device", True):
    raise ValueError(
        "packed training draws every model's batches on the device, but "
        "config.data.on_device=False keeps the data on the host; train these "
        "runs one by one (experiments.sweep --runs_per_group=1).")
  with StopSignals() as stop:
    return _train_packed(configs, workdirs, packed.resolve_mode(mode), stop,
                         still_owned or (lambda workdir: True))


def _open_runs(configs, workdirs, dataset, step_config,
               still_owned) -> list[_Run]:
  runs = []
  try:
    return _open_each(configs, workdirs, dataset, step_config, runs,
                      still_owned)
  except BaseException:
    for r in runs:  # Those opened before the one that failed.
      r.checkpointer.close()
      r.writer.close()
    raise


def _open_each(configs, workdirs, dataset, step_config,
               runs: list[_Run], still_owned) -> list[_Run]:
  """Opens every run into ``runs``; all must be at the same step."""
  for config, workdir in zip(configs, workdirs):
    os.makedirs(workdir, exist_ok=True)
    state, run = _Run.open(config, workdir, dataset, step_config,
                           still_owned)
    run.state = state
    runs.append(run)
  steps = sorted({int(r.state.step) for r in runs})
  if len(steps) > 1:
    raise ValueError(
        f"the runs are at different steps ({steps}); a pack advances all its "
        f"runs together, so pack runs at the same step (the sweep runner "
        f"groups them so) or train them one by one.")
  return runs


def _train_packed(configs, workdirs, mode: str, stop: StopSignals,
                  still_owned) -> list[Optional[BaseException]]:
  start_time = time.monotonic()
  base = configs[0]
  num_devices = jax.local_device_count()
  for config in configs:
    run_config.validate(config, num_devices)
  dataset = data_lib.make_dataset(base.data)
  logging.info("Data: %s", dataset.source)
  step_config = build_step_config(base, dataset.observation_shape)
  runs = _open_runs(configs, workdirs, dataset, step_config, still_owned)
  try:
    _train(base, runs, dataset, step_config, mode, stop, start_time)
    if base.final_eval:
      _evaluate_final(runs, dataset, step_config, stop)
  finally:
    for r in runs:
      r.writer.close()
  return [r.error for r in runs]


def _train(base, runs: list[_Run], dataset, step_config, mode: str,
           stop: StopSignals, start_time: float) -> None:
  """Chunks of steps for every run of the pack until done or stopped."""
  start_step = int(runs[0].state.step)
  num_steps = base.num_steps
  local_batch = base.batch_size // jax.local_device_count()
  shown = step_config.objective.progress_metrics
  compiled = {}

  def run_chunk(chunk, states, arrays):
    if chunk not in compiled:
      compiled[chunk] = jax.pmap(
          functools.partial(packed.packed_train_steps, step_config,
                            dataset.sample_device_batch, local_batch, chunk,
                            mode=mode),
          axis_name=AXIS_NAME, donate_argnums=(0,))
    return compiled[chunk](states, arrays)

  device_arrays = loop.replicate(dataset.device_arrays())
  device_states = loop.replicate(packed.stack_states([r.state for r in runs]))
  progress = ProgressBar(num_steps, initial_step=start_step)
  step = start_step
  try:
    while (step < num_steps and not stop.requested and
           any(r.error is None for r in runs)):
      chunk = min(base.steps_per_dispatch, num_steps - step)
      if step == start_step:
        logging.info("Compiling the train step of %d packed runs (%s, %d "
                     "steps per dispatch); a stop signal now takes effect "
                     "after its first run.", len(runs), mode, chunk)
      device_states, metrics = run_chunk(chunk, device_states, device_arrays)
      metrics = loop.unreplicate(metrics)  # Each [num_runs, chunk, ...].
      for i, r in enumerate(runs):
        if r.error is not None:
          continue
        own = {k: np.asarray(v[i]) for k, v in metrics.items()}
        problem = loop.first_non_finite(own, step)
        if problem is None:
          r.pending.append(own)
          continue
        kept = (f"the last good checkpoint is step {r.last_saved} in "
                f"{r.checkpointer.directory}" if r.last_saved is not None
                else "no checkpoint had been saved")
        r.error = loop.NonFiniteLossError(
            f"Training diverged at {problem}. Nothing after step {step} was "
            f"saved; {kept}. The other runs of the pack go on. Lower the "
            f"learning rates or the regulariser weight, or change "
            f"config.seed.")
        logging.error("Run %s: %s", r.workdir, r.error)
        r.writer.write_text(step, "warnings", str(r.error))
      if step == start_step:
        logging.info("First %d steps of %d runs done %.1f s after start "
                     "(data, init and compilation included).", chunk,
                     len(runs), time.monotonic() - start_time)
      step += chunk
      for r in runs:  # Between chunks: a stalled pack may have lost a run.
        _check_owner(r, step)
      live = [i for i, r in enumerate(runs) if r.error is None]
      progress.update(step, {
          k: float(np.mean([metrics[k][i][-1] for i in live]))
          for k, v in metrics.items() if v.ndim == 2 and k in shown and live})
      if loop.needs_host(base, step):
        _on_host(base, runs, loop.unreplicate(device_states), step, progress,
                 step_config, dataset, stop)
    # Finished or stopped: every live run is saved at its last step.
    host = packed.unstack_states(loop.unreplicate(device_states))
    for r, state in zip(runs, host):
      r.state = state
      if r.error is None and (int(state.step) > start_step or
                              r.last_saved is not None):
        if r.last_saved != int(state.step) and _check_owner(r, step):
          r.save(state)
  finally:
    progress.close()
    for r in runs:
      r.checkpointer.close()  # Waits for the pending asynchronous saves.
  if stop.requested:
    for r in runs:
      r.writer.flush()
    message = (f"{stop.signal_name}: stopped {len(runs)} packed runs at step "
               f"{step} of {num_steps}; their checkpoints are in "
               f"{', '.join(r.workdir for r in runs)}. Run the same command "
               f"again to resume.")
    logging.warning(message)
    raise loop.TrainingInterrupted(message)


def _check_owner(r: _Run, step: int) -> bool:
  """False, with ``r.error`` set, once another process took ``r`` over."""
  if r.error is None:
    try:
      r.check_owner(step)
    except loop.RunTakenOver as e:
      logging.warning("%s", e)
      r.error = e
  return r.error is None


def _on_host(config, runs: list[_Run], states: TrainState, step: int,
             progress: ProgressBar, step_config, dataset,
             stop: StopSignals) -> None:
  """Per run: log, checkpoint, images and periodic evaluation at ``step``."""
  for r, state in zip(runs, packed.unstack_states(states)):
    if _check_owner(r, step):
      r.state = state
      r.record(step, state, step_config.networks,
               progress.steps_per_second())
  if (config.eval_every_steps and step % config.eval_every_steps == 0 and
      not stop.requested):
    live = [i for i, r in enumerate(runs) if r.error is None]
    if not live:
      return

    def write(k, results):
      runs[live[k]].writer.write_scalars(
          step, loop.numeric_scores(results["scores"], "eval/"))

    try:
      evaluation.evaluate_states(
          [runs[i].config for i in live], step_config.networks.encoder,
          jax.tree.map(lambda a: a[np.asarray(live)],
                       states.vae_params["encoder"]),
          dataset, [step] * len(live), sizes=config.periodic_eval_sizes,
          metric_names=config.periodic_eval_metrics,
          should_stop=lambda: stop.requested, on_result=write)
    except evaluation.EvaluationInterrupted:
      pass


def _evaluate_final(runs: list[_Run], dataset, step_config,
                    stop: StopSignals) -> None:
  """The final evaluation of every run that trained to the end, encoded
  together (``evaluation.evaluate_states``)."""
  live = [r for r in runs if r.error is None]
  if not live:
    return
  done = []

  def write(k, results):
    r = live[k]
    if not _check_owner(r, results["checkpoint_step"]):
      return
    evaluation.write_results(results, r.workdir)
    r.writer.write_scalars(results["checkpoint_step"],
                           loop.numeric_scores(results["scores"], "final/"))
    logging.info("%s:\n%s", r.workdir, evaluation.format_table(results))
    done.append(k)

  try:
    evaluation.evaluate_states(
        [r.config for r in live], step_config.networks.encoder,
        jax.tree.map(lambda *leaves: np.stack(leaves),
                     *[r.state.vae_params["encoder"] for r in live]),
        dataset, [int(r.state.step) for r in live],
        sizes=live[0].config.final_eval_sizes,
        metric_names=live[0].config.final_eval_metrics,
        should_stop=lambda: stop.requested, on_result=write)
  except evaluation.EvaluationInterrupted:
    left = [r for k, r in enumerate(live) if k not in done]
    raise loop.TrainingInterrupted(
        f"{stop.signal_name}: stopped the final evaluation of "
        f"{', '.join(r.workdir for r in left)}. Training is complete and "
        f"saved (step {int(left[0].state.step)}); run the same command "
        f"again, or evaluate each with python -m experiments.evaluate "
        f"--workdir=WORKDIR") from None
