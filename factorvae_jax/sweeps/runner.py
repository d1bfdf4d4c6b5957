"""Trains one task's share of a sweep: skip finished runs, resume partial
ones, claim each run before training it.

Training goes through one function, ``train_group(runs, sweep_dir)``, which
gets a group of claimed runs. The default, :func:`train_one_by_one`, trains
them in turn with ``train_and_evaluate`` (groups of one). A trainer that
packs several models into one program takes the same arguments; pass it with
``runs_per_group > 1`` and :func:`run_share` hands it groups of up to that
many runs with the same :func:`group_key`. When it returns, a run is done
if its ``results.json`` exists and failed otherwise (a trainer may call
``status.mark_failed`` for one run of a group and go on with the others);
when it raises, every run of the group is marked failed. On a stop signal it
must checkpoint its runs and raise ``KeyboardInterrupt`` (as
``TrainingInterrupted`` is).

A run whose claim another process took over while it trained (this one
stalled past the claim timeout) is left to that process: nothing more is
written into its workdir (the trainers here stop it between chunks, see
``claims.may_write``) and the summary lists it as taken over.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable, Sequence

from absl import logging

from factorvae_jax.builder import run_config
from factorvae_jax.sweeps import claims
from factorvae_jax.sweeps import sharding
from factorvae_jax.sweeps import status as status_lib
from factorvae_jax.sweeps.definition import Run
from factorvae_jax.utils import run_dir

TrainGroupFn = Callable[[Sequence[Run], str], None]


def train_one_by_one(runs: Sequence[Run], sweep_dir: str) -> None:
  """Trains ``runs`` in turn, each in its workdir, resuming as a single run.

  Args:
    runs: claimed runs of the sweep.
    sweep_dir: the sweep dir (workdirs are ``run.workdir(sweep_dir)``).
  """
  # Imported here: the training stack (data, models, objectives) is only
  # needed to train, not to list or aggregate a sweep.
  from factorvae_jax.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
  from factorvae_jax.training.run_recorder import RunTakenOver  # pylint: disable=g-import-not-at-top
  for run in runs:
    try:
      train_and_evaluate(run.config, run.workdir(sweep_dir),
                         still_owned=claims.may_write)
    except RunTakenOver as e:
      # The other process trains it now; go on with this task's others.
      logging.warning("%s", e)


def make_packed_trainer(mode: str = "auto") -> TrainGroupFn:
  """A ``train_group`` that trains its runs packed in one program.

  The runs of a group (``group_key``-equal) are split by the step they are
  at -- a pack advances its runs together, and after a preemption some may
  have checkpoints and others not -- and each part of two or more runs is
  trained with ``train_and_evaluate_packed``; a part of one run trains
  alone. A run that diverges is marked failed and the others go on.

  Args:
    mode: how models are packed, one of ``training.packed.PACKED_MODES``.

  Returns:
    The trainer, for ``run_share(train_group=..., runs_per_group=N)``.
  """

  def train_packed(runs: Sequence[Run], sweep_dir: str) -> None:
    # Imported here, as in train_one_by_one.
    from factorvae_jax.training.loop import train_and_evaluate  # pylint: disable=g-import-not-at-top
    from factorvae_jax.training.packed_loop import train_and_evaluate_packed  # pylint: disable=g-import-not-at-top
    by_step: dict[int, list[Run]] = {}
    for run in runs:
      step = run_dir.latest_checkpoint_step(run.workdir(sweep_dir)) or 0
      by_step.setdefault(step, []).append(run)
    for _, part in sorted(by_step.items()):
      if len(part) == 1 or not part[0].config.data.get("on_device", True):
        # One run, or host-side data (drawn per run): one by one.
        errors = [_train_alone(train_and_evaluate, run, sweep_dir)
                  for run in part]
      else:
        logging.info("Training %d runs packed (%s): %s", len(part), mode,
                     ", ".join(r.name for r in part))
        errors = train_and_evaluate_packed(
            [r.config for r in part], [r.workdir(sweep_dir) for r in part],
            mode=mode, still_owned=claims.may_write)
      for run, error in zip(part, errors):
        # A run taken over by another process is that process's now.
        if error is not None and claims.may_write(run.workdir(sweep_dir)):
          status_lib.mark_failed(run.workdir(sweep_dir), error)

  return train_packed


def _train_alone(train_and_evaluate, run: Run,
                 sweep_dir: str) -> Exception | None:
  """Trains one run of a packed group; its failure is returned, not raised,
  so the group's other runs still train."""
  from factorvae_jax.training.run_recorder import RunTakenOver  # pylint: disable=g-import-not-at-top
  try:
    train_and_evaluate(run.config, run.workdir(sweep_dir),
                       still_owned=claims.may_write)
  except RunTakenOver as e:
    logging.warning("%s", e)  # Not a failure: the other process trains it.
    return e
  except Exception as e:  # pylint: disable=broad-except
    logging.exception("Run %s failed", run.name)
    return e
  return None


def enable_compilation_cache(directory: str) -> None:
  """Keeps XLA's compiled programs in ``directory`` for every later run.

  All runs of one model compile the same programs (the seed and the swept
  weights are arguments, not constants), and a short run spends most of its
  time compiling; with the cache only the first run of each model on each
  kind of machine compiles. Tasks sharing the sweep dir share the cache.
  A cache directory the user already set (``JAX_COMPILATION_CACHE_DIR``)
  wins.

  Args:
    directory: where the cache lives (created if missing).
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.config.jax_compilation_cache_dir:
    return
  os.makedirs(directory, exist_ok=True)
  jax.config.update("jax_compilation_cache_dir", directory)


def group_key(run: Run) -> str:
  """Runs with equal keys may share a packed program: configs equal but for
  the seed and the objective's hyperparameters (``run_config.packing_key``)."""
  return run_config.packing_key(run.config)


@dataclasses.dataclass
class ShareSummary:
  """What :func:`run_share` did, by run name."""
  trained: list[str] = dataclasses.field(default_factory=list)
  already_done: list[str] = dataclasses.field(default_factory=list)
  failed: list[str] = dataclasses.field(default_factory=list)
  skipped_failed: list[str] = dataclasses.field(default_factory=list)
  claimed_elsewhere: list[str] = dataclasses.field(default_factory=list)
  taken_over: list[str] = dataclasses.field(default_factory=list)

  def __str__(self) -> str:
    parts = [f"{len(self.trained)} trained",
             f"{len(self.already_done)} already done"]
    if self.failed:
      parts.append(f"{len(self.failed)} failed ({', '.join(self.failed)})")
    if self.skipped_failed:
      parts.append(f"{len(self.skipped_failed)} failed earlier, skipped "
                   f"(--retry_failed retries them)")
    if self.claimed_elsewhere:
      parts.append(f"{len(self.claimed_elsewhere)} being trained by another "
                   f"process ({', '.join(self.claimed_elsewhere[:3])}"
                   f"{', ...' if len(self.claimed_elsewhere) > 3 else ''})")
    if self.taken_over:
      parts.append(f"{len(self.taken_over)} taken over by another process "
                   f"while this one stalled, left to it "
                   f"({', '.join(self.taken_over)})")
    return "; ".join(parts)


class _Unclaimed:
  """Stands for a claim with ``claims=False``: the scheduler guarantees one
  live instance per task, so the run is this task's alone."""

  def held(self) -> bool:
    return True

  def release(self) -> None:
    pass


def _train_group(group: list[tuple[Run, claims.Claim]], sweep_dir: str,
                 train_group: TrainGroupFn, summary: ShareSummary,
                 task_index: int) -> None:
  """Trains a group of claimed runs, logs the outcome, releases the claims.

  Nothing is written into the workdir of a run whose claim was taken over
  (checked after training): it is listed in ``summary.taken_over``.
  """
  runs = [run for run, _ in group]

  def held(runs_and_claims):
    """The runs still ours; the others are recorded as taken over."""
    kept = []
    for run, claim in runs_and_claims:
      if claim.held():
        kept.append(run)
      else:
        logging.warning(
            "Run %d %s was taken over by another process while this one "
            "stalled; this process stopped it and wrote nothing more into "
            "%s.", run.index, run.name, run.workdir(sweep_dir))
        summary.taken_over.append(run.name)
    return kept

  try:
    for run in runs:
      workdir = run.workdir(sweep_dir)
      run_dir.clear_failure(workdir)
      step = run_dir.latest_checkpoint_step(workdir)
      run_dir.log_event(workdir, "start", step=step or 0, task=task_index)
      logging.info("Run %d %s: %s", run.index, run.name,
                   f"resuming from step {step}" if step else "starting")
    try:
      train_group(runs, sweep_dir)
    except KeyboardInterrupt:
      for run in held(group):
        workdir = run.workdir(sweep_dir)
        run_dir.log_event(
            workdir, "interrupted",
            step=run_dir.latest_checkpoint_step(workdir))
      raise
    except Exception as e:  # pylint: disable=broad-except
      # One diverged or misconfigured run must not stop the other runs.
      logging.exception("Run(s) %s failed", [r.name for r in runs])
      for run in held(group):
        workdir = run.workdir(sweep_dir)
        status_lib.mark_failed(workdir, e)
        run_dir.log_event(workdir, "failed", error=str(e))
        summary.failed.append(run.name)
      return
    for run in held(group):
      # A packed trainer may mark single runs failed (status.mark_failed)
      # and still train the others.
      workdir = run.workdir(sweep_dir)
      run_status = status_lib.run_status(workdir)
      if run_status.state in (status_lib.NEW, status_lib.PARTIAL):
        status_lib.mark_failed(workdir, RuntimeError(
            f"training returned without writing {run_dir.RESULTS}"))
        run_status = status_lib.run_status(workdir)
      if run_status.state == status_lib.DONE:
        run_dir.log_event(workdir, "done", step=run_status.step)
        summary.trained.append(run.name)
      else:
        run_dir.log_event(workdir, "failed", error=run_status.error)
        summary.failed.append(run.name)
  finally:
    for _, claim in group:
      claim.release()


def run_share(runs: Sequence[Run], sweep_dir: str, task_index: int = 0,
              num_tasks: int = 1, *,
              train_group: TrainGroupFn = train_one_by_one,
              runs_per_group: int = 1, retry_failed: bool = False,
              claim_timeout_s: float = 600.0, heartbeat_s: float = 30.0,
              should_stop: Callable[[], bool] = lambda: False,
              use_claims: bool = True,
              wait_for_claimed: bool = False) -> ShareSummary:
  """Trains the runs of task ``task_index`` of ``num_tasks``.

  Finished runs are skipped, partial ones resume from their newest
  checkpoint, and runs claimed by a live process are left to it.

  Args:
    runs: the expanded sweep (all tasks' runs).
    sweep_dir: the sweep dir.
    task_index: this task, in [0, num_tasks).
    num_tasks: how many tasks share the sweep.
    train_group: trains a group of claimed runs (see module docstring).
    runs_per_group: the most runs handed to ``train_group`` at once.
    retry_failed: train runs whose last attempt failed again.
    claim_timeout_s: a claim without heartbeat for this long is stale.
    heartbeat_s: how often held claims are refreshed.
    should_stop: polled before each run is claimed; True stops the share
      there (e.g. ``StopSignals.requested`` of the caller, for signals that
      arrive between runs).
    use_claims: claim each run before training it (the default). False
      only where the scheduler runs at most one live instance of each task
      index (a Slurm job array, a Kubernetes Indexed Job) and nothing else
      trains in ``sweep_dir``: the share is then this task's alone, and a
      sweep dir without hard links works (docs/sweeps.md, "Claims").
    wait_for_claimed: when runs of the share are claimed by other
      processes, look again every ``heartbeat_s`` until each is done or its
      claim turns stale and is taken over (its holder died, e.g. on a lost
      node), so the share is finished when this returns. Without it they
      are listed in ``claimed_elsewhere`` and left.

  Returns:
    A :class:`ShareSummary`.

  Raises:
    KeyboardInterrupt: (or ``TrainingInterrupted``) training was stopped; the
      runs being trained were checkpointed and their claims released, so a
      re-run resumes them.
    claims.NoHardLinksError: claims are on and the sweep dir's file system
      has no hard links.
  """
  if runs_per_group < 1:
    raise ValueError(f"runs_per_group={runs_per_group} must be at least 1.")
  summary = ShareSummary()
  group: list[tuple[Run, claims.Claim]] = []
  to_visit = list(sharding.shard(runs, task_index, num_tasks))
  try:
    while True:
      elsewhere = _visit(to_visit, group, sweep_dir, task_index, summary,
                         train_group, runs_per_group, retry_failed,
                         claim_timeout_s, heartbeat_s, should_stop,
                         use_claims)
      if not elsewhere or not wait_for_claimed:
        summary.claimed_elsewhere.extend(run.name for run in elsewhere)
        return summary
      # Another process holds them: live, or dead and not yet stale (its
      # machine was lost). Look again until each is done or taken over.
      logging.info("Waiting for %d run(s) claimed by other processes: %s",
                   len(elsewhere), ", ".join(r.name for r in elsewhere))
      deadline = time.monotonic() + heartbeat_s
      while time.monotonic() < deadline:
        if should_stop():
          raise KeyboardInterrupt("stop requested while waiting for runs "
                                  "claimed by other processes")
        time.sleep(min(1.0, heartbeat_s))
      to_visit = elsewhere
  finally:
    # Claims gathered for a group that never started (an interrupt).
    for _, claim in group:
      claim.release()


def _visit(to_visit, group, sweep_dir, task_index, summary, train_group,
           runs_per_group, retry_failed, claim_timeout_s, heartbeat_s,
           should_stop, use_claims) -> list[Run]:
  """One pass of :func:`run_share` over ``to_visit``: trains what it can
  claim, in groups gathered in ``group``; returns the runs other processes
  hold."""
  elsewhere = []
  for run in to_visit:
    if should_stop():
      raise KeyboardInterrupt("stop requested between runs")
    workdir = run.workdir(sweep_dir)
    state = status_lib.run_status(workdir).state
    if state == status_lib.DONE:
      summary.already_done.append(run.name)
      continue
    if state == status_lib.FAILED and not retry_failed:
      summary.skipped_failed.append(run.name)
      continue
    # Train the group gathered so far before claiming a run it cannot
    # join: a claim taken now would be held, heartbeat and all, while the
    # group trains, and an interrupt there would leak it.
    if group and group_key(group[0][0]) != group_key(run):
      pending = list(group)
      group.clear()
      _train_group(pending, sweep_dir, train_group, summary, task_index)
      if should_stop():
        raise KeyboardInterrupt("stop requested between runs")
    if use_claims:
      claim = claims.try_claim(workdir, claim_timeout_s, heartbeat_s,
                               task=task_index)
    else:
      claim = _Unclaimed()
    if claim is None:
      elsewhere.append(run)
      continue
    group.append((run, claim))
    # Another process may have finished it between the look and the claim.
    if status_lib.run_status(workdir).state == status_lib.DONE:
      group.pop()
      claim.release()
      summary.already_done.append(run.name)
      continue
    if len(group) == runs_per_group:
      pending = list(group)
      group.clear()
      _train_group(pending, sweep_dir, train_group, summary, task_index)
  if group:
    pending = list(group)
    group.clear()
    _train_group(pending, sweep_dir, train_group, summary, task_index)
  return elsewhere
