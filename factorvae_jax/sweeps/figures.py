"""The study figures of a sweep, as PNG files (matplotlib, no display needed).

1. ``metrics_vs_hparam.png``: each metric against the hyperparameter, one
   column per model, box plots over seeds (Locatello et al. 2019, Fig. 6).
2. ``reconstruction_vs_factor_vae.png``: reconstruction error against the
   FactorVAE metric, one point per run (Kim & Mnih 2018, Fig. 8).
3. ``rank_correlation.png``: Spearman rank correlation between the metrics
   over all runs (Locatello et al. 2019, Fig. 2).
4. ``metrics_vs_step.png``: each metric against the training step, from the
   periodic evaluations, one line per run.
5. ``rank_correlation_all_metrics.png``: Spearman rank correlation between
   every metric of the study (``study_metrics``: each score column but
   training-set accuracies, counts and per-factor details) over all runs
   (Locatello et al. 2019, Fig. 2 with every score).
6. ``udr_vs_supervised.png``: each UDR score (``experiments.udr``) against
   each supervised metric, one point per run, the Spearman rank correlation
   in the legend (Duan et al. 2020, Fig. 3).
"""

from __future__ import annotations

import math
import os
import re
import warnings

import matplotlib

matplotlib.use("Agg")  # Files only: works on machines without a display.
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np
from scipy import stats

from factorvae_jax.sweeps.aggregate import SweepResults, hparam_label, value
from factorvae_jax.utils import run_dir

# One number per metric family, as in the papers' figures; the others stay in
# results.csv.
HEADLINE_METRICS = ("beta_vae/eval_accuracy", "factor_vae/eval_accuracy",
                    "mig", "dci/disentanglement", "modularity/modularity",
                    "sap", "unsupervised/gaussian_total_correlation")
FACTOR_VAE_METRIC = "factor_vae/eval_accuracy"
# The supervised scores UDR is compared with (those the runs have).
SUPERVISED_METRICS = ("beta_vae/eval_accuracy", "factor_vae/eval_accuracy",
                      "mig", "dci/disentanglement", "modularity/modularity",
                      "sap", "irs/IRS")
# Score columns that are details, not metrics of the study: counts,
# training-set accuracies, per-factor and per-pair entries, and the
# downstream/fairness summaries other than the papers' headline ones.
_DETAIL = re.compile(
    r"num_active_dims|train|factor_\d|pred\d|sens\d|min_test_accuracy|"
    r"fairness/.*:(max_(pred|sens)|mean_sens:mean_pred|mean_pred:max_sens)")
# Sequential colour maps: one per model, darker for later grid values.
_MODEL_CMAPS = ("Blues", "Oranges", "Greens", "Reds", "Purples", "Greys",
                "YlOrBr", "PuRd")


def _finite(values) -> np.ndarray:
  array = np.asarray(values, dtype=float)
  return array[np.isfinite(array)]


def _metrics(results: SweepResults) -> list[str]:
  """Headline metrics with at least one finite value, else every score."""
  def has_values(name):
    return _finite([value(r, name) for r in results.rows]).size > 0
  chosen = [m for m in HEADLINE_METRICS if has_values(m)]
  return chosen or [m for m in results.score_names if has_values(m)]


def _models(results: SweepResults) -> list[str]:
  return sorted({r["model"] for r in results.rows})


def _label_order(rows: list[dict], hparam_names: list[str]) -> list[str]:
  """The hyperparameter labels of ``rows`` in grid order (by value)."""
  ordered = sorted(rows, key=lambda r: [
      (0, r[k], "") if isinstance(r.get(k), (int, float)) else
      (1, 0, str(r.get(k))) for k in hparam_names])
  labels = []
  for row in ordered:
    label = hparam_label(row, hparam_names)
    if label not in labels:
      labels.append(label)
  return labels


def _save(fig, path: str) -> str:
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


def plot_metrics_vs_hparam(results: SweepResults, path: str) -> str:
  """Figure 1: box plots over seeds of each metric per grid value."""
  metrics, models = _metrics(results), _models(results)
  fig, axes = plt.subplots(len(metrics), len(models), squeeze=False,
                           figsize=(3.2 * len(models), 2.4 * len(metrics)))
  for j, model in enumerate(models):
    rows = [r for r in results.rows if r["model"] == model]
    labels = _label_order(rows, results.hparam_names)
    for i, metric in enumerate(metrics):
      ax = axes[i][j]
      groups = [_finite([value(r, metric) for r in rows
                         if hparam_label(r, results.hparam_names) == label])
                for label in labels]
      ax.boxplot(groups, showfliers=True)
      ax.set_xticks(range(1, len(labels) + 1), labels, rotation=45,
                    ha="right", fontsize=7)
      if i == 0:
        ax.set_title(model)
      if j == 0:
        ax.set_ylabel(metric, fontsize=8)
  fig.suptitle("Metrics against the hyperparameter (spread over seeds)")
  fig.tight_layout()
  return _save(fig, path)


def _run_colours(results: SweepResults) -> dict[tuple[str, str], tuple]:
  """(model, hparam label) -> colour: hue by model, shade by grid value."""
  colours = {}
  for k, model in enumerate(_models(results)):
    cmap = plt.get_cmap(_MODEL_CMAPS[k % len(_MODEL_CMAPS)])
    rows = [r for r in results.rows if r["model"] == model]
    labels = _label_order(rows, results.hparam_names)
    for n, label in enumerate(labels):
      # Light to dark over the grid; a model with one value gets a mid shade
      # (the darkest shades of every hue look alike).
      shade = (0.7 if len(labels) == 1 else
               0.4 + 0.55 * n / (len(labels) - 1))
      colours[(model, label)] = cmap(shade)
  return colours


def plot_tradeoff(results: SweepResults, path: str) -> str:
  """Figure 2: reconstruction error against the FactorVAE metric."""
  fig, ax = plt.subplots(figsize=(7, 5))
  for (model, label), colour in _run_colours(results).items():
    rows = [r for r in results.rows if r["model"] == model and
            hparam_label(r, results.hparam_names) == label]
    ax.scatter([value(r, FACTOR_VAE_METRIC) for r in rows],
               [value(r, "reconstruction") for r in rows],
               color=colour, label=f"{model} {label}", s=25,
               edgecolors="black", linewidths=0.3)
  ax.set_xlabel("FactorVAE metric (eval accuracy)")
  ax.set_ylabel("reconstruction error (nats per image, end of training)")
  ax.set_title("Reconstruction against disentanglement, one point per run")
  ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
  return _save(fig, path)


def rank_correlation(results: SweepResults, names: list[str]) -> np.ndarray:
  """Spearman correlation of each pair of columns over the runs with both."""
  columns = [np.array([value(r, n) for r in results.rows], float)
             for n in names]
  matrix = np.full((len(names), len(names)), math.nan)
  for i, a in enumerate(columns):
    for j, b in enumerate(columns):
      both = np.isfinite(a) & np.isfinite(b)
      if both.sum() < 3:
        continue
      with warnings.catch_warnings():
        # A constant column has no ranks to correlate; NaN says so.
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        matrix[i, j] = stats.spearmanr(a[both], b[both]).statistic
  return matrix


def plot_rank_correlation(results: SweepResults, path: str) -> str:
  """Figure 3: heat map of the Spearman rank correlations."""
  names = _metrics(results) + ["reconstruction"]
  matrix = rank_correlation(results, names)
  fig, ax = plt.subplots(figsize=(1.0 * len(names) + 2, 0.9 * len(names) + 1))
  image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
  ax.set_xticks(range(len(names)), names, rotation=45, ha="right",
                fontsize=8)
  ax.set_yticks(range(len(names)), names, fontsize=8)
  for i in range(len(names)):
    for j in range(len(names)):
      text = "n/a" if math.isnan(matrix[i, j]) else f"{matrix[i, j]:.2f}"
      ax.text(j, i, text, ha="center", va="center", fontsize=7)
  fig.colorbar(image, ax=ax, label="Spearman rank correlation")
  ax.set_title(f"Rank correlation over {len(results.rows)} runs")
  return _save(fig, path)


def plot_metrics_vs_step(results: SweepResults, path: str) -> str:
  """Figure 4: the periodic evaluations against the training step."""
  names = sorted({m for h in results.history.values() for _, e in h
                  for m in e})
  metrics = [m for m in HEADLINE_METRICS if m in names] or names
  models = _models(results)
  colours = {m: plt.get_cmap("tab10")(k % 10) for k, m in enumerate(models)}
  fig, axes = plt.subplots(len(metrics), 1, squeeze=False,
                           figsize=(7, 2.4 * len(metrics)))
  model_of = {r["name"]: r["model"] for r in results.rows}
  for i, metric in enumerate(metrics):
    ax = axes[i][0]
    for name, history in results.history.items():
      points = [(s, e[metric]) for s, e in history if metric in e]
      if points:
        steps, values = zip(*points)
        ax.plot(steps, values, color=colours[model_of[name]], alpha=0.6,
                marker=".", linewidth=1)
    ax.set_ylabel(metric, fontsize=8)
  axes[-1][0].set_xlabel("training step")
  for model in models:
    axes[0][0].plot([], [], color=colours[model], label=model)
  axes[0][0].legend(fontsize=7)
  fig.suptitle("Periodic evaluations during training, one line per run")
  fig.tight_layout()
  return _save(fig, path)


def study_metrics(results: SweepResults) -> list[str]:
  """Every score column of the study but the details (see ``_DETAIL``)."""
  return [name for name in results.score_names
          if not _DETAIL.search(name) and
          _finite([value(r, name) for r in results.rows]).size > 0]


def plot_all_metrics_rank_correlation(results: SweepResults,
                                      path: str) -> str:
  """Figure 5: Spearman rank correlation of every metric of the study."""
  names = study_metrics(results)
  matrix = rank_correlation(results, names)
  size = 0.45 * len(names) + 3
  fig, ax = plt.subplots(figsize=(size + 1, size))
  image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
  ax.set_xticks(range(len(names)), names, rotation=60, ha="right",
                fontsize=6)
  ax.set_yticks(range(len(names)), names, fontsize=6)
  for i in range(len(names)):
    for j in range(len(names)):
      if not math.isnan(matrix[i, j]):
        ax.text(j, i, f"{matrix[i, j]:.1f}".replace("0.", "."),
                ha="center", va="center", fontsize=5)
  fig.colorbar(image, ax=ax, label="Spearman rank correlation", shrink=0.8)
  ax.set_title(f"Rank correlation of every metric over "
               f"{len(results.rows)} runs (blank: fewer than 3 runs with "
               f"both)", fontsize=9)
  return _save(fig, path)


def udr_metrics(results: SweepResults) -> list[str]:
  """The UDR score columns some run has (``udr/lasso``, ``udr/spearman``)."""
  return [name for name in results.score_names
          if name.startswith(run_dir.UDR_SCORE_PREFIX) and
          _finite([value(r, name) for r in results.rows]).size > 0]


def plot_udr_vs_supervised(results: SweepResults, path: str) -> str:
  """Figure 6: each UDR score against each supervised metric."""
  udrs = udr_metrics(results)
  supervised = [m for m in SUPERVISED_METRICS
                if _finite([value(r, m) for r in results.rows]).size > 0]
  models = _models(results)
  colours = {m: plt.get_cmap("tab10")(k % 10) for k, m in enumerate(models)}
  fig, axes = plt.subplots(len(udrs), len(supervised), squeeze=False,
                           figsize=(3.2 * len(supervised), 3.0 * len(udrs)))
  for i, udr in enumerate(udrs):
    for j, metric in enumerate(supervised):
      ax = axes[i][j]
      for model in models:
        rows = [r for r in results.rows if r["model"] == model]
        ax.scatter([value(r, udr) for r in rows],
                   [value(r, metric) for r in rows], color=colours[model],
                   s=18, edgecolors="black", linewidths=0.3)
      rho = rank_correlation(results, [udr, metric])[0, 1]
      both = sum(math.isfinite(value(r, udr)) and
                 math.isfinite(value(r, metric)) for r in results.rows)
      ax.plot([], [], " ", label=(f"Spearman {rho:.2f} ({both} runs)"
                                  if math.isfinite(rho) else
                                  f"Spearman n/a ({both} runs)"))
      ax.legend(fontsize=7, loc="best", handlelength=0)
      ax.set_xlabel(udr, fontsize=8)
      ax.set_ylabel(metric, fontsize=8)
  for model in models:
    axes[0][-1].scatter([], [], color=colours[model], label=model)
  handles, labels = axes[0][-1].get_legend_handles_labels()
  fig.legend(handles[1:], labels[1:], fontsize=7, loc="upper right")
  fig.suptitle("UDR (unsupervised) against the supervised metrics, one "
               "point per run")
  fig.tight_layout()
  return _save(fig, path)


def write_figures(results: SweepResults, out_dir: str
                  ) -> tuple[list[str], list[str]]:
  """Writes every figure the data allows.

  Returns:
    (paths written, reasons for the figures skipped).
  """
  written, skipped = [], []
  if not results.rows:
    return written, ["no finished runs: no figures"]
  if not _metrics(results):
    return written, ["no run has a finite score: no figures"]
  os.makedirs(out_dir, exist_ok=True)
  written.append(plot_metrics_vs_hparam(
      results, os.path.join(out_dir, "metrics_vs_hparam.png")))
  if any(math.isfinite(value(r, FACTOR_VAE_METRIC)) for r in
         results.rows):
    written.append(plot_tradeoff(
        results, os.path.join(out_dir, "reconstruction_vs_factor_vae.png")))
  else:
    skipped.append(f"reconstruction_vs_factor_vae.png: no run has "
                   f"{FACTOR_VAE_METRIC} (add 'factor_vae' to "
                   f"config.final_eval_metrics)")
  written.append(plot_rank_correlation(
      results, os.path.join(out_dir, "rank_correlation.png")))
  if any(results.history.values()):
    written.append(plot_metrics_vs_step(
        results, os.path.join(out_dir, "metrics_vs_step.png")))
  else:
    skipped.append("metrics_vs_step.png: no periodic evaluations (set "
                   "config.eval_every_steps)")
  written.append(plot_all_metrics_rank_correlation(
      results, os.path.join(out_dir, "rank_correlation_all_metrics.png")))
  if udr_metrics(results):
    written.append(plot_udr_vs_supervised(
        results, os.path.join(out_dir, "udr_vs_supervised.png")))
  else:
    skipped.append("udr_vs_supervised.png: no run has a UDR score (run "
                   "python -m experiments.udr --sweep_dir=<dir> first)")
  return written, skipped
