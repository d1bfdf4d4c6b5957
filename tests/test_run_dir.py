"""The run-directory module owns every file of a run (utils/run_dir.py)."""

import ast
import json
import os
import pathlib

import nbformat
import numpy as np
import pytest

from factorvae_jax.monitoring import MetricWriter
from factorvae_jax.utils import run_dir

REPO = pathlib.Path(__file__).resolve().parents[1]
_NAMES = (run_dir.CONFIG, run_dir.DATA_SOURCE, run_dir.METRICS,
          run_dir.RESULTS, run_dir.FAILED, run_dir.RUN_LOG, run_dir.REPORT,
          "sweep_failed",
          "commit_success", "_CHECKPOINT_METADATA")
_FOLDERS = (run_dir.CHECKPOINTS, run_dir.IMAGES, run_dir.TENSORBOARD)


def _docstring_ids(tree):
  ids = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)) and node.body:
      first = node.body[0]
      if isinstance(first, ast.Expr) and isinstance(first.value,
                                                    ast.Constant):
        ids.add(id(first.value))
  return ids


def _literals(source: str):
  """(line, text, is_path_part) of every string constant of ``source`` but
  docstrings; ``is_path_part`` when it is joined into a path."""
  tree = ast.parse(source)
  skip = _docstring_ids(tree)
  path_parts = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Call):
      func = node.func
      name = func.attr if isinstance(func, ast.Attribute) else getattr(
          func, "id", "")
      if name in ("join", "Path", "joinpath"):
        path_parts.update(id(a) for a in node.args)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
      path_parts.update((id(node.left), id(node.right)))
  for node in ast.walk(tree):
    if (isinstance(node, ast.Constant) and isinstance(node.value, str) and
        id(node) not in skip):
      yield node.lineno, node.value, id(node) in path_parts


def _sources():
  for folder in ("factorvae_jax", "experiments", "benchmarks"):
    for path in sorted((REPO / folder).rglob("*.py")):
      yield path, path.read_text()
  for path in sorted((REPO / "notebooks").glob("*.ipynb")):
    notebook = nbformat.read(path, as_version=4)
    code = "\n".join(
        "\n".join(line for line in cell.source.splitlines()
                  if not line.lstrip().startswith(("!", "%")))
        for cell in notebook.cells if cell.cell_type == "code")
    yield path, code


def test_each_run_file_name_is_written_in_one_module():
  owner = REPO / "factorvae_jax" / "utils" / "run_dir.py"
  found = []
  for path, source in _sources():
    if path == owner:
      continue
    for line, text, in_path in _literals(source):
      if (any(name in text for name in _NAMES) or
          (in_path and text.strip("/") in _FOLDERS)):
        found.append(f"{path.relative_to(REPO)}:{line}: {text!r}")
  assert not found, "\n".join(found)


def test_repeated_steps_after_a_resume_keep_the_later_line(tmp_path):
  with MetricWriter(tmp_path, tensorboard=False) as writer:
    for step in (10, 20, 30):
      writer.write_scalars(step, {"loss": float(step)})
  # A run killed after logging step 30 but whose checkpoint is step 20:
  # its successor logs steps 30 and 40 again. Before it truncates (a kill
  # between the two), a reader sees step 30 twice: the later line wins.
  with open(run_dir.metrics_path(tmp_path), "a") as f:
    f.write(json.dumps({"step": 30, "time": 0, "loss": 3.5}) + "\n")
  records = run_dir.read_metrics(tmp_path)
  assert [r["step"] for r in records] == [10, 20, 30]
  assert records[-1]["loss"] == 3.5

  # Resuming from step 20 truncates after it; the new lines follow.
  with MetricWriter(tmp_path, tensorboard=False) as writer:
    assert writer.truncate_after(20) == 2
    writer.write_scalars(30, {"loss": 33.0})
    writer.write_scalars(40, {"loss": 44.0})
  records = run_dir.read_metrics(tmp_path)
  assert [(r["step"], r["loss"]) for r in records] == [
      (10, 10.0), (20, 20.0), (30, 33.0), (40, 44.0)]


def test_failure_record_round_trip_and_old_name(tmp_path):
  assert run_dir.read_failure(tmp_path) is None
  run_dir.mark_failed(tmp_path, "NonFiniteLossError: diverged", step=12)
  record = run_dir.read_failure(tmp_path)
  assert record["error"] == "NonFiniteLossError: diverged"
  assert record["step"] == 12
  run_dir.clear_failure(tmp_path)
  assert run_dir.read_failure(tmp_path) is None
  # Sweeps written before the record moved here still read as failed.
  (tmp_path / "sweep_failed.json").write_text('{"error": "old", "step": 3}')
  assert run_dir.read_failure(tmp_path)["error"] == "old"
  run_dir.clear_failure(tmp_path)
  assert not os.listdir(tmp_path)


def test_checkpoint_steps_are_orbax_finished_ones(tmp_path):
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  assert run_dir.checkpoint_steps(tmp_path) == []
  manager = ocp.CheckpointManager(run_dir.checkpoint_dir(tmp_path),
                                  options=ocp.CheckpointManagerOptions(
                                      create=True))
  for step in (5, 10):
    manager.save(step, args=ocp.args.StandardSave({"x": np.arange(3)}))
  manager.wait_until_finished()
  manager.close()
  # A save cut short leaves a temporary folder, which does not count.
  os.makedirs(os.path.join(run_dir.checkpoint_dir(tmp_path),
                           "15.orbax-checkpoint-tmp-123"))
  assert run_dir.checkpoint_steps(tmp_path) == [5, 10]
  assert run_dir.latest_checkpoint_step(tmp_path) == 10


def test_results_without_scores_are_a_user_error(tmp_path):
  assert run_dir.read_results(tmp_path) is None
  run_dir.write_results(tmp_path, {"scores": {"mig": 0.5}})
  assert run_dir.read_results(tmp_path)["scores"] == {"mig": 0.5}
  run_dir.write_results(tmp_path, {"no": "scores"})
  with pytest.raises(ValueError, match="scores"):
    run_dir.read_results(tmp_path)


def test_evaluating_again_keeps_udr_scores_of_the_same_checkpoint(tmp_path):
  from factorvae_jax.evaluation import evaluate  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path)
  udr_section = {"lasso": {"score": 0.4, "compared_with": {"b": 0.4}}}
  run_dir.write_results(workdir, {
      "checkpoint_step": 100, "scores": {"mig": 0.1, "udr/lasso": 0.4},
      "udr": udr_section})

  # Same checkpoint: the new evaluation's scores, UDR's kept.
  evaluate.write_results({"checkpoint_step": 100,
                          "scores": {"mig": 0.2, "sap": 0.3}}, workdir)
  results = run_dir.read_results(workdir)
  assert results["scores"] == {"mig": 0.2, "sap": 0.3, "udr/lasso": 0.4}
  assert results["udr"] == udr_section

  # Another checkpoint: UDR's scores were of the old one, so they go.
  evaluate.write_results({"checkpoint_step": 200, "scores": {"mig": 0.5}},
                         workdir)
  assert run_dir.read_results(workdir) == {"checkpoint_step": 200,
                                           "scores": {"mig": 0.5}}

  # An unreadable file is replaced.
  with open(run_dir.results_path(workdir), "w") as f:
    f.write("{not json")
  evaluate.write_results({"checkpoint_step": 200, "scores": {"mig": 0.6}},
                         workdir)
  assert run_dir.read_results(workdir)["scores"] == {"mig": 0.6}
