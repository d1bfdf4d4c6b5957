"""What state a run's workdir is in, and the per-run log of training attempts.

Read from the run's files (``utils.run_dir``) without building a model, so
``--list`` over thousands of runs is quick and works while the runs train.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

from factorvae_jax.sweeps import claims
from factorvae_jax.utils import run_dir

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


def run_status(workdir: str) -> RunStatus:
  """The state of the run in ``workdir`` (which may not exist yet)."""
  step = run_dir.latest_checkpoint_step(workdir)
  if run_dir.has_results(workdir):
    return RunStatus(DONE, step)
  failure = run_dir.read_failure(workdir)
  if failure is not None:
    failed_at = failure.get("step")
    return RunStatus(FAILED, step if failed_at is None else failed_at,
                     failure.get("error", "?"))
  return RunStatus(NEW if step is None else PARTIAL, step)


def mark_failed(workdir: str, error: BaseException) -> None:
  """Records that training the run raised ``error``."""
  run_dir.mark_failed(workdir, f"{type(error).__name__}: {error}")


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
