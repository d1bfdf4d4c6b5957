"""Orbax checkpoints of the train state in ``<workdir>/checkpoints``."""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp

from factorvae_jax.builder.state import TrainState
from factorvae_jax.utils import errors


class Checkpointer:
  """Saves and restores ``TrainState`` (host copies, not device replicas).

  Orbax writes each checkpoint into a temporary folder and renames it when
  complete, so a run killed mid-save leaves the previous checkpoints intact
  and the partial one is ignored (and cleaned up) on the next start.

  Args:
    directory: where the step folders go.
    max_to_keep: how many of the newest checkpoints to keep.
  """

  def __init__(self, directory: str, max_to_keep: int):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True,
            cleanup_tmp_directories=True))

  def latest_step(self) -> Optional[int]:
    """The newest complete checkpoint's step, or None if there is none."""
    return self._manager.latest_step()

  def save(self, state: TrainState) -> None:
    """Saves ``state`` (asynchronously) under its step; a no-op if present."""
    step = int(jax.device_get(state.step))
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, template: TrainState,
              step: Optional[int] = None) -> TrainState:
    """Restores the checkpoint at ``step`` (default: latest) into ``template``'s
    structure.

    Raises:
      FileNotFoundError: if there is no checkpoint.
    """
    step = self._resolve_step(step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def _resolve_step(self, step: Optional[int]) -> int:
    step = self.latest_step() if step is None else step
    if step is None:
      raise errors.NothingToDoError(f"no checkpoint in {self.directory}")
    return step

  def restore_part(self, template: Any, step: Optional[int] = None) -> Any:
    """Restores only the parts of a saved train state that ``template`` has.

    Args:
      template: a nested dict with the train state's field names as keys,
        e.g. ``{'vae_params': {'encoder': params}}``; only its leaves are read
        from disk.
      step: checkpoint step (default: latest).

    Returns:
      ``template``'s structure filled with the saved values.

    Raises:
      FileNotFoundError: if there is no checkpoint.
    """
    step = self._resolve_step(step)
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    return self._manager.restore(step, args=ocp.args.PyTreeRestore(
        item=abstract, partial_restore=True))

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
