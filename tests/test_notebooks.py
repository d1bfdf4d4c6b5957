"""Runs each notebook top to bottom in a fresh kernel, at ``:test`` sizes.

The kernel is this interpreter (a kernelspec written to a temporary
JUPYTER_PATH), with the repository on its PYTHONPATH so the notebooks' install
cell finds the package and does nothing. A cell injected after each
notebook's ``parameters`` cell sets seconds-long sizes, the way papermill
does. The quickstart's two runs are reused by the other notebooks.
"""

import json
import os
import pathlib
import sys

import nbformat
from nbclient import NotebookClient
import pytest

from tests import conftest

ROOT = pathlib.Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ("quickstart.ipynb", "explore_run.ipynb", "study.ipynb")
KERNEL_NAME = "factorvae-jax-tests"
# Every metric but DCI (its boosted trees take most of a tiny evaluation).
TEST_METRICS = ("mig", "sap", "modularity", "unsupervised", "beta_vae",
                "factor_vae")
CELL_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
  """A kernelspec running this interpreter, and the kernel's environment."""
  jupyter_dir = tmp_path_factory.mktemp("jupyter")
  spec_dir = jupyter_dir / "kernels" / KERNEL_NAME
  spec_dir.mkdir(parents=True)
  (spec_dir / "kernel.json").write_text(json.dumps({
      "argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
               "{connection_file}"],
      "display_name": "factorvae_jax tests", "language": "python"}))
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv("JUPYTER_PATH", str(jupyter_dir))
    patch.setenv("IPYTHONDIR", str(tmp_path_factory.mktemp("ipython")))
    patch.setenv("PYTHONPATH", os.pathsep.join(
        [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    patch.setenv("JAX_PLATFORMS", "cpu")
    # One CPU device, as on a user's machine (conftest fakes four).
    patch.setenv("XLA_FLAGS", conftest.SINGLE_DEVICE_XLA_FLAGS)
    yield KERNEL_NAME


def execute(name, parameters, cwd, kernel_name):
  """Runs a notebook with ``parameters`` injected; returns it with outputs."""
  notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  index = next(i for i, cell in enumerate(notebook.cells)
               if "parameters" in cell.metadata.get("tags", []))
  injected = nbformat.v4.new_code_cell(
      "\n".join(f"{k} = {v!r}" for k, v in parameters.items()),
      metadata={"tags": ["injected-parameters"]})
  notebook.cells.insert(index + 1, injected)
  NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name=kernel_name,
                 resources={"metadata": {"path": str(cwd)}}).execute()
  return notebook


def summarise(notebook):
  """Checks no cell raised; returns ({mime type: count}, printed text)."""
  counts, text = {}, []
  for cell in notebook.cells:
    for output in cell.get("outputs", []):
      assert output.output_type != "error", output.get("evalue")
      text.append(output.get("text", ""))
      for mime in output.get("data", {}):
        counts[mime] = counts.get(mime, 0) + 1
  return counts, "".join(text)


@pytest.fixture(scope="module")
def quickstart(kernel, tmp_path_factory):
  """The executed quickstart and the folder holding its two runs."""
  cwd = tmp_path_factory.mktemp("quickstart")
  workdir = cwd / "runs"
  notebook = execute("quickstart.ipynb", {
      "CONFIG_VARIANT": "test", "NUM_STEPS": 10, "EVAL_SIZES": "tiny",
      "EVAL_METRICS": TEST_METRICS, "NUM_IMAGES": 4,
      "WORKDIR": str(workdir)}, cwd, kernel)
  return notebook, workdir


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_is_stripped_and_parameterised(name):
  notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
  nbformat.validate(notebook)
  code_cells = [c for c in notebook.cells if c.cell_type == "code"]
  for cell in code_cells:
    assert cell.outputs == [] and cell.execution_count is None, (
        f"{name} has outputs; clear them before committing")
  # The parameter cell is the first code cell, then the install cell.
  assert "parameters" in code_cells[0].metadata.get("tags", [])
  assert "REPOSITORY_URL" in code_cells[1].source
  assert "colab-badge.svg" in notebook.cells[0].source


@pytest.mark.slow
def test_quickstart_trains_evaluates_and_draws(quickstart):
  notebook, workdir = quickstart
  counts, text = summarise(notebook)
  # Curves, KL, comparisons (matplotlib) and grids (PIL) of both models.
  assert counts.get("image/png", 0) >= 10, counts
  assert counts.get("image/gif", 0) >= 2, counts
  assert counts.get("text/html", 0) >= 1, counts
  for run in ("factorvae", "betavae"):
    with open(workdir / run / "results.json") as f:
      results = json.load(f)
    assert results["checkpoint_step"] == 10
    assert results["settings"]["sizes_preset"] == "tiny"
    assert "mig" in results["scores"]
  assert "Evaluation at step 10" in text


@pytest.mark.slow
def test_explore_run(quickstart, kernel, tmp_path):
  _, workdir = quickstart
  # MY_IMAGES stays [] (dataset images written to PNG files and read back);
  # reading other sizes and colours is tested in test_report.py.
  notebook = execute("explore_run.ipynb", {
      "WORKDIR": str(workdir / "factorvae"), "NUM_IMAGES": 4,
      "LATENTS": [0, 1], "EDIT": {1: -2.0}}, tmp_path, kernel)
  counts, text = summarise(notebook)
  # KL plot, reconstructions, traversal grid, own images (2), walk, edit.
  assert counts.get("image/png", 0) >= 7, counts
  assert counts.get("image/gif", 0) == 2, counts  # One per chosen latent.
  assert counts.get("text/html", 0) == 1, counts  # The scores table.
  assert "factor_vae at step 10" in text


@pytest.mark.slow
def test_study_of_a_directory_of_runs(quickstart, kernel, tmp_path):
  _, workdir = quickstart
  notebook = execute("study.ipynb", {
      "SWEEP_DIR": str(workdir), "FIGURE_DIR": str(tmp_path / "figures")},
      tmp_path, kernel)
  counts, text = summarise(notebook)
  assert "2 of 2 runs aggregated" in text
  # Metrics against the hyperparameter, reconstruction against the
  # FactorVAE metric, rank correlation of the headline metrics and of every
  # metric (no periodic evaluations or UDR scores here).
  assert counts.get("image/png", 0) == 4, counts
  assert counts.get("text/html", 0) == 1, counts
  assert len(os.listdir(tmp_path / "figures")) == 4
