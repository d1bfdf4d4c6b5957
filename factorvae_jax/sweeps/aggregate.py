"""Collects a sweep's results into one table (``results.csv``).

One row per finished run: the run's model, hyperparameters and seed, the
checkpoint step evaluated, every score of its ``results.json``, the training
losses at the end (reconstruction error, KL, TC estimate where the model logs
one) and the training wall time. Runs that are not finished are listed as
missing; a run whose ``results.json`` cannot be read is reported by path.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Any, Optional, Sequence

from factorvae_jax.sweeps import snapshot
from factorvae_jax.sweeps import status as status_lib
from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir
from factorvae_jax.utils.files import write_atomically

# Training scalars copied from the last line of metrics.jsonl that has them.
TRAINING_COLUMNS = ("reconstruction", "kl", "tc_estimate")
_EVAL_PREFIX = "eval/"


@dataclasses.dataclass
class SweepResults:
  """The collected sweep.

  Attributes:
    rows: one dict per finished run (see ``columns``).
    hparam_names: the swept hyperparameter columns.
    score_names: the score columns, sorted.
    missing: (run name, status) of the runs not finished.
    broken: (path, problem) of finished runs whose results cannot be read.
    history: run name -> [(step, {metric: value})] of the periodic
      evaluations (``eval/<metric>`` lines of metrics.jsonl).
  """
  rows: list[dict]
  hparam_names: list[str]
  score_names: list[str]
  missing: list[tuple[str, str]]
  broken: list[tuple[str, str]]
  history: dict[str, list[tuple[int, dict[str, float]]]]

  @property
  def columns(self) -> list[str]:
    return (["index", "name", "model", *self.hparam_names, "seed", "step",
             "wall_time_s", *TRAINING_COLUMNS, *self.score_names,
             "eval_seconds", "workdir"])


def _training_summary(workdir: str) -> tuple[
    dict[str, float], list[tuple[int, dict[str, float]]]]:
  """(last training scalars, periodic evaluations) from the run's log."""
  last, history = {}, []
  for record in run_dir.read_metrics(workdir):
    if "reconstruction" in record:
      last = {k: record[k] for k in TRAINING_COLUMNS if k in record}
    evals = {k[len(_EVAL_PREFIX):]: v for k, v in record.items()
             if k.startswith(_EVAL_PREFIX)}
    if evals:
      history.append((record["step"], evals))
  return last, history


def _number(value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, (int, float, str)):
    return math.nan
  try:
    return float(value)
  except ValueError:
    return math.nan


def load_runs(sweep_dir: str) -> list[dict]:
  """The run records of the sweep dir's snapshot.

  Raises:
    FileNotFoundError: naming the dir, if it holds no sweep.
  """
  stored = snapshot.read_snapshot(sweep_dir)
  if stored is None:
    raise errors.NothingToDoError(
        f"{snapshot.snapshot_path(sweep_dir)} does not exist: {sweep_dir} is "
        f"not a sweep dir. Start the sweep first: python -m experiments.sweep "
        f"--sweep=<file> --sweep_dir={sweep_dir}")
  return stored["runs"]


def collect(sweep_dir: str) -> SweepResults:
  """Reads every run of the sweep in ``sweep_dir``.

  Returns:
    The :class:`SweepResults`; nothing about a single run is fatal.

  Raises:
    FileNotFoundError: ``sweep_dir`` holds no sweep.
  """
  rows, missing, broken, history = [], [], [], {}
  hparam_names, score_names = [], set()
  for record in load_runs(sweep_dir):
    workdir = os.path.join(sweep_dir, *record["name"].split("/"))
    run_status = status_lib.run_status(workdir)
    if run_status.state != status_lib.DONE:
      missing.append((record["name"], str(run_status)))
      continue
    try:
      results = run_dir.read_results(workdir)
    except ValueError as e:
      broken.append((run_dir.results_path(workdir), str(e)))
      continue
    training, history[record["name"]] = _training_summary(workdir)
    scores = {k: _number(v) for k, v in results["scores"].items()}
    score_names.update(scores)
    for name in record["hparams"]:
      if name not in hparam_names:
        hparam_names.append(name)
    rows.append({
        "index": record["index"], "name": record["name"],
        "model": record["model"], **record["hparams"],
        "seed": record["seed"], "step": results.get("checkpoint_step"),
        "wall_time_s": status_lib.training_seconds(
            run_dir.read_run_log(workdir)),
        **{k: training.get(k) for k in TRAINING_COLUMNS},
        **scores, "eval_seconds": results.get("seconds"),
        "workdir": workdir})
  return SweepResults(rows=rows, hparam_names=hparam_names,
                      score_names=sorted(score_names), missing=missing,
                      broken=broken, history=history)


def value(row: dict, column: str) -> float:
  """A row's number in ``column``; NaN where it is absent."""
  number = row.get(column)
  return math.nan if number is None else float(number)


def write_csv(results: SweepResults, path: str) -> str:
  """Writes ``results.rows`` as CSV (empty cells for absent values)."""
  def write(f):
    writer = csv.DictWriter(f, fieldnames=results.columns, restval="",
                            extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in results.rows:
      writer.writerow({k: ("" if v is None else v) for k, v in row.items()})

  return write_atomically(path, write)


def hparam_label(row: dict, hparam_names: list[str]) -> str:
  """The run's swept values as text, e.g. 'gamma=20' ('default' if none)."""
  parts = [f"{k}={row[k]:g}" if isinstance(row[k], float) else f"{k}={row[k]}"
           for k in hparam_names if row.get(k) not in (None, "")]
  return ",".join(parts) or "default"


#: The columns of ``summary.md`` when present: the losses and each metric's
#: headline score.
SUMMARY_COLUMNS = (
    "reconstruction", "kl", "tc_estimate", "factor_vae/eval_accuracy",
    "beta_vae/eval_accuracy", "mig", "dci/disentanglement", "sap",
    "modularity/modularity", "irs/IRS",
    "downstream_task_logistic_regression/10000:mean_test_accuracy",
    "downstream_task_boosted_trees/10000:mean_test_accuracy",
    "fairness/mean_fairness:mean_pred:mean_sens", "udr/lasso",
    "udr/spearman")


def summarise(results: SweepResults,
              columns: Sequence[str] = SUMMARY_COLUMNS) -> tuple[list[str],
                                                                  list[dict]]:
  """Mean and standard deviation over seeds per model and hyperparameters.

  Args:
    results: the collected sweep.
    columns: the columns to summarise; those no run has are left out.

  Returns:
    ``(columns kept, rows)``; each row has 'model', 'hparams', 'seeds' (the
    number of runs) and, per column, ``(mean, sample std or NaN for one
    run)``. Rows in the order their first run appears in the sweep.
  """
  kept = [c for c in columns
          if any(math.isfinite(value(r, c)) for r in results.rows)]
  groups: dict[tuple[str, str], list[dict]] = {}
  for row in sorted(results.rows, key=lambda r: r["index"]):
    key = (row["model"], hparam_label(row, results.hparam_names))
    groups.setdefault(key, []).append(row)
  out = []
  for (model, hparams), rows in groups.items():
    summary = {"model": model, "hparams": hparams, "seeds": len(rows)}
    for column in kept:
      values = [value(r, column) for r in rows]
      values = [v for v in values if math.isfinite(v)]
      if not values:
        summary[column] = (math.nan, math.nan)
        continue
      mean = sum(values) / len(values)
      std = (math.sqrt(sum((v - mean) ** 2 for v in values) /
                       (len(values) - 1)) if len(values) > 1 else math.nan)
      summary[column] = (mean, std)
    out.append(summary)
  return kept, out


def write_summary(results: SweepResults, path: str) -> str:
  """Writes :func:`summarise` as a Markdown table (mean ± std over seeds)."""
  columns, rows = summarise(results)

  def cell(mean, std):
    if not math.isfinite(mean):
      return ""
    return f"{mean:.3g}" + (f" ± {std:.2g}" if math.isfinite(std) else "")

  lines = ["| model | hparams | seeds | " + " | ".join(columns) + " |",
           "|---" * (3 + len(columns)) + "|"]
  for row in rows:
    lines.append(f"| {row['model']} | {row['hparams']} | {row['seeds']} | " +
                 " | ".join(cell(*row[c]) for c in columns) + " |")
  return write_atomically(path, lambda f: f.write("\n".join(lines) + "\n"))


def report(results: SweepResults, sweep_dir: str,
           limit: Optional[int] = 20) -> str:
  """Human-readable summary: counts, missing runs, broken results."""
  total = len(results.rows) + len(results.missing) + len(results.broken)
  lines = [f"{sweep_dir}: {len(results.rows)} of {total} runs aggregated."]
  if results.missing:
    lines.append(f"Missing ({len(results.missing)}; finish them with python "
                 f"-m experiments.sweep, which resumes partial runs):")
    shown = results.missing if limit is None else results.missing[:limit]
    lines += [f"  {name}: {state}" for name, state in shown]
    if len(shown) < len(results.missing):
      lines.append(f"  ... and {len(results.missing) - len(shown)} more "
                   f"(see missing.txt)")
  if results.broken:
    lines.append(f"Unreadable results ({len(results.broken)}; re-evaluate "
                 f"with python -m experiments.evaluate --workdir=<dir>):")
    lines += [f"  {path}: {problem}" for path, problem in results.broken]
  return "\n".join(lines)

