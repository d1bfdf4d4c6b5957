"""Tests for the run report and the picture helpers the notebooks share."""

import base64
import html.parser
import io
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax.builder import run_config
from factorvae_jax.training.loop import train_and_evaluate
from factorvae_jax.visualisation import animation
from factorvae_jax.reporting import explore
from factorvae_jax.reporting import plots
from factorvae_jax.reporting import report
from factorvae_jax.reporting import run_files
from tests import conftest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_STEPS = 10


class _ReportParser(html.parser.HTMLParser):
  """Collects the images, headings and warning paragraphs of a report."""

  def __init__(self):
    super().__init__()
    self.images, self.headings, self.missing = [], [], []
    self._tag = None

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if tag == "img":
      self.images.append(attrs)
    self._tag = (tag, attrs.get("class"))

  def handle_data(self, data):
    if self._tag and self._tag[0] == "h2":
      self.headings.append(data)
    if self._tag and self._tag[1] == "missing":
      self.missing.append(data)

  def handle_endtag(self, tag):
    self._tag = None


def parse_report(document):
  """Parses the HTML and decodes every inlined image.

  Returns:
    (parser, {mime: [decoded PIL images]}).
  """
  parser = _ReportParser()
  parser.feed(document)
  parser.close()
  decoded = {}
  for attrs in parser.images:
    src = attrs["src"]
    assert src.startswith("data:image/"), src[:40]  # Self-contained.
    header, payload = src.split(",", 1)
    mime = header[len("data:"):-len(";base64")]
    image = Image.open(io.BytesIO(base64.b64decode(payload)))
    image.load()  # Decodes the pixels, not only the header.
    decoded.setdefault(mime, []).append(image)
  return parser, decoded


@pytest.fixture(scope="module")
def test_run(tmp_path_factory):
  """A finished ``:test`` run, evaluated with tiny sizes."""
  workdir = str(tmp_path_factory.mktemp("report") / "fvae")
  config = factorvae_dsprites.get_config("test")
  with config.unlocked():
    config.num_steps = NUM_STEPS
    config.checkpoint_every_steps = NUM_STEPS
    config.image_every_steps = NUM_STEPS
    config.eval_every_steps = 5
    config.periodic_eval_metrics = ("mig", "sap")
    config.final_eval_metrics = ("mig", "sap", "modularity")
  train_and_evaluate(config, workdir)
  return workdir


def partial_copy(workdir, destination, remove=(), num_steps=None):
  """A copy of a run with files removed, or a longer schedule (in progress)."""
  shutil.copytree(workdir, destination)
  for name in remove:
    path = os.path.join(destination, name)
    shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
  if num_steps is not None:
    path = os.path.join(destination, "config.json")
    with open(path) as f:
      config = json.load(f)
    config["num_steps"] = num_steps
    with open(path, "w") as f:
      json.dump(config, f)
  return str(destination)


class TestReport:

  @pytest.mark.slow
  def test_complete_run(self, test_run):
    path = report.write_report(test_run)
    assert path == os.path.join(test_run, "report.html")
    with open(path, encoding="utf-8") as f:
      document = f.read()
    parser, images = parse_report(document)
    assert parser.headings == [
        "Config", "Data source", "Training curves", "Reconstructions",
        "Latent traversals", "KL per latent dimension",
        "Disentanglement metrics", "Library versions"]
    # Curves, reconstructions, traversal grid, KL bars, score bars.
    assert len(images["image/png"]) == 5
    gifs = images["image/gif"]
    assert len(gifs) >= 1  # One per active dimension, or the top one.
    # Forward and back: 2 * 17 - 2 frames.
    assert gifs[0].n_frames == 2 * len(animation.DEFAULT_GIF_VALUES) - 2
    for name in ("mig", "modularity/modularity", "sizes_preset",
                 "factor_vae", "jax", "matplotlib", "procedural"):
      assert name in document
    # A :test model after 10 steps has no active latent; the report says so.
    assert not any("Partial run" in m for m in parser.missing)

  @pytest.mark.slow
  def test_run_without_results(self, test_run, tmp_path):
    workdir = partial_copy(test_run, tmp_path / "run", remove=["results.json"],
                           num_steps=40)
    parser, images = parse_report(report.build_report(workdir))
    warnings = " ".join(parser.missing)
    assert "missing results.json" in warnings
    assert f"trained {NUM_STEPS} of 40 steps" in warnings
    assert "python -m experiments.evaluate" in warnings
    assert "image/gif" in images and "image/png" in images
    # The periodic evaluation logged during training stands in.
    assert "Latest periodic evaluation" in report.build_report(workdir)

  @pytest.mark.slow
  def test_run_without_checkpoint_uses_training_pictures(self, test_run,
                                                         tmp_path):
    workdir = partial_copy(test_run, tmp_path / "run",
                           remove=["results.json", "checkpoints"])
    parser, images = parse_report(report.build_report(workdir))
    warnings = " ".join(parser.missing)
    assert "checkpoints/" in warnings and "No model could be loaded" in warnings
    # Training's reconstruction and traversal PNGs, curves, logged KL.
    assert len(images["image/png"]) == 4
    assert "image/gif" not in images

  def test_empty_workdir_is_refused_and_a_started_one_lists_the_rest(
      self, tmp_path):
    # Nothing of a run: the user pointed at the wrong folder.
    with pytest.raises(FileNotFoundError, match="holds no training run"):
      report.build_report(tmp_path)
    # A run that has only just started: the report says what is missing.
    (tmp_path / "config.json").write_text(json.dumps(
        run_config.config_to_dict(factorvae_dsprites.get_config("test"))))
    parser, images = parse_report(report.build_report(tmp_path))
    warnings = " ".join(parser.missing)
    for name in ("metrics.jsonl", "results.json", "checkpoints/"):
      assert name in warnings
    assert not images

  def test_missing_workdir_names_it(self, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
      report.build_report(tmp_path / "nowhere")

  @pytest.mark.slow
  def test_command_line(self, test_run, tmp_path):
    workdir = partial_copy(test_run, tmp_path / "run",
                           remove=["checkpoints"])
    output = tmp_path / "out" / "r.html"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = conftest.SINGLE_DEVICE_XLA_FLAGS
    result = subprocess.run(
        [sys.executable, "-m", "experiments.report", f"--workdir={workdir}",
         f"--output={output}"], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Wrote {output}" in result.stdout
    parse_report(output.read_text(encoding="utf-8"))


class TestRunFiles:

  def test_read_metrics_tolerates_a_partial_line_and_non_finite(self,
                                                                tmp_path):
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 10, "time": 1.0, "loss": 3.0, "kl": "NaN"}\n'
        '{"step": 5, "loss": 4.0, "kl_per_dim/0": 0.5, "kl_per_dim/1": 0.1}\n'
        '{"step": 10, "eval/mig": 0.2}\n'
        '{"step": 15, "loss": 2.')
    records = run_files.read_metrics(tmp_path)
    assert [r["step"] for r in records] == [5, 10]
    assert records[1]["loss"] == 3.0 and math.isnan(records[1]["kl"])
    assert records[1]["eval/mig"] == 0.2 and "time" not in records[1]
    np.testing.assert_allclose(run_files.last_kl_per_dim(records), [0.5, 0.1])
    assert run_files.last_scores(records) == (10, {"mig": 0.2})
    steps, values = run_files.metric_series(records, "loss")
    np.testing.assert_array_equal(steps, [5, 10])
    np.testing.assert_array_equal(values, [4.0, 3.0])

  def test_bad_json_names_the_file(self, tmp_path):
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(ValueError, match="results.json"):
      run_files.read_json(tmp_path / "results.json")

  @pytest.mark.slow
  def test_collect_runs(self, test_run, tmp_path):
    sweep = tmp_path / "sweep"
    partial_copy(test_run, sweep / "a" / "0")
    partial_copy(test_run, sweep / "b", remove=["results.json"])
    (sweep / "c").mkdir()
    shutil.copy(os.path.join(test_run, "config.json"), sweep / "c")
    (sweep / "c" / "results.json").write_text("{")
    study = run_files.collect_runs(sweep)
    assert [r["name"] for r in study.rows] == ["a/0"]
    row = study.rows[0]
    assert row["model"] == "factor_vae" and row["gamma"] == 35.0
    assert row["step"] == NUM_STEPS and row["seed"] == 0
    assert "mig" in row and row["reconstruction"] > 0
    assert study.hparam_names == ["gamma"] and "mig" in study.score_names
    assert study.missing == [("b", "no results.json")]
    assert len(study.broken) == 1 and "results.json" in study.broken[0][0]
    # Periodic evaluations of the run (every 5 steps).
    assert [step for step, _ in study.history["a/0"]] == [5, 10]
    with pytest.raises(FileNotFoundError, match="no training workdir"):
      run_files.collect_runs(sweep / "a" / "0" / "images")


def _toy_decode(codes):
  """A bright square whose brightness follows code[0]: [M, 8, 8, 1]."""
  codes = np.asarray(codes)
  images = np.zeros((len(codes), 8, 8, 1), np.float32)
  images[:, 2:6, 2:6, 0] = 1.0 / (1.0 + np.exp(-codes[:, :1, None]))
  return images


class TestAnimationAndExplore:

  def test_traversal_frames_and_gif(self, tmp_path):
    frames = animation.make_traversal_frames(
        _toy_decode, np.zeros((3, 2)), dim=0, values=[-3.0, 0.0, 3.0])
    assert frames.shape == (3, 12, 32, 3) and frames.dtype == np.uint8
    # Frame brightness follows the traversed value.
    means = frames[:, 4:8, 4:8].mean(axis=(1, 2, 3))
    assert means[0] < means[1] < means[2]
    path = animation.save_gif(tmp_path / "t.gif", frames)
    with Image.open(path) as gif:
      assert gif.n_frames == 4  # 0, 1, 2, then 1 on the way back.
    with pytest.raises(ValueError, match="dim=2"):
      animation.make_traversal_frames(_toy_decode, np.zeros((1, 2)), dim=2)
    with pytest.raises(ValueError, match="uint8"):
      animation.gif_bytes(frames.astype(np.float32))

  def test_active_dims(self):
    assert explore.active_dims([0.01, 2.0, np.nan, 0.5], 0.05) == [1, 3]
    assert explore.active_dims([0.0, 0.0]) == []

  def test_load_images_converts_size_and_channels(self, tmp_path):
    colour = np.zeros((30, 40, 3), np.uint8)
    colour[:, :20] = 255
    Image.fromarray(colour).save(tmp_path / "c.png")
    images = explore.load_images(
        [tmp_path / "c.png", np.ones((64, 64)), Image.fromarray(colour)],
        (64, 64, 1))
    assert images.shape == (3, 64, 64, 1) and images.dtype == np.float32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert images[0, :, :20].mean() > 0.9 and images[0, :, 44:].mean() < 0.1
    with pytest.raises(FileNotFoundError, match="nope.png"):
      explore.load_images([tmp_path / "nope.png"], (64, 64, 1))

  def test_walk_and_edit(self):

    class Toy:
      encode = staticmethod(lambda x: (x.reshape(len(x), -1)[:, :2] * 4 - 2,
                                       np.zeros((len(x), 2))))
      decode = staticmethod(_toy_decode)

    images = np.stack([np.zeros((8, 8, 1)), np.ones((8, 8, 1))])
    grid = explore.make_walk_grid(Toy, images, num_steps=5)
    assert grid.shape == (12, 52, 3)
    edited = explore.decode_edited(Toy, [0.0, 0.0], {0: 5.0})
    assert edited.shape == (8, 8, 1) and edited.max() > 0.99
    with pytest.raises(ValueError, match="dimension 7"):
      explore.decode_edited(Toy, [0.0, 0.0], {7: 1.0})


class TestPlots:

  def test_figures_render(self):
    records = [{"step": s, "loss": 10.0 / s, "kl": 1.0} for s in (1, 2, 3)]
    results = {"scores": {"mig": 0.3, "sap": 0.1,
                          "factor_vae/num_active_dims": 4.0}}
    figures = [
        plots.plot_training_curves({"a": records, "b": records[:2]}),
        plots.plot_kl_per_dim({"a": [0.1, 2.0], "b": [1.0, 0.0]}, 0.05),
        plots.plot_scores({"a": results, "b": results}),
        plots.plot_images({"x": np.zeros((4, 6, 3), np.uint8)}),
    ]
    for figure in figures:
      with Image.open(io.BytesIO(plots.figure_to_png(figure))) as png:
        assert png.width > 100
    # Counts are not drawn with scores.
    labels = [t.get_text() for t in figures[2].axes[0].get_yticklabels()]
    assert labels == ["mig", "sap"]

  def test_errors_name_the_problem(self):
    with pytest.raises(ValueError, match="log_every_steps"):
      plots.plot_training_curves([{"step": 1, "other": 1.0}])
    with pytest.raises(ValueError, match="evaluate"):
      plots.plot_scores({"scores": {}})
    with pytest.raises(ValueError, match="empty"):
      plots.plot_images({})


def test_html_table_escapes():
  table = report.html_table(["a<b"], [["<script>", 1.23456]])
  assert "<script>" not in table and "&lt;script&gt;" in table
  assert '<td class="num">1.235</td>' in table
