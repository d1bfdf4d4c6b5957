"""A run's visual report: one self-contained HTML file (images inlined).

``write_report(workdir)`` writes ``<workdir>/report.html`` with the config,
data source, training curves, reconstructions, one animated traversal per
active latent dimension, the per-dimension KL, the metric table with the
settings it used and the library versions. A partial run (no results.json, no
checkpoint yet) still gets a report that says what is missing.

The HTML tables here are also what the notebooks display.
"""

from __future__ import annotations

import base64
import datetime
import html
import importlib.metadata
import io
import json
import os
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from factorvae_jax.evaluation.evaluate import library_versions as evaluation_versions
from factorvae_jax.utils import errors
from factorvae_jax.utils import run_dir
from factorvae_jax.utils.files import write_atomically
from factorvae_jax.visualisation import animation
from factorvae_jax.reporting import explore
from factorvae_jax.reporting import plots
from factorvae_jax.reporting import run_files

# Dataset images the per-dimension KL is averaged over.
NUM_KL_IMAGES = 256
# Packages that draw the report (the evaluation's own are in results.json).
_REPORT_PACKAGES = ("matplotlib", "pillow")

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
td.num { text-align: right; font-family: monospace; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
.missing { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; }
figcaption { font-size: 0.85em; color: #555; }
img.pixels { image-rendering: pixelated; }
"""


def _format_value(value) -> str:
  if value is None:
    return ""
  if isinstance(value, float):
    return f"{value:.4g}"
  if isinstance(value, (list, tuple, dict)):
    return json.dumps(value)
  return str(value)


def html_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  """An HTML table; numbers are right-aligned, everything is escaped.

  Args:
    header: column titles.
    rows: cells, one sequence per row (floats shown with 4 significant
      digits).

  Returns:
    The ``<table>`` element as a string.
  """
  head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
  body = []
  for row in rows:
    cells = []
    for cell in row:
      numeric = isinstance(cell, (int, float, np.number)) and not isinstance(
          cell, bool)
      cls = ' class="num"' if numeric else ""
      cells.append(f"<td{cls}>{html.escape(_format_value(cell))}</td>")
    body.append("<tr>" + "".join(cells) + "</tr>")
  return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def scores_table_html(results) -> str:
  """The scores of one or more runs as an HTML table (metrics x runs).

  Args:
    results: a ``results.json`` dict, or ``{run name: results dict}`` for
      one column per run.

  Returns:
    The ``<table>`` element as a string.
  """
  runs = plots.as_runs(results, "score")
  names = sorted({k for r in runs.values() for k in r.get("scores", {})})
  rows = [[name] + [r.get("scores", {}).get(name, "") for r in runs.values()]
          for name in names]
  return html_table(["metric"] + list(runs), rows)


def _data_uri(data: bytes, mime: str) -> str:
  return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_bytes(image) -> bytes:
  """A uint8 image ([H, W] or [H, W, 3]) as PNG file bytes."""
  buffer = io.BytesIO()
  Image.fromarray(np.asarray(image)).save(buffer, format="PNG")
  return buffer.getvalue()


def _img(data: bytes, mime: str, caption: str, scale: int = 1) -> str:
  """An inlined image with a caption; ``scale`` enlarges small pixel art."""
  attributes = ""
  if scale > 1:
    with Image.open(io.BytesIO(data)) as opened:
      attributes = f' class="pixels" width="{opened.width * scale}"'
  return (f'<figure><img src="{_data_uri(data, mime)}"{attributes} '
          f'alt="{html.escape(caption)}"><figcaption>{html.escape(caption)}'
          "</figcaption></figure>")


def _section(title: str, body: str) -> str:
  return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def _missing(text: str) -> str:
  return f'<p class="missing">{html.escape(text)}</p>'


def _pre_json(payload) -> str:
  return f"<pre>{html.escape(json.dumps(payload, indent=2, sort_keys=True))}</pre>"


def _load_model(workdir: str, step: Optional[int]):
  """The trained model, or (None, why not) when there is no checkpoint."""
  # Imported here: the builder pulls in JAX and the networks, which the
  # plotting helpers of this package do not need.
  from factorvae_jax import builder  # pylint: disable=g-import-not-at-top
  try:
    return builder.load_trained_model(workdir, step=step), None
  except FileNotFoundError as e:
    return None, str(e)


def _model_sections(model, config: dict, num_images: int, num_traversed: int,
                    kl_threshold: float, max_gifs: Optional[int]) -> dict:
  """Reconstructions, traversal GIFs and KL of the loaded model."""
  seed = int(config.get("eval_seed", 0)) if config else 0
  kl_images = model.dataset.sample_observations(
      max(num_images, NUM_KL_IMAGES), np.random.RandomState(seed))
  images = kl_images[:num_images]
  pictures = explore.model_pictures(model, images, num_traversed,
                                    kl_images=kl_images)
  kl = pictures["kl_per_dim"]
  scale = 2 if images.shape[1] <= 64 else 1
  recon = (f"<p>{num_images} images from the run's dataset (seed {seed}); "
           "inputs in the upper row of each pair, reconstructions (mean of "
           "q(z|x), decoded) below.</p>" +
           _img(png_bytes(pictures["reconstructions"]), "image/png",
                f"reconstructions at step {model.step}", scale))
  active = explore.active_dims(kl, kl_threshold)
  note = ""
  shown = active
  if not active:
    shown = [int(np.nanargmax(np.nan_to_num(kl, nan=-1.0)))]
    note = _missing(
        f"No latent dimension has a mean KL above {kl_threshold:g} nats: the "
        "representation carries (almost) no information yet. The "
        f"dimension with the highest KL ({shown[0]}) is shown anyway.")
  elif max_gifs is not None and len(active) > max_gifs:
    shown = active[:max_gifs]
    note = (f"<p>{len(active)} active dimensions; the {max_gifs} with the "
            "highest KL are shown.</p>")
  base = pictures["mean"][:num_traversed]
  gifs = animation.make_traversal_gifs(model.decode, base, shown)
  traversals = (
      f"<p>Active dimensions (KL &gt; {kl_threshold:g} nats), by decreasing "
      f"KL: {html.escape(str(active))}. Each animation sweeps one dimension "
      f"from {animation.DEFAULT_GIF_VALUES[0]:g} to "
      f"{animation.DEFAULT_GIF_VALUES[-1]:g} around the codes of the first "
      f"{len(base)} images.</p>" + note +
      "".join(_img(gif, "image/gif", f"latent {d} (KL {kl[d]:.3g} nats)",
                   scale) for d, gif in gifs.items()) +
      "<p>All dimensions (rows sorted by KL; a brighter green marker means "
      "a higher KL):</p>" +
      _img(png_bytes(pictures["traversals"]), "image/png",
           f"traversal grid at step {model.step}"))
  kl_html = (f"<p>Mean KL(q(z_d|x) || N(0, 1)) over {len(kl_images)} "
             f"images of the dataset (seed {seed}).</p>" +
             _img(plots.figure_to_png(plots.plot_kl_per_dim(
                 kl, threshold=kl_threshold)), "image/png",
                  "KL per latent dimension") +
             html_table(["dimension", "KL (nats)", "active"],
                        [[d, float(kl[d]), "yes" if d in active else "no"]
                         for d in range(len(kl))]))
  return {"reconstructions": recon, "traversals": traversals, "kl": kl_html}


def _image_file_sections(workdir: str, records: list, why: str,
                         kl_threshold: float) -> dict:
  """Without a checkpoint: the newest training PNGs and the logged KL."""
  found = run_files.latest_images(workdir)
  sections = {}
  for kind in ("reconstructions", "traversals"):
    if kind in found:
      step, path = found[kind]
      with open(path, "rb") as f:
        data = f.read()
      sections[kind] = (_missing(f"No model could be loaded ({why}); this is "
                                 f"the picture written during training.") +
                        _img(data, "image/png", f"{kind} at step {step}"))
    else:
      sections[kind] = _missing(
          f"No model could be loaded ({why}) and training wrote no {kind} "
          f"image yet.")
  kl = run_files.last_kl_per_dim(records)
  if kl is None:
    sections["kl"] = _missing(f"No per-dimension KL logged yet "
                              f"({run_dir.METRICS} has no kl_per_dim/* "
                              f"values).")
  else:
    sections["kl"] = (
        "<p>Last KL per dimension logged during training (training batch "
        "average).</p>" +
        _img(plots.figure_to_png(plots.plot_kl_per_dim(
            kl, threshold=kl_threshold)), "image/png",
             "KL per latent dimension"))
  return sections


def _metrics_section(workdir: str, results: Optional[dict],
                     records: list) -> str:
  if results is None:
    step, scores = run_files.last_scores(records)
    text = _missing(
        f"{run_dir.RESULTS} is missing: the final evaluation has not run. "
        f"Run python -m experiments.evaluate --workdir={workdir} (or let "
        "training finish).")
    if scores:
      text += (f"<p>Latest periodic evaluation during training (step {step}, "
               "config.periodic_eval_sizes sample sizes):</p>" +
               html_table(["metric", "score"], sorted(scores.items())))
    return text
  settings = results.get("settings", {})
  stage_seconds = results.get("stage_seconds", {})
  return (
      f"<p>Checkpoint step {results.get('checkpoint_step')}, "
      f"{html.escape(str(settings.get('sizes_preset', '?')))} sample sizes, "
      f"representation: {html.escape(str(settings.get('representation', '?')))}"
      f", {results.get('seconds', float('nan')):.1f} s.</p>" +
      _img(plots.figure_to_png(plots.plot_scores(results)), "image/png",
           "scores") +
      scores_table_html(results) +
      "<h3>Settings</h3>" +
      html_table(["setting", "value"], sorted(settings.items())) +
      ("<h3>Wall time per metric (s)</h3>" +
       html_table(["stage", "seconds"], sorted(stage_seconds.items()))
       if stage_seconds else ""))


def _versions_section(results: Optional[dict],
                      data_source: Optional[dict]) -> str:
  parts = []
  if results and results.get("versions"):
    parts.append(f"<p>Evaluation ({run_dir.RESULTS}):</p>" + html_table(
        ["package", "version"], sorted(results["versions"].items())))
  if data_source:
    training = {k: data_source[k] for k in ("jax_version", "python",
                                            "platform", "devices")
                if k in data_source}
    parts.append(f"<p>Training ({run_dir.DATA_SOURCE}):</p>" + html_table(
        ["item", "value"], sorted(training.items())))
  here = dict(evaluation_versions())
  for name in _REPORT_PACKAGES:
    try:
      here[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      pass
  parts.append("<p>This report:</p>" + html_table(["package", "version"],
                                                  sorted(here.items())))
  return "".join(parts)


def build_report(workdir, step: Optional[int] = None, num_images: int = 8,
                 num_traversed: int = 3,
                 kl_threshold: float = explore.DEFAULT_ACTIVE_KL,
                 max_gifs: Optional[int] = None) -> str:
  """The HTML report of a training workdir.

  Args:
    workdir: a directory written by ``train_and_evaluate`` (complete or
      partial).
    step: checkpoint step to draw (default: the newest).
    num_images: images drawn from the run's dataset for the reconstructions
      (the per-dimension KL uses at least ``NUM_KL_IMAGES``).
    num_traversed: how many of them the traversals start from.
    kl_threshold: KL in nats above which a latent dimension is active and
      gets an animated traversal.
    max_gifs: at most this many animations (default: one per active
      dimension).

  Returns:
    The HTML document.

  Raises:
    FileNotFoundError: if ``workdir`` does not exist or holds none of a
      training run's files.
  """
  workdir = os.path.abspath(os.fspath(workdir))
  if not os.path.isdir(workdir):
    raise errors.NothingToDoError(
        f"{workdir} is not a directory; pass the --workdir of a training "
        "run (python -m experiments.run --workdir=...).")
  if not run_dir.holds_anything(workdir):
    raise errors.NothingToDoError(
        f"{workdir} holds no training run (no {run_dir.CONFIG}, "
        f"{run_dir.METRICS} or {run_dir.CHECKPOINTS}/); pass the --workdir "
        "of a training run (python -m experiments.run --workdir=...).")
  config = run_dir.read_config(workdir)
  data_source = run_dir.read_data_source(workdir)
  results = run_dir.read_json(run_dir.results_path(workdir))
  records = run_files.read_metrics(workdir)
  missing = run_files.missing_run_files(workdir)

  model, why = _load_model(workdir, step)
  if model is not None:
    pictures = _model_sections(model, config, num_images, num_traversed,
                               kl_threshold, max_gifs)
  else:
    pictures = _image_file_sections(workdir, records, why, kl_threshold)

  trained = (model.step if model is not None else
             (records[-1]["step"] if records else 0))
  target = (config or {}).get("num_steps")
  model_name = ((config or {}).get("model") or {}).get("name", "?")
  now = datetime.datetime.now(datetime.timezone.utc)
  status = (f"<p>Model <b>{html.escape(str(model_name))}</b>, step "
            f"{trained} of {target if target is not None else '?'}. "
            f"Written {now:%Y-%m-%d %H:%M} UTC.</p>")
  if missing or (target is not None and trained < target):
    status += _missing(
        "Partial run: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else []) +
            ([f"trained {trained} of {target} steps"]
             if target is not None and trained < target else [])) + ".")

  if records:
    try:
      curves = _img(plots.figure_to_png(plots.plot_training_curves(records)),
                    "image/png", "training curves")
    except ValueError as e:
      curves = _missing(str(e))
  else:
    curves = _missing(f"{run_dir.METRICS} is missing or empty: nothing "
                      "logged yet.")

  body = "".join([
      f"<h1>Run report: {html.escape(workdir)}</h1>", status,
      _section("Config", _pre_json(config) if config is not None else
               _missing(f"{run_dir.CONFIG} is missing.")),
      _section("Data source", _pre_json(data_source) if data_source
               is not None else _missing(f"{run_dir.DATA_SOURCE} is missing.")),
      _section("Training curves", curves),
      _section("Reconstructions", pictures["reconstructions"]),
      _section("Latent traversals", pictures["traversals"]),
      _section("KL per latent dimension", pictures["kl"]),
      _section("Disentanglement metrics",
               _metrics_section(workdir, results, records)),
      _section("Library versions", _versions_section(results, data_source)),
  ])
  title = html.escape(f"{model_name}: {os.path.basename(workdir)}")
  return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
          f"<title>{title}</title><style>{_STYLE}</style></head>"
          f"<body>\n{body}</body></html>\n")


def write_report(workdir, output: Optional[str] = None, **kwargs) -> str:
  """Writes :func:`build_report` of ``workdir`` to a file atomically.

  Args:
    workdir: a training workdir.
    output: the HTML file (default ``<workdir>/report.html``).
    **kwargs: passed to :func:`build_report`.

  Returns:
    The path written.
  """
  document = build_report(workdir, **kwargs)
  output = output or run_dir.report_path(workdir)
  return write_atomically(output, lambda f: f.write(document))
