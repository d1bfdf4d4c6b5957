"""The metric table: one entry per metric the suite can run.

Each ``MetricSpec`` says how to run the metric (``run``), whether it reads
the suite's shared pool of encoded samples or samples its own batches
(``reads_pool``), and its sample sizes under every preset (``sizes``:
``"default"`` = disentanglement_lib's study settings, ``"cheap"`` for
periodic evaluation while training, ``"tiny"`` for tests and smoke runs).
Adding a metric is one entry in ``METRICS``; the suite, the size presets, the
config checks and the default metric set of an evaluation (every entry that
applies to the dataset, ``metric_names(data)``; training's final evaluation
unless ``config.final_eval_metrics`` names some) read this table, and
``get_metric`` looks an entry up.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from factorvae_jax.metrics import downstream
from factorvae_jax.metrics import fairness_metric
from factorvae_jax.metrics import intervention
from factorvae_jax.metrics import irs_metric
from factorvae_jax.metrics import supervised
from factorvae_jax.metrics import udr_metric
from factorvae_jax.metrics import unsupervised
from factorvae_jax.utils import errors

#: DCI's classifier implementations: sklearn's gradient boosting compiled
#: with numba (equal to sklearn bit for bit on codes without repeated
#: values), the JAX port, sklearn itself (the reference), or "auto": the port
#: when JAX's default device is an accelerator, else numba if installed (and
#: sklearn >= 1.9), else sklearn (docs/metrics.md, DCI).
DCI_BACKENDS = ("auto", "numba", "jax", "sklearn")
SIZE_PRESET_NAMES = ("default", "cheap", "tiny")


class MetricInputs(NamedTuple):
  """What a metric's ``run`` gets from the suite.

  Attributes:
    data: the GroundTruthData-like dataset.
    representation_fn: observations -> codes; for a metric that compares
      models (``MetricSpec.compares_models``), the list of every model's
      function, each observations -> (codes, KL per latent).
    seed: the evaluation seed (each sampling metric starts a fresh
      ``RandomState(seed)``, as dlib does).
    sizes: this metric's resolved sizes.
    pool: for pool metrics, the pool slices dlib's run would have drawn:
      ``(codes, factors)`` or ``(codes_train, factors_train, codes_test,
      factors_test)``; ``None`` for sampling metrics.
    options: the suite's keyword settings (``num_bins``, ``prune_threshold``,
      ``continuous_factors``, ``sample_batch_size``, ``chunk_size``,
      ``n_jobs``, ``dci_backend``; UDR: ``correlation_matrix``).
  """
  data: Any
  representation_fn: Callable[[np.ndarray], np.ndarray]
  seed: int
  sizes: Mapping[str, int]
  pool: tuple | None
  options: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class MetricSpec:
  """One metric of the suite.

  Attributes:
    run: ``MetricInputs -> {result key: value}`` (keys are the suite's
      result names, e.g. ``"dci/completeness"``).
    reads_pool: reads the shared pool (its sizes then hold ``num_train`` and
      optionally ``num_test``) instead of sampling for itself.
    sizes: ``{preset: {setting: value}}`` for every preset in
      ``SIZE_PRESET_NAMES``.
    minimums: settings whose smallest allowed value is above 1.
    compares_models: scores several models of one hyperparameter setting
      against each other (UDR) instead of one representation: the suite
      does not run it (``metric_names`` leaves it out); ``experiments.udr``
      does, over a sweep.
    min_factors: the fewest ground-truth factors a dataset needs for the
      metric to apply (``metric_names(data)``, the default metric set of an
      evaluation, leaves it out on datasets with fewer).
    in_smoke_runs: whether the ``:test`` configs' final evaluation runs it
      (False for the metrics that fit classifiers per factor and training
      size: there, seconds matter more than coverage).
  """
  run: Callable[[MetricInputs], dict]
  reads_pool: bool
  sizes: Mapping[str, Mapping[str, Any]]
  minimums: Mapping[str, int] = dataclasses.field(default_factory=dict)
  compares_models: bool = False
  min_factors: int = 1
  in_smoke_runs: bool = True


def _prefixed(name: str, scores: Mapping[str, Any]) -> dict:
  return {f"{name}/{key}": value for key, value in scores.items()}


def _run_mig(inputs: MetricInputs) -> dict:
  return {"mig": supervised.mig(*inputs.pool,
                                num_bins=inputs.options["num_bins"])}


def _run_dci(inputs: MetricInputs) -> dict:
  return _prefixed("dci", supervised.dci(
      *inputs.pool, n_jobs=inputs.options["n_jobs"], random_state=inputs.seed,
      backend=inputs.options["dci_backend"]))


def _run_sap(inputs: MetricInputs) -> dict:
  return {"sap": supervised.sap(
      *inputs.pool, continuous_factors=inputs.options["continuous_factors"],
      n_jobs=inputs.options["n_jobs"])}


def _run_modularity(inputs: MetricInputs) -> dict:
  return _prefixed("modularity", supervised.modularity_explicitness(
      *inputs.pool, num_bins=inputs.options["num_bins"],
      n_jobs=inputs.options["n_jobs"]))


def _run_unsupervised(inputs: MetricInputs) -> dict:
  return _prefixed("unsupervised", unsupervised.unsupervised_scores(
      inputs.pool[0], num_bins=inputs.options["num_bins"]))


def _run_beta_vae(inputs: MetricInputs) -> dict:
  return _prefixed("beta_vae", intervention.beta_vae_score(
      inputs.data, inputs.representation_fn,
      np.random.RandomState(inputs.seed),
      chunk_size=inputs.options["chunk_size"], **inputs.sizes))


def _run_factor_vae(inputs: MetricInputs) -> dict:
  scores = intervention.factor_vae_score(
      inputs.data, inputs.representation_fn,
      np.random.RandomState(inputs.seed),
      prune_threshold=inputs.options["prune_threshold"],
      chunk_size=inputs.options["chunk_size"], **inputs.sizes)
  return _prefixed("factor_vae", {k: float(v) for k, v in scores.items()})


def _run_irs(inputs: MetricInputs) -> dict:
  codes, factors = inputs.pool
  scores = irs_metric.irs_from_codes(codes, factors,
                              num_bins=inputs.options["num_bins"])
  return _prefixed("irs", {"IRS": scores["IRS"],
                           "num_active_dims": float(scores["num_active_dims"])})


def _downstream_runner(name: str, predictor: str):
  def run(inputs: MetricInputs) -> dict:
    return _prefixed(name, downstream.downstream_task(
        inputs.data, inputs.representation_fn,
        np.random.RandomState(inputs.seed),
        batch_size=inputs.options["sample_batch_size"], predictor=predictor,
        predictor_seed=inputs.seed, chunk_size=inputs.options["chunk_size"],
        n_jobs=inputs.options["n_jobs"],
        boosted_trees_backend=inputs.options["dci_backend"], **inputs.sizes))
  return run


def _run_fairness(inputs: MetricInputs) -> dict:
  return _prefixed("fairness", fairness_metric.fairness(
      inputs.data, inputs.representation_fn,
      np.random.RandomState(inputs.seed),
      batch_size=inputs.options["sample_batch_size"],
      predictor="gradient_boosting", predictor_seed=inputs.seed,
      chunk_size=inputs.options["chunk_size"],
      n_jobs=inputs.options["n_jobs"],
      boosted_trees_backend=inputs.options["dci_backend"], **inputs.sizes))


def _run_udr(inputs: MetricInputs) -> dict:
  return udr_metric.udr(inputs.data, inputs.representation_fn,
                 np.random.RandomState(inputs.seed),
                 correlation_matrix=inputs.options.get("correlation_matrix",
                                                       "lasso"),
                 **inputs.sizes)


def _pool_sizes(default, cheap, tiny):
  """Pool sizes per preset from ``(num_train[, num_test])`` tuples."""
  def make(sizes):
    return dict(zip(("num_train", "num_test"), sizes))
  return {"default": make(default), "cheap": make(cheap), "tiny": make(tiny)}


#: Every metric the suite knows, in the order it runs them. Default sizes are
#: dlib's ``unsupervised_study_v1`` metric configs. Cheap sizes encode about
#: 15x fewer observations (~0.2M instead of ~2.9M) and fit a 5x smaller DCI:
#: their scores are noisier and the histogram MI estimates biased upwards, so
#: compare them only with each other. Tiny sizes exist for tests and smoke
#: runs; their numbers mean nothing.
METRICS: dict[str, MetricSpec] = {
    "mig": MetricSpec(
        _run_mig, reads_pool=True,
        sizes=_pool_sizes((10000,), (2000,), (200,))),
    "dci": MetricSpec(
        _run_dci, reads_pool=True,
        sizes=_pool_sizes((10000, 5000), (2000, 1000), (200, 100))),
    "sap": MetricSpec(
        _run_sap, reads_pool=True,
        sizes=_pool_sizes((10000, 5000), (2000, 1000), (200, 100))),
    "modularity": MetricSpec(
        _run_modularity, reads_pool=True,
        sizes=_pool_sizes((10000, 5000), (2000, 1000), (200, 100))),
    "unsupervised": MetricSpec(
        _run_unsupervised, reads_pool=True,
        sizes=_pool_sizes((10000,), (2000,), (200,))),
    "beta_vae": MetricSpec(
        _run_beta_vae, reads_pool=False,
        sizes={"default": {"batch_size": 64, "num_train": 10000,
                           "num_eval": 5000},
               "cheap": {"batch_size": 64, "num_train": 1000,
                         "num_eval": 500},
               "tiny": {"batch_size": 8, "num_train": 40, "num_eval": 20}},
        min_factors=2),
    "factor_vae": MetricSpec(
        _run_factor_vae, reads_pool=False,
        sizes={"default": {"batch_size": 64, "num_train": 10000,
                           "num_eval": 5000, "num_variance_estimate": 10000},
               "cheap": {"batch_size": 64, "num_train": 1000,
                         "num_eval": 500, "num_variance_estimate": 2000},
               "tiny": {"batch_size": 8, "num_train": 40, "num_eval": 20,
                        "num_variance_estimate": 200}},
        minimums={"batch_size": 2, "num_variance_estimate": 2},
        min_factors=2),
    # Suter et al. 2019; dlib's sample config: the pool's 10000 points.
    "irs": MetricSpec(
        _run_irs, reads_pool=True,
        sizes=_pool_sizes((10000,), (2000,), (200,))),
    # Locatello et al. 2019's downstream tasks (dlib study configs
    # downstream_task_logistic_regression / _boosted_trees). Each size draws
    # its own training and test points. The boosted trees cost about as much
    # as DCI per size; their cheap preset stops at 1000 training points.
    "downstream_task_logistic_regression": MetricSpec(
        _downstream_runner("downstream_task_logistic_regression",
                           "logistic_regression_cv"), reads_pool=False,
        sizes={"default": {"num_train": (10, 100, 1000, 10000),
                           "num_test": 5000},
               "cheap": {"num_train": (10, 100, 1000), "num_test": 1000},
               "tiny": {"num_train": (10, 50), "num_test": 50}},
        in_smoke_runs=False),
    "downstream_task_boosted_trees": MetricSpec(
        _downstream_runner("downstream_task_boosted_trees",
                           "gradient_boosting"), reads_pool=False,
        sizes={"default": {"num_train": (10, 100, 1000, 10000),
                           "num_test": 5000},
               "cheap": {"num_train": (10, 100, 1000), "num_test": 1000},
               "tiny": {"num_train": (10, 50), "num_test": 50}},
        in_smoke_runs=False),
    # Locatello et al. 2019b (fairness study config: boosted trees).
    "fairness": MetricSpec(
        _run_fairness, reads_pool=False,
        sizes={"default": {"num_train": 10000,
                           "num_test_points_per_class": 100},
               "cheap": {"num_train": 1000, "num_test_points_per_class": 20},
               "tiny": {"num_train": 50, "num_test_points_per_class": 2}},
        # Each factor is the target for every other one as the sensitive one.
        min_factors=2, in_smoke_runs=False),
    # Duan et al. 2020 (dlib's udr.gin): many models at once, so not run by
    # the suite; experiments.udr scores a sweep's seeds with it.
    "udr": MetricSpec(
        _run_udr, reads_pool=False,
        sizes={"default": {"batch_size": 10, "num_data_points": 1000},
               "cheap": {"batch_size": 10, "num_data_points": 1000},
               "tiny": {"batch_size": 10, "num_data_points": 200}},
        compares_models=True),
}

def metric_names(data: Any = None) -> tuple[str, ...]:
  """The metrics of one representation (the suite's), in the table's order.

  Read from ``METRICS`` at each call, so an added entry counts.

  Args:
    data: a GroundTruthData-like dataset: only the metrics that apply to it
      (enough factors, ``MetricSpec.min_factors``). ``None``: all of them.

  Returns:
    Every entry's name but those that compare models (UDR), and with
    ``data`` those that do not apply to it.
  """
  num_factors = None if data is None else int(data.num_factors)
  return tuple(name for name, spec in METRICS.items()
               if not spec.compares_models and
               (num_factors is None or num_factors >= spec.min_factors))


#: ``metric_names()`` as the table stood at import.
ALL_METRICS = metric_names()


def get_metric(name: str) -> MetricSpec:
  """The entry of ``METRICS`` called ``name``.

  Raises:
    InvalidValueError: naming the bad value, the known metrics and the fix.
  """
  return errors.lookup(METRICS, name, lambda: (
      f"metric {name!r} is unknown; choose one of {list(METRICS)}, or add "
      f"its MetricSpec to METRICS in factorvae_jax/metrics/registry.py."))


def preset(name: str) -> dict[str, dict[str, int]]:
  """The ``{metric: {setting: value}}`` sizes of one preset.

  Raises:
    ValueError: naming the bad preset and the known ones.
  """
  if name not in SIZE_PRESET_NAMES:
    raise errors.InvalidValueError(
        f"evaluation sizes {name!r} are unknown; choose one of "
        f"{list(SIZE_PRESET_NAMES)}.")
  # The suite's metrics only: those comparing models read their sizes from
  # their entry (METRICS["udr"].sizes[name]).
  return {metric: dict(METRICS[metric].sizes[name])
          for metric in metric_names()}


DEFAULT_SIZES = preset("default")
CHEAP_SIZES = preset("cheap")
TINY_SIZES = preset("tiny")
SIZE_PRESETS = {name: preset(name) for name in SIZE_PRESET_NAMES}


def check_metric_names(names: Sequence[str] | str | None,
                       what: str = "metrics",
                       data: Any = None) -> tuple[str, ...]:
  """Checks metric names against ``METRICS``; returns them in suite order.

  Args:
    names: metric names (an entry may hold several, comma-separated, as
      ``--config.final_eval_metrics=mig,dci`` gives them); ``None`` means
      every metric that applies to ``data`` (``metric_names(data)``).
    what: how the caller's setting is called, for the error message (e.g.
      ``"config.final_eval_metrics"``).
    data: the dataset the metrics will run on, if known: then a named
      metric that does not apply to it is refused too.

  Raises:
    ValueError: on an unknown name, an empty selection or, with ``data``, a
      metric that does not apply to it.
  """
  known = metric_names()
  if names is None:
    return metric_names(data)
  if isinstance(names, str):
    names = [names]
  names = [part.strip() for entry in names for part in str(entry).split(",")
           if part.strip()]
  comparing = [m for m in names if m in METRICS and m not in known]
  if comparing:
    raise errors.InvalidValueError(
        f"{what}: {comparing} compare several models (the seeds of one "
        f"hyperparameter setting) and cannot run on one representation; "
        f"score a sweep with python -m experiments.udr --sweep_dir=<dir>. "
        f"Per-representation metrics: {list(known)}.")
  unknown = [m for m in names if m not in METRICS]
  if unknown or not names:
    raise errors.InvalidValueError(
        f"{what} must be a non-empty subset of {list(known)}, got "
        f"{list(names)}" + (f" ({unknown} unknown)" if unknown else "") +
        "; fix the names (on the command line, comma-separated: "
        "--config.final_eval_metrics=mig,dci), or give a new metric its "
        "MetricSpec in METRICS (factorvae_jax/metrics/registry.py).")
  selected = tuple(m for m in known if m in names)
  if data is not None:
    applicable = metric_names(data)
    misfits = [m for m in selected if m not in applicable]
    if misfits:
      raise errors.InvalidValueError(
          f"{what}: {misfits} need at least "
          f"{[METRICS[m].min_factors for m in misfits]} factors, but the "
          f"dataset has {data.num_factors}; drop them, or leave the setting "
          f"unset (None) to run every metric that applies: "
          f"{list(applicable)}.")
  return selected


def check_dci_backend(backend: str) -> str:
  """Returns ``backend`` if it names a DCI backend, else raises ValueError."""
  if backend not in DCI_BACKENDS:
    raise errors.InvalidValueError(
        f"dci_backend must be one of {list(DCI_BACKENDS)}, got {backend!r}; "
        f"'auto' picks 'jax' on an accelerator, 'numba' (or 'sklearn', the "
        f"reference, without numba) on a CPU.")
  return backend
