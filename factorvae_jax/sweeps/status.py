"""What state a run's workdir is in, and the per-run log of training attempts.

Read from the files alone (no Orbax, no JAX), so ``--list`` over thousands of
runs is quick and works while the runs train.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from typing import Optional

from factorvae_jax.sweeps import claims
from factorvae_jax.utils.files import write_json_atomically

RESULTS_FILE = "results.json"
FAILED_FILE = "sweep_failed.json"
RUN_LOG_FILE = "sweep_log.jsonl"
CHECKPOINT_DIR = "checkpoints"

NEW, PARTIAL, DONE, FAILED = "new", "partial", "done", "failed"


@dataclasses.dataclass(frozen=True)
class RunStatus:
  """A run's state.

  Attributes:
    state: NEW, PARTIAL (checkpoints, no results yet), DONE (results.json
      written after the final evaluation) or FAILED (the last attempt raised;
      ``error`` says what).
    step: newest complete checkpoint's step, or None.
    error: the failure message of a FAILED run.
  """
  state: str
  step: Optional[int] = None
  error: Optional[str] = None

  def __str__(self) -> str:
    if self.state == PARTIAL:
      return f"partial at step {self.step}"
    if self.state == FAILED:
      return f"failed at step {self.step}: {self.error}"
    return self.state


def latest_checkpoint_step(workdir: str) -> Optional[int]:
  """The newest complete checkpoint step in ``<workdir>/checkpoints``.

  Orbax writes a checkpoint under a temporary name and renames it to the
  bare step number once complete, so only all-digit folder names count.
  """
  try:
    names = os.listdir(os.path.join(workdir, CHECKPOINT_DIR))
  except FileNotFoundError:
    return None
  steps = [int(n) for n in names if n.isdigit()]
  return max(steps) if steps else None


def run_status(workdir: str) -> RunStatus:
  """The state of the run in ``workdir`` (which may not exist yet)."""
  step = latest_checkpoint_step(workdir)
  if os.path.exists(os.path.join(workdir, RESULTS_FILE)):
    return RunStatus(DONE, step)
  failed = os.path.join(workdir, FAILED_FILE)
  if os.path.exists(failed):
    try:
      with open(failed) as f:
        error = json.load(f).get("error", "?")
    except (OSError, json.JSONDecodeError) as e:
      error = f"unreadable {failed}: {e}"
    return RunStatus(FAILED, step, error)
  return RunStatus(NEW if step is None else PARTIAL, step)


def mark_failed(workdir: str, error: BaseException) -> None:
  """Records that training the run raised ``error``."""
  write_json_atomically(os.path.join(workdir, FAILED_FILE), {
      "error": f"{type(error).__name__}: {error}", "time": time.time(),
      "step": latest_checkpoint_step(workdir)})


def clear_failed(workdir: str) -> None:
  try:
    os.remove(os.path.join(workdir, FAILED_FILE))
  except FileNotFoundError:
    pass


def log_event(workdir: str, event: str, **fields) -> None:
  """Appends one line to ``<workdir>/sweep_log.jsonl``.

  Events: 'start' (with the step training resumes from), then one of 'done',
  'interrupted' or 'failed'. A 'start' with no end was killed.
  """
  record = {"event": event, "time": time.time(),
            "host": socket.gethostname(), "pid": os.getpid(), **fields}
  os.makedirs(workdir, exist_ok=True)
  # One short line per write: appends of whole lines do not interleave.
  with open(os.path.join(workdir, RUN_LOG_FILE), "a") as f:
    f.write(json.dumps(record) + "\n")


def read_run_log(workdir: str) -> list[dict]:
  """The events of ``log_event``, oldest first (unparseable lines skipped)."""
  try:
    with open(os.path.join(workdir, RUN_LOG_FILE)) as f:
      lines = f.read().splitlines()
  except FileNotFoundError:
    return []
  events = []
  for line in lines:
    try:
      events.append(json.loads(line))
    except json.JSONDecodeError:
      continue  # A line cut short by a kill.
  return events


def training_seconds(events: list[dict]) -> Optional[float]:
  """Wall time of the attempts that ended (start to done/interrupted/failed).

  Attempts killed without an end event are not counted. None if no attempt
  ended.
  """
  total, start, any_ended = 0.0, None, False
  for event in events:
    if event["event"] == "start":
      start = event["time"]
    elif start is not None:
      total += event["time"] - start
      start, any_ended = None, True
  return total if any_ended else None


def listing(runs, sweep_dir: str, claim_timeout_s: float = 600.0
            ) -> list[str]:
  """One line per run: index, model, hyperparameters, seed, workdir, status.

  Args:
    runs: the expanded sweep (``definition.Run`` objects).
    sweep_dir: the sweep dir.
    claim_timeout_s: as for training; claims older than this show as stale.

  Returns:
    The lines, in run order, e.g.
    ``00003  factor_vae  gamma=20  seed=1  runs/study/factor_vae/gamma=20/seed=1  partial at step 20000 (training on host:123, ...)``.
  """
  rows = []
  for run in runs:
    workdir = run.workdir(sweep_dir)
    state = str(run_status(workdir))
    info = claims.read_claim(workdir)
    if info is not None:
      stale = claims.is_stale(info, claim_timeout_s)
      state += (f" ({'stale claim of' if stale else 'training on'} "
                f"{claims.describe(info)})")
    hparams = ",".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in run.hparams.items()) or "-"
    rows.append((f"{run.index:05d}", run.model, hparams, f"seed={run.seed}",
                 workdir, state))
  widths = [max(len(r[i]) for r in rows) for i in range(5)] if rows else []
  return ["  ".join([*(c.ljust(w) for c, w in zip(r[:5], widths)), r[5]])
          for r in rows]
