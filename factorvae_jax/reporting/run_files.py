"""Reads the files a training workdir holds, tolerating a run in progress.

A workdir written by ``train_and_evaluate`` holds ``config.json``,
``data_source.json``, ``metrics.jsonl``, ``checkpoints/<step>/``,
``images/*.png`` and, after the final evaluation, ``results.json``. The
readers here return None (or nothing) for a file that is not there yet, so a
report or a notebook can show a partial run and say what is missing.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any, Optional, Sequence

import numpy as np

from factorvae_jax.utils import errors

RUN_FILES = ("config.json", "data_source.json", "metrics.jsonl",
             "results.json")
_IMAGE_NAME = re.compile(r"^(?P<kind>[a-z_]+)_(?P<step>\d+)\.png$")


def read_json(path) -> Optional[Any]:
  """The parsed JSON file at ``path``, or None if it does not exist.

  Raises:
    ValueError: naming the file, if it exists but is not valid JSON.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    try:
      return json.load(f)
    except json.JSONDecodeError as e:
      raise errors.BadFileError(
          f"{path} is not valid JSON ({e}); delete or rewrite "
          "it.") from e


def _as_float(value) -> float:
  """A logged value as a float ('NaN', 'Infinity' strings included)."""
  try:
    return float(value)
  except (TypeError, ValueError):
    return math.nan


def read_metrics(workdir) -> list[dict]:
  """The records of ``<workdir>/metrics.jsonl``, oldest first.

  Values are floats (the writer's ``"NaN"``/``"Infinity"`` strings become
  float NaN/Inf); ``step`` is an int. A last line cut short by a running or
  killed writer is skipped. Records are sorted by step; when a resumed run
  logged a step twice, the later record wins.

  Args:
    workdir: a training workdir.

  Returns:
    A list of ``{'step': int, name: float, ...}``; empty if the file is
    missing.
  """
  path = os.path.join(os.fspath(workdir), "metrics.jsonl")
  if not os.path.exists(path):
    return []
  by_step = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        raw = json.loads(line)
      except json.JSONDecodeError:
        continue  # A line being written.
      if not isinstance(raw, dict) or "step" not in raw:
        continue
      record = by_step.setdefault(int(raw["step"]), {})
      record.update({k: _as_float(v) for k, v in raw.items()
                     if k not in ("step", "time")})
  return [{"step": step, **by_step[step]} for step in sorted(by_step)]


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


def checkpoint_steps(workdir) -> list[int]:
  """Steps of the finished checkpoints in ``<workdir>/checkpoints``, sorted.

  A checkpoint counts once its directory holds a ``commit_success.txt`` or
  its Orbax metadata (an unfinished asynchronous save has neither).
  """
  directory = os.path.join(os.fspath(workdir), "checkpoints")
  if not os.path.isdir(directory):
    return []
  steps = []
  for name in os.listdir(directory):
    path = os.path.join(directory, name)
    if name.isdigit() and os.path.isdir(path) and (
        os.path.exists(os.path.join(path, "commit_success.txt")) or
        os.path.exists(os.path.join(path, "_CHECKPOINT_METADATA"))):
      steps.append(int(name))
  return sorted(steps)


def latest_images(workdir) -> dict[str, tuple[int, str]]:
  """The newest ``images/<kind>_<step>.png`` of each kind.

  Returns:
    ``{kind: (step, path)}``, e.g. ``{'traversals': (40, '.../...png')}``.
  """
  directory = os.path.join(os.fspath(workdir), "images")
  found = {}
  if not os.path.isdir(directory):
    return found
  for name in os.listdir(directory):
    match = _IMAGE_NAME.match(name)
    if match:
      kind, step = match["kind"], int(match["step"])
      if kind not in found or step > found[kind][0]:
        found[kind] = (step, os.path.join(directory, name))
  return found


def missing_run_files(workdir) -> list[str]:
  """Names of the run's expected files and folders that do not exist yet."""
  workdir = os.fspath(workdir)
  missing = [name for name in RUN_FILES
             if not os.path.exists(os.path.join(workdir, name))]
  if not checkpoint_steps(workdir):
    missing.append("checkpoints/")
  return missing


def find_runs(directory) -> list[str]:
  """Workdirs under ``directory`` (itself included) that hold a config.json.

  Returns:
    Sorted absolute paths; directories inside a run (checkpoints, images)
    are not searched.
  """
  directory = os.path.abspath(os.fspath(directory))
  if not os.path.isdir(directory):
    raise errors.NothingToDoError(
        f"{directory} is not a directory; pass a sweep directory or a folder "
        "of training workdirs.")
  runs = []
  for root, dirs, files in os.walk(directory):
    if "config.json" in files:
      runs.append(root)
      dirs[:] = []  # A run's subfolders hold no runs.
    else:
      dirs.sort()
  return sorted(runs)


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
  workdirs = find_runs(directory)
  if not workdirs:
    raise errors.NothingToDoError(
        f"{os.fspath(directory)} holds no training workdir (no config.json "
        "below it); point at a sweep directory or a folder of runs.")
  rows, missing, broken, history = [], [], [], {}
  hparam_names, score_names = [], set()
  for index, workdir in enumerate(workdirs):
    name = os.path.relpath(workdir, directory).replace(os.sep, "/")
    path = os.path.join(workdir, "results.json")
    try:
      results = read_json(path)
    except ValueError as e:
      broken.append((path, str(e)))
      continue
    if results is None:
      missing.append((name, "no results.json"))
      continue
    config = read_json(os.path.join(workdir, "config.json"))
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
