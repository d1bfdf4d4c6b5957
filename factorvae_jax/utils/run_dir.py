"""The files of a run's workdir: their names, and how each is written and read.

Every file a run holds has its name here and nowhere else (but for two
files of the sweep tools: the claim ``sweep_claim.<n>.json``, the claim
protocol's own, in ``sweeps/claims.py``, and UDR's ``udr_codes.npz`` in
``sweeps/udr.py``); training, evaluation, sweeps, reporting and the
notebooks all go through these functions::

  <workdir>/config.json          the experiment config (write_config)
  <workdir>/data_source.json     the data and machine it trained on
  <workdir>/metrics.jsonl        one JSON object per logged step
  <workdir>/tensorboard/         TensorBoard event files
  <workdir>/images/<kind>_<step>.png
  <workdir>/checkpoints/<step>/  Orbax checkpoints (steps listed by Orbax)
  <workdir>/results.json         the final evaluation
  <workdir>/failed.json          why the run failed (a divergence, an error)
  <workdir>/sweep_log.jsonl      a sweep's start/end events for the run
  <workdir>/report.html          the run on one page (experiments.report)

Readers return None (or nothing) for a file that is not there yet, so a
report or a notebook can show a run in progress and say what is missing.

The one rule for ``metrics.jsonl``: a resumed run first truncates the file
after the step it resumes from (``truncate_metrics_after``); a reader that
still meets a step twice (a run killed between its checkpoint and the
truncation of the next start) keeps the later line's values.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socket
import time
from typing import Any, Optional

from factorvae_jax.utils import errors
from factorvae_jax.utils.files import write_atomically, write_json_atomically

CONFIG = "config.json"
DATA_SOURCE = "data_source.json"
METRICS = "metrics.jsonl"
TENSORBOARD = "tensorboard"
IMAGES = "images"
CHECKPOINTS = "checkpoints"
RESULTS = "results.json"
FAILED = "failed.json"
RUN_LOG = "sweep_log.jsonl"
REPORT = "report.html"
# Written by sweeps before the failure record moved here; still read.
_OLD_FAILED = "sweep_failed.json"

#: What a finished run holds (``missing_files`` lists the absent ones).
EXPECTED = (CONFIG, DATA_SOURCE, METRICS, RESULTS)
_IMAGE_NAME = re.compile(r"^(?P<kind>[a-z_]+)_(?P<step>\d+)\.png$")


def _path(workdir, name: str) -> str:
  return os.path.join(os.fspath(workdir), name)


def read_json(path) -> Optional[Any]:
  """The parsed JSON file at ``path``, or None if it does not exist.

  Raises:
    BadFileError: naming the file, if it exists but is not valid JSON.
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except json.JSONDecodeError as e:
    raise errors.BadFileError(
        f"{path} is not valid JSON ({e}); delete or rewrite it.") from e


# config.json and data_source.json ------------------------------------------

def config_path(workdir) -> str:
  """Where the run's config is."""
  return _path(workdir, CONFIG)


def write_config(workdir, config: dict) -> None:
  """Writes the run's config (a JSON-able dict), atomically."""
  write_json_atomically(config_path(workdir), config)


def read_config(workdir) -> Optional[dict]:
  """The run's config as a dict, or None if not written yet."""
  return read_json(config_path(workdir))


def write_data_source(workdir, description: dict) -> None:
  """Writes what the run trained on (data, library versions, devices)."""
  write_json_atomically(_path(workdir, DATA_SOURCE), description)


def read_data_source(workdir) -> Optional[dict]:
  return read_json(_path(workdir, DATA_SOURCE))


# results.json ---------------------------------------------------------------

def results_path(workdir) -> str:
  """Where the final evaluation's results are."""
  return _path(workdir, RESULTS)


def has_results(workdir) -> bool:
  return os.path.exists(results_path(workdir))


# What python -m experiments.udr adds to a run's results (sweeps/udr.py):
# scores[UDR_SCORE_PREFIX + <correlation matrix>] and a UDR_SECTION section.
UDR_SCORE_PREFIX = "udr/"
UDR_SECTION = "udr"


def write_results(workdir, results: dict) -> str:
  """Writes the evaluation results atomically; returns the path."""
  return write_json_atomically(results_path(workdir), results)


def read_results(workdir) -> Optional[dict]:
  """The run's evaluation results, or None if there are none yet.

  Raises:
    BadFileError: the file is not JSON, or has no ``scores`` mapping.
  """
  results = read_json(results_path(workdir))
  if results is not None and not (isinstance(results, dict) and
                                  isinstance(results.get("scores"), dict)):
    raise errors.BadFileError(
        f"{results_path(workdir)} has no 'scores' mapping; delete it and "
        f"evaluate the run again (python -m experiments.evaluate "
        f"--workdir={os.fspath(workdir)}).")
  return results


# The failure record ---------------------------------------------------------

def mark_failed(workdir, message: str, step: Optional[int] = None) -> None:
  """Records that the run failed (it is not retrained unless asked).

  Args:
    workdir: the run's workdir.
    message: what went wrong, e.g. ``"NonFiniteLossError: ..."``.
    step: the step it failed at (default: the newest checkpoint's).
  """
  if step is None:
    step = latest_checkpoint_step(workdir)
  write_json_atomically(_path(workdir, FAILED), {
      "error": message, "time": time.time(), "step": step})


def read_failure(workdir) -> Optional[dict]:
  """``{'error', 'time', 'step'}`` of a failed run, or None."""
  for name in (FAILED, _OLD_FAILED):
    path = _path(workdir, name)
    if os.path.exists(path):
      try:
        record = read_json(path)
      except errors.BadFileError as e:
        return {"error": f"unreadable {path}: {e}", "step": None}
      return record if isinstance(record, dict) else {
          "error": f"unreadable {path}", "step": None}
  return None


def clear_failure(workdir) -> None:
  """Forgets a failure (before the run is retried)."""
  for name in (FAILED, _OLD_FAILED):
    try:
      os.remove(_path(workdir, name))
    except FileNotFoundError:
      pass


# metrics.jsonl and TensorBoard ----------------------------------------------

def metrics_path(workdir) -> str:
  return _path(workdir, METRICS)


def tensorboard_dir(workdir) -> str:
  return _path(workdir, TENSORBOARD)


def _as_float(value) -> float:
  """A logged value as a float ('NaN', 'Infinity' strings included)."""
  try:
    return float(value)
  except (TypeError, ValueError):
    return math.nan


def read_metrics(workdir) -> list[dict]:
  """The records of the run's ``metrics.jsonl``, one per step, oldest first.

  Values are floats (the writer's ``"NaN"``/``"Infinity"`` strings become
  float NaN/Inf); ``step`` is an int. A line cut short by a running or
  killed writer is skipped. Lines of one step are merged; where a step was
  logged twice (a resumed run), the later line's values win.

  Args:
    workdir: a training workdir.

  Returns:
    ``[{'step': int, name: float, ...}]``; empty if there is no file.
  """
  by_step: dict[int, dict] = {}
  for raw in _jsonl_records(metrics_path(workdir)):
    if "step" in raw:
      by_step.setdefault(int(raw["step"]), {}).update(
          {k: _as_float(v) for k, v in raw.items() if k not in ("step",
                                                                 "time")})
  return [{"step": step, **by_step[step]} for step in sorted(by_step)]


def _jsonl_records(path: str) -> list[dict]:
  try:
    with open(path, encoding="utf-8") as f:
      lines = f.read().splitlines()
  except FileNotFoundError:
    return []
  records = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue  # Cut short by a kill; the lines after it are fine.
    if isinstance(record, dict):
      records.append(record)
  return records


def truncate_metrics_after(workdir, step: int) -> int:
  """Drops the ``metrics.jsonl`` lines logged after ``step`` (resuming).

  The file is rewritten atomically; unparseable lines are dropped too.

  Returns:
    The number of lines dropped.
  """
  path = metrics_path(workdir)
  if not os.path.exists(path):
    return 0
  kept, dropped, bad = [], 0, 0
  with open(path, encoding="utf-8") as f:
    for line in f:
      if not line.strip():
        continue
      try:
        record_step = int(json.loads(line)["step"])
      except (ValueError, KeyError, TypeError):
        bad += 1
        continue
      if record_step <= step:
        kept.append(line if line.endswith("\n") else line + "\n")
      else:
        dropped += 1
  if bad:
    logging.warning("Dropped %d unparseable lines from %s.", bad, path)
  write_atomically(path, lambda f: f.writelines(kept))
  return dropped + bad


# Images ---------------------------------------------------------------------

def image_path(workdir, kind: str, step: int) -> str:
  """Where the training snapshot ``kind`` of ``step`` goes."""
  return os.path.join(_path(workdir, IMAGES), f"{kind}_{int(step):08d}.png")


def latest_images(workdir) -> dict[str, tuple[int, str]]:
  """The newest image of each kind: ``{kind: (step, path)}``."""
  directory = _path(workdir, IMAGES)
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


# Checkpoints ----------------------------------------------------------------

def checkpoint_dir(workdir) -> str:
  """The folder of the run's Orbax checkpoints."""
  return _path(workdir, CHECKPOINTS)


def checkpoint_steps(workdir) -> list[int]:
  """Steps of the run's finished checkpoints, sorted (Orbax's own listing:
  a save still in progress or cut short does not count)."""
  # Imported here: listing thousands of runs' states needs no Orbax until a
  # run has checkpoints.
  directory = checkpoint_dir(workdir)
  if not os.path.isdir(directory):
    return []
  from orbax.checkpoint import path as ocp_path  # pylint: disable=g-import-not-at-top
  return sorted(ocp_path.step.checkpoint_steps(directory))


def latest_checkpoint_step(workdir) -> Optional[int]:
  """The newest finished checkpoint's step, or None."""
  steps = checkpoint_steps(workdir)
  return steps[-1] if steps else None


# The sweep's run log --------------------------------------------------------

def log_event(workdir, event: str, **fields) -> None:
  """Appends one event (start, done, interrupted, failed) to the run log."""
  record = {"event": event, "time": time.time(),
            "host": socket.gethostname(), "pid": os.getpid(), **fields}
  os.makedirs(os.fspath(workdir), exist_ok=True)
  # One short line per write: appends of whole lines do not interleave.
  with open(_path(workdir, RUN_LOG), "a", encoding="utf-8") as f:
    f.write(json.dumps(record) + "\n")


def read_run_log(workdir) -> list[dict]:
  """The run log's events, oldest first (lines cut short skipped)."""
  return _jsonl_records(_path(workdir, RUN_LOG))


def report_path(workdir) -> str:
  """Where ``experiments.report`` writes the run's page."""
  return _path(workdir, REPORT)


# The whole run --------------------------------------------------------------

def missing_files(workdir) -> list[str]:
  """Names of the run's expected files and folders that do not exist yet."""
  missing = [name for name in EXPECTED if not os.path.exists(
      _path(workdir, name))]
  if not checkpoint_steps(workdir):
    missing.append(CHECKPOINTS + "/")
  return missing


def holds_anything(workdir) -> bool:
  """Whether ``workdir`` holds any of a run's files (a started run)."""
  return any(os.path.exists(_path(workdir, name))
             for name in (CONFIG, METRICS, CHECKPOINTS))


def find_runs(directory) -> list[str]:
  """Workdirs under ``directory`` (itself included) that hold a run.

  Returns:
    Sorted absolute paths; the folders inside a run are not searched.

  Raises:
    NothingToDoError: ``directory`` is not a directory.
  """
  directory = os.path.abspath(os.fspath(directory))
  if not os.path.isdir(directory):
    raise errors.NothingToDoError(
        f"{directory} is not a directory; pass a sweep directory or a folder "
        "of training workdirs.")
  runs = []
  for root, dirs, files in os.walk(directory):
    if CONFIG in files:
      runs.append(root)
      dirs[:] = []  # A run's subfolders hold no runs.
    else:
      dirs.sort()
  return sorted(runs)
