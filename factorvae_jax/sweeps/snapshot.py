"""The sweep dir's ``sweep.json``: the definition a sweep was started with.

A run's name is its workdir, so a sweep file edited between two launches
could silently send a different experiment into a half-trained workdir, or
shift which runs a task index gets. Every launch compares the definition
with the snapshot and refuses a change unless told it is intended.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Sequence

from factorvae_jax.sweeps import definition
from factorvae_jax.builder import run_config
from factorvae_jax.utils import errors
from factorvae_jax.utils.files import write_json_atomically

SNAPSHOT_FILE = "sweep.json"


class SweepChangedError(errors.UserError, ValueError):
  """The sweep definition differs from the one the sweep dir was started with."""


def snapshot_path(sweep_dir: str) -> str:
  return os.path.join(sweep_dir, SNAPSHOT_FILE)


def read_snapshot(sweep_dir: str) -> Optional[dict]:
  """The stored snapshot, or None if the sweep dir has none yet.

  Raises:
    ValueError: naming the file, if it is not valid JSON.
  """
  path = snapshot_path(sweep_dir)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      return json.load(f)
  except json.JSONDecodeError as e:
    raise errors.BadFileError(
        f"{path} is not valid JSON ({e}); restore it, or delete it to "
        f"re-create it from the sweep file.") from e


def _describe_changes(old: dict, new: dict) -> tuple[list[str], list[str]]:
  """(changes that would corrupt a run, changes a re-launch may accept)."""
  old_runs = {r["name"]: r for r in old["runs"]}
  new_runs = {r["name"]: r for r in new["runs"]}
  fatal, acceptable = [], []
  added = [n for n in new_runs if n not in old_runs]
  removed = [n for n in old_runs if n not in new_runs]
  if added:
    acceptable.append(f"{len(added)} run(s) added (e.g. {added[0]})")
  if removed:
    acceptable.append(f"{len(removed)} run(s) removed (e.g. {removed[0]})")
  for name in new_runs:
    if name not in old_runs:
      continue
    old_config = run_config.flatten(old_runs[name]["config"])
    new_config = run_config.flatten(new_runs[name]["config"])
    # A key on one side only is a config field the code added or dropped
    # since the snapshot, not an edit of the sweep; training still refuses
    # to resume a checkpoint whose settings differ (run_config).
    keys = sorted(k for k in set(old_config) & set(new_config)
                  if old_config[k] != new_config[k])
    if not keys:
      continue
    text = f"{name}: " + "; ".join(
        f"{k} {old_config.get(k)!r} -> {new_config.get(k)!r}"
        for k in keys[:3])
    if any(k not in run_config.RESUMABLE_CHANGES for k in keys):
      fatal.append(text)
    else:
      acceptable.append(text)
  if not fatal and not acceptable and [r["name"] for r in old["runs"]] != [
      r["name"] for r in new["runs"]]:
    acceptable.append("the runs are in a different order (task shares "
                      "change)")
  return fatal, acceptable


def check_and_write(sweep_dir: str, spec: str,
                    runs: Sequence[definition.Run],
                    update: bool = False, write: bool = True) -> None:
  """Compares ``runs`` with the sweep dir's snapshot, then stores them.

  Args:
    sweep_dir: the sweep dir.
    spec: the ``--sweep`` value (recorded for the error messages).
    runs: the expanded sweep.
    update: accept added or removed runs and changes of settings that a
      resumed run may change (``run_config.RESUMABLE_CHANGES``, e.g.
      ``num_steps``), and store the new definition.
    write: store the snapshot when there is none or it was updated (False:
      only check, as ``--list`` does).

  Raises:
    SweepChangedError: listing the changes and the fixes.
  """
  new = {"spec": spec, "runs": [definition.run_record(r) for r in runs]}
  old = read_snapshot(sweep_dir)
  if old is not None:
    fatal, acceptable = _describe_changes(old, new)
    path = snapshot_path(sweep_dir)
    if fatal:
      raise SweepChangedError(
          f"The sweep definition {spec!r} changes the model, data or "
          f"optimiser of runs already in {path} (first: {fatal[0]}; "
          f"{len(fatal)} run(s) in all). A run's workdir may only hold one "
          f"experiment: restore the definition the sweep was started with "
          f"({old.get('spec')!r}), or use a new --sweep_dir.")
    if acceptable and not update:
      raise SweepChangedError(
          f"The sweep definition {spec!r} differs from the one stored in "
          f"{path} ({old.get('spec')!r}): " + "; ".join(acceptable[:4]) +
          ". Pass --update_sweep to accept this (runs already done stay "
          "done; every task of the sweep must then use the new definition), "
          "restore the old definition, or use a new --sweep_dir.")
    if not acceptable:
      return
  if write:
    os.makedirs(sweep_dir, exist_ok=True)
    write_json_atomically(snapshot_path(sweep_dir), new)
