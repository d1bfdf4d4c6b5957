"""Matplotlib figures of a run: training curves, per-dimension KL, scores.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so the
same functions serve a notebook (``display(fig)``) and the HTML report
(:func:`figure_to_png`). Every function takes runs as a mapping
``{run name: data}`` so one call draws one run or several side by side.
"""

from __future__ import annotations

import io
import math
from typing import Mapping, Optional, Sequence

from matplotlib.figure import Figure
import numpy as np

from factorvae_jax.reporting import run_files
from factorvae_jax.utils import run_dir

# Scalars of metrics.jsonl drawn by default, in this order, when logged.
DEFAULT_CURVES = ("loss", "reconstruction", "kl", "tc_estimate",
                  "disc_accuracy")


def as_runs(data, default_name: str = "run") -> dict:
  """``data`` as ``{run name: data}``; one run's data becomes a single run.

  One run's data is anything but a mapping, or a ``results.json`` dict (a
  mapping with a ``'scores'`` key).
  """
  if isinstance(data, Mapping) and "scores" not in data:
    return dict(data)
  return {default_name: data}


def plot_training_curves(records, names: Sequence[str] = DEFAULT_CURVES,
                         num_cols: int = 3) -> Figure:
  """One panel per logged scalar, one line per run.

  Args:
    records: ``read_metrics(workdir)`` of one run, or ``{run name: records}``
      to overlay several runs.
    names: scalars to draw; those no run logged are left out.
    num_cols: panels per row.

  Returns:
    The figure.

  Raises:
    ValueError: if no run logged any of ``names`` (e.g. an empty
      metrics.jsonl: train for at least ``log_every_steps`` steps first).
  """
  runs = as_runs(records)
  present = [n for n in names
             if any(n in r for recs in runs.values() for r in recs)]
  if not present:
    raise ValueError(
        f"none of the scalars {list(names)} was logged by runs "
        f"{sorted(runs)}; train for at least log_every_steps steps, or pass "
        f"names= from the keys of {run_dir.METRICS}.")
  num_cols = max(1, min(num_cols, len(present)))
  num_rows = math.ceil(len(present) / num_cols)
  fig = Figure(figsize=(4.2 * num_cols, 3.0 * num_rows), layout="constrained")
  axes = fig.subplots(num_rows, num_cols, squeeze=False).ravel()
  for ax, name in zip(axes, present):
    for run_name, recs in runs.items():
      steps, values = run_files.metric_series(recs, name)
      if len(steps):
        ax.plot(steps, values, label=run_name, linewidth=1.2)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if name in ("loss", "reconstruction") and _positive(ax):
      ax.set_yscale("log")
  for ax in axes[len(present):]:
    ax.set_visible(False)
  if len(runs) > 1:
    axes[0].legend(fontsize="small")
  return fig


def _positive(ax) -> bool:
  """Whether every plotted value on ``ax`` is finite and positive."""
  ys = [np.asarray(line.get_ydata(), float) for line in ax.get_lines()]
  return bool(ys) and all(np.isfinite(y).all() and (y > 0).all() for y in ys)


def plot_kl_per_dim(kl_per_dim, threshold: Optional[float] = None,
                    title: str = "KL(q(z_d|x) || N(0, 1)) per latent dimension"
                    ) -> Figure:
  """Bar plot of the mean KL of each latent dimension.

  Args:
    kl_per_dim: a [D] array (one run), or ``{run name: [D] array}`` for
      grouped bars of several runs.
    threshold: if given, a dashed line at this KL (the ``active_dims``
      threshold).
    title: figure title.

  Returns:
    The figure.

  Raises:
    ValueError: if an array is not one-dimensional.
  """
  runs = {name: np.asarray(kl, float) for name, kl in as_runs(
      kl_per_dim, "KL").items()}
  for name, kl in runs.items():
    if kl.ndim != 1 or kl.size == 0:
      raise ValueError(f"kl_per_dim of {name!r} must be a non-empty [D] "
                       f"array, got shape {kl.shape}.")
  latent_dim = max(kl.size for kl in runs.values())
  fig = Figure(figsize=(max(4.0, 0.45 * latent_dim * len(runs) + 1.5), 3.0),
               layout="constrained")
  ax = fig.subplots()
  width = 0.8 / len(runs)
  for i, (name, kl) in enumerate(runs.items()):
    x = np.arange(kl.size) + (i - (len(runs) - 1) / 2) * width
    ax.bar(x, np.nan_to_num(kl), width=width, label=name)
  if threshold is not None:
    ax.axhline(threshold, color="k", linestyle="--", linewidth=0.8,
               label=f"active threshold {threshold:g}")
  ax.set_xticks(np.arange(latent_dim))
  ax.set_xlabel("latent dimension")
  ax.set_ylabel("nats")
  ax.set_title(title, fontsize="medium")
  if len(runs) > 1 or threshold is not None:
    ax.legend(fontsize="small")
  return fig


def plot_scores(results, metric_names: Optional[Sequence[str]] = None
                ) -> Figure:
  """Horizontal bars of the disentanglement scores of one or more runs.

  Args:
    results: a ``results.json`` dict, or ``{run name: results dict}``.
    metric_names: scores to draw (default: every numeric score of any run,
      sorted).

  Returns:
    The figure.

  Raises:
    ValueError: if there is no numeric score to draw.
  """
  runs = as_runs(results)
  if metric_names is None:
    # Counts (e.g. factor_vae/num_active_dims) are not on the scores' scale.
    metric_names = sorted({k for r in runs.values()
                           for k, v in r.get("scores", {}).items()
                           if _is_number(v) and "/num_" not in k})
  if not metric_names:
    raise ValueError(f"runs {sorted(runs)} have no numeric score to plot; "
                     "evaluate them first (evaluate_workdir).")
  fig = Figure(figsize=(7.0, 0.28 * len(metric_names) * len(runs) + 1.2),
               layout="constrained")
  ax = fig.subplots()
  height = 0.8 / len(runs)
  y = np.arange(len(metric_names))
  for i, (name, result) in enumerate(runs.items()):
    scores = result.get("scores", {})
    values = [float(scores[m]) if _is_number(scores.get(m)) else np.nan
              for m in metric_names]
    ax.barh(y + (i - (len(runs) - 1) / 2) * height, values, height=height,
            label=name)
  ax.set_yticks(y)
  ax.set_yticklabels(metric_names, fontsize="small")
  ax.invert_yaxis()
  ax.grid(axis="x", alpha=0.3)
  if len(runs) > 1:
    ax.legend(fontsize="small")
  return fig


def _is_number(value) -> bool:
  return isinstance(value, (int, float, np.number)) and not isinstance(
      value, bool)


def plot_images(images: Mapping[str, np.ndarray], num_cols: int = 2,
                width: float = 5.0) -> Figure:
  """Pictures side by side with titles, e.g. two runs' traversal grids.

  Args:
    images: ``{title: uint8 [H, W, 3] (or [H, W]) image}``.
    num_cols: panels per row.
    width: width of one panel in inches.

  Returns:
    The figure.

  Raises:
    ValueError: if ``images`` is empty.
  """
  if not images:
    raise ValueError("images is empty: give at least one {title: image}.")
  num_cols = max(1, min(num_cols, len(images)))
  num_rows = math.ceil(len(images) / num_cols)
  aspect = max(np.shape(im)[0] / np.shape(im)[1] for im in images.values())
  fig = Figure(figsize=(width * num_cols, width * aspect * num_rows + 0.4),
               layout="constrained")
  axes = fig.subplots(num_rows, num_cols, squeeze=False).ravel()
  for ax, (title, image) in zip(axes, images.items()):
    ax.imshow(np.asarray(image), cmap="gray", interpolation="nearest")
    ax.set_title(title, fontsize="medium")
  for ax in axes:
    ax.axis("off")
  return fig


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
  """Renders a figure to PNG bytes (for files and the HTML report)."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=dpi)
  return buffer.getvalue()
