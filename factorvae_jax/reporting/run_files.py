"""Reads a training workdir back for reports and notebooks.

The files themselves are named, written and read by
``factorvae_jax.utils.run_dir``; this module re-exports its readers (so a
notebook needs one import) and adds what reports compute from them. They
return None (or nothing) for a file not written yet, so a report can show a
partial run and say what is missing.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir

read_json = run_dir.read_json
read_metrics = run_dir.read_metrics
read_results = run_dir.read_results
latest_images = run_dir.latest_images
missing_run_files = run_dir.missing_files


def metric_series(records: Sequence[dict], name: str
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Steps and values of one scalar over the records that logged it."""
  pairs = [(r["step"], r[name]) for r in records if name in r]
  if not pairs:
    return np.zeros(0, int), np.zeros(0)
  steps, values = zip(*pairs)
  return np.asarray(steps, int), np.asarray(values, float)


def last_kl_per_dim(records: Sequence[dict]) -> Optional[np.ndarray]:
  """The last logged ``kl_per_dim/<i>`` values as a [D] array, or None."""
  for record in reversed(records):
    dims = sorted(int(k.split("/", 1)[1]) for k in record
                  if k.startswith("kl_per_dim/"))
    if dims:
      return np.asarray([record[f"kl_per_dim/{d}"] for d in dims], float)
  return None


def last_scores(records: Sequence[dict], prefix: str = "eval/"
                ) -> tuple[Optional[int], dict]:
  """The newest record's scores whose names start with ``prefix``.

  Returns:
    ``(step, {name without prefix: value})``; ``(None, {})`` if none.
  """
  for record in reversed(records):
    scores = {k[len(prefix):]: v for k, v in record.items()
              if k.startswith(prefix)}
    if scores:
      return record["step"], scores
  return None, {}


def collect_runs(directory):
  """Every run below ``directory`` as a sweep's aggregated results.

  For a folder of training workdirs that no sweep wrote (a sweep directory
  is read with ``factorvae_jax.sweeps.aggregate.collect``); the result feeds
  the same table and figures (``factorvae_jax.sweeps.figures``).

  Args:
    directory: a folder holding training workdirs at any depth.

  Returns:
    A ``factorvae_jax.sweeps.aggregate.SweepResults``: one row per run with
    a results.json (run name = its path below ``directory``; the
    hyperparameters are those of each run's model); runs without one are
    listed as missing, unreadable ones as broken.

  Raises:
    FileNotFoundError: if ``directory`` is missing or holds no run.
  """
  # Imported here: reading a single run needs nothing of the sweep tools.
  from factorvae_jax.sweeps import aggregate  # pylint: disable=g-import-not-at-top
  workdirs = run_dir.find_runs(directory)
  if not workdirs:
    raise errors.NothingToDoError(
        f"{os.fspath(directory)} holds no training workdir (no run's config "
        "below it); point at a sweep directory or a folder of runs.")
  rows, missing, broken, history = [], [], [], {}
  hparam_names, score_names = [], set()
  for index, workdir in enumerate(workdirs):
    name = os.path.relpath(workdir, directory).replace(os.sep, "/")
    try:
      results = run_dir.read_results(workdir)
    except ValueError as e:
      broken.append((run_dir.results_path(workdir), str(e)))
      continue
    if results is None:
      missing.append((name, f"no {run_dir.RESULTS}"))
      continue
    config = run_dir.read_config(workdir) or {}
    records = read_metrics(workdir)
    hparams = results.get("model", {}).get("hparams", {})
    hparam_names += [k for k in hparams if k not in hparam_names]
    scores = results.get("scores", {})
    score_names.update(scores)
    training = {}
    for column in aggregate.TRAINING_COLUMNS:
      _, values = metric_series(records, column)
      training[column] = float(values[-1]) if len(values) else None
    history[name] = [(r["step"], {k[len("eval/"):]: v for k, v in r.items()
                                  if k.startswith("eval/")})
                     for r in records if any(k.startswith("eval/") for k in r)]
    rows.append({
        "index": index, "name": name,
        "model": results.get("model", {}).get("name"), **hparams,
        "seed": config.get("seed"), "step": results.get("checkpoint_step"),
        "wall_time_s": None, **training, **scores,
        "eval_seconds": results.get("seconds"), "workdir": workdir})
  return aggregate.SweepResults(
      rows=rows, hparam_names=hparam_names, score_names=sorted(score_names),
      missing=missing, broken=broken, history=history)
