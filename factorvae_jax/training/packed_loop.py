"""``train_and_evaluate_packed``: several runs trained in one program.

The runs of a sweep that differ only in their seed and the objective's
hyperparameters (``run_config.packing_key``) train together: their states
are stacked on a model axis and ``packed.packed_train_steps`` advances all
of them per dispatch, under the same ``pmap`` over devices as a single run.
The loop is the single run's (``loop.train_runs``), so everything a run
writes is per run and exactly what ``train_and_evaluate`` writes in its
workdir; each run resumes, evaluates and reports as a single run (and may be
resumed by ``train_and_evaluate`` alone, or packed with other runs).

A run that diverges is marked failed in its workdir at once and dropped
from the pack (its last good checkpoint is kept, as for a single run); the
others go on. A stop signal checkpoints every live run of the pack and
raises ``TrainingInterrupted``.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence

import ml_collections

from factorvae_jax.builder import run_config
from factorvae_jax.training import loop
from factorvae_jax.training import packed
from factorvae_jax.training.preemption import StopSignals
from factorvae_jax.utils import errors


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
    Per run, None if it trained and was evaluated (its results written),
    or the error that stopped it alone (``run_recorder.NonFiniteLossError``,
    ``run_recorder.RunTakenOver``).

  Raises:
    loop.TrainingInterrupted: a stop signal; every run's last finished step
      was saved.
    ValueError: the configs cannot be packed, differ from their workdirs'
      checkpoints, or the workdirs are at different steps.
  """
  configs, workdirs = list(configs), [os.path.abspath(w) for w in workdirs]
  if not configs or len(configs) != len(workdirs):
    raise errors.InvalidValueError(
        f"need one workdir per config; got {len(configs)} configs and "
        f"{len(workdirs)} workdirs.")
  if len(set(workdirs)) != len(workdirs):
    raise errors.InvalidValueError(
        f"workdirs repeat: {workdirs}; give each run its own.")
  keys = [run_config.packing_key(c) for c in configs]
  for i, key in enumerate(keys[1:], 1):
    if key != keys[0]:
      raise errors.InvalidValueError(
          f"run {i} ({workdirs[i]}) cannot be packed with run 0 "
          f"({workdirs[0]}): their configs differ in more than the seed and "
          f"the objective's hyperparameters. Train them in separate packs.")
  if not configs[0].data.get("on_device", True):
    raise errors.InvalidValueError(
        "packed training draws every model's batches on the device, but "
        "config.data.on_device=False keeps the data on the host; train these "
        "runs one by one (experiments.sweep --runs_per_group=1).")
  mode = packed.resolve_mode(mode)
  with StopSignals() as stop:
    runs = loop.train_runs(configs, workdirs, stop, mode=mode,
                           still_owned=still_owned)
  return [r.error for r in runs]
