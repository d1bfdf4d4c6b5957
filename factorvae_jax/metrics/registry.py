"""The metric table: one entry per metric the suite can run.

Each ``MetricSpec`` says how to run the metric (``run``), whether it reads
the suite's shared pool of encoded samples or samples its own batches
(``reads_pool``), and its sample sizes under every preset (``sizes``:
``"default"`` = disentanglement_lib's study settings, ``"cheap"`` for
periodic evaluation while training, ``"tiny"`` for tests and smoke runs).
Adding a metric is one entry in ``METRICS``; the suite, the size presets and
the config checks read this table.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from factorvae_jax.metrics import intervention
from factorvae_jax.metrics import supervised
from factorvae_jax.metrics import unsupervised

#: DCI's classifier implementations: the JAX port of sklearn's gradient
#: boosting, sklearn itself (the reference), or "auto": the port when JAX's
#: default device is an accelerator, sklearn on a CPU (where the port gains
#: little, and loses under load; docs/metrics.md, "Cost").
DCI_BACKENDS = ("auto", "jax", "sklearn")
SIZE_PRESET_NAMES = ("default", "cheap", "tiny")


class MetricInputs(NamedTuple):
  """What a metric's ``run`` gets from the suite.

  Attributes:
    data: the GroundTruthData-like dataset.
    representation_fn: observations -> codes.
    seed: the evaluation seed (each sampling metric starts a fresh
      ``RandomState(seed)``, as dlib does).
    sizes: this metric's resolved sizes.
    pool: for pool metrics, the pool slices dlib's run would have drawn:
      ``(codes, factors)`` or ``(codes_train, factors_train, codes_test,
      factors_test)``; ``None`` for sampling metrics.
    options: the suite's keyword settings (``num_bins``, ``prune_threshold``,
      ``continuous_factors``, ``chunk_size``, ``n_jobs``, ``dci_backend``).
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
  """
  run: Callable[[MetricInputs], dict]
  reads_pool: bool
  sizes: Mapping[str, Mapping[str, int]]
  minimums: Mapping[str, int] = dataclasses.field(default_factory=dict)


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
               "tiny": {"batch_size": 8, "num_train": 40, "num_eval": 20}}),
    "factor_vae": MetricSpec(
        _run_factor_vae, reads_pool=False,
        sizes={"default": {"batch_size": 64, "num_train": 10000,
                           "num_eval": 5000, "num_variance_estimate": 10000},
               "cheap": {"batch_size": 64, "num_train": 1000,
                         "num_eval": 500, "num_variance_estimate": 2000},
               "tiny": {"batch_size": 8, "num_train": 40, "num_eval": 20,
                        "num_variance_estimate": 200}},
        minimums={"batch_size": 2, "num_variance_estimate": 2}),
}

ALL_METRICS = tuple(METRICS)


def preset(name: str) -> dict[str, dict[str, int]]:
  """The ``{metric: {setting: value}}`` sizes of one preset.

  Raises:
    ValueError: naming the bad preset and the known ones.
  """
  if name not in SIZE_PRESET_NAMES:
    raise ValueError(f"evaluation sizes {name!r} are unknown; choose one of "
                     f"{list(SIZE_PRESET_NAMES)}.")
  return {metric: dict(spec.sizes[name]) for metric, spec in METRICS.items()}


DEFAULT_SIZES = preset("default")
CHEAP_SIZES = preset("cheap")
TINY_SIZES = preset("tiny")
SIZE_PRESETS = {name: preset(name) for name in SIZE_PRESET_NAMES}


def check_metric_names(names: Sequence[str] | str | None,
                       what: str = "metrics") -> tuple[str, ...]:
  """Checks metric names against ``METRICS``; returns them in suite order.

  Args:
    names: metric names; ``None`` means all of them.
    what: how the caller's setting is called, for the error message (e.g.
      ``"config.final_eval_metrics"``).

  Raises:
    ValueError: on an unknown name or an empty selection.
  """
  known = tuple(METRICS)  # read now, so that added entries count
  if names is None:
    return known
  if isinstance(names, str):
    names = [names]
  unknown = [m for m in names if m not in METRICS]
  if unknown or not names:
    raise ValueError(
        f"{what} must be a non-empty subset of {list(known)}, got "
        f"{list(names)}" + (f" ({unknown} unknown)." if unknown else "."))
  return tuple(m for m in known if m in names)


def check_dci_backend(backend: str) -> str:
  """Returns ``backend`` if it names a DCI backend, else raises ValueError."""
  if backend not in DCI_BACKENDS:
    raise ValueError(
        f"dci_backend must be one of {list(DCI_BACKENDS)}, got {backend!r}; "
        f"'auto' picks 'jax' on an accelerator, 'sklearn' (the reference) "
        f"on a CPU.")
  return backend
