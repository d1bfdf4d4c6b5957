"""Runs every disentanglement metric on one representation, sharing samples.

``evaluate_representation`` reproduces disentanglement_lib's evaluation
protocol (the ``unsupervised_study_v1`` metric configs) with one saving: the
array-level metrics (MIG, DCI, SAP, modularity/explicitness and the
unsupervised scores) all read slices of one pool of encoded samples instead
of each drawing and encoding its own.

That sharing changes no distribution, and at dlib's defaults not even the
draws: dlib runs each metric with a fresh ``RandomState(seed)`` and draws its
training points (then its test points) with ``batch_size=16``; every such
metric therefore starts from the same random stream, and the pool is exactly
that stream (``max num_train`` training points, then ``max num_test`` test
points). When metrics are given different ``num_train`` the test points of
the smaller ones come from a later part of the stream than in dlib (same
distribution, different draws). BetaVAE and FactorVAE need their own
fixed-factor batches and each run from a fresh ``RandomState(seed)``, as in
dlib.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import numpy as np

from factorvae_jax.metrics import code_cache
from factorvae_jax.metrics import information
from factorvae_jax.metrics import intervention
from factorvae_jax.metrics import registry
from factorvae_jax.metrics import sampling
from factorvae_jax.metrics import supervised

ProgressFn = Callable[[str, float], None]


def resolve_sizes(sizes: Mapping[str, Mapping[str, int]] | None
                  ) -> dict[str, dict[str, int]]:
  """Merges ``sizes`` over ``DEFAULT_SIZES``, checking every name and value.

  Args:
    sizes: ``{metric: {setting: value}}``; missing metrics or settings keep
      their defaults, so ``{"dci": {"num_train": 2000}}`` changes one number.

  Returns:
    A complete copy with the same structure as ``DEFAULT_SIZES``.

  Raises:
    ValueError: on an unknown metric or setting, or a non-positive size.
  """
  resolved = registry.preset("default")
  for metric, settings in (sizes or {}).items():
    if metric not in resolved:
      raise ValueError(
          f"sizes has unknown metric {metric!r}; allowed: {list(resolved)}.")
    for key, value in settings.items():
      if key not in resolved[metric]:
        raise ValueError(
            f"sizes[{metric!r}] has unknown setting {key!r}; allowed: "
            f"{list(resolved[metric])}.")
      minimum = registry.METRICS[metric].minimums.get(key, 1)
      if isinstance(resolved[metric][key], tuple):
        # A list of sizes (the downstream tasks' training set sizes).
        values = (value,) if np.isscalar(value) else tuple(value)
        if not values:
          raise ValueError(
              f"sizes[{metric!r}][{key!r}] must list at least one size, got "
              f"{value!r}; the default is {resolved[metric][key]}.")
        resolved[metric][key] = tuple(sampling.check_positive(
            f"sizes[{metric!r}][{key!r}]", v, minimum) for v in values)
        continue
      resolved[metric][key] = sampling.check_positive(
          f"sizes[{metric!r}][{key!r}]", value, minimum)
  return resolved


def _resolve_seed(random_state) -> int:
  """An int seed: the given one, or one drawn from a given RandomState."""
  if isinstance(random_state, np.random.RandomState):
    return int(random_state.randint(0, 2**31 - 1))
  if random_state is None:
    return int(np.random.RandomState().randint(0, 2**31 - 1))
  if isinstance(random_state, bool) or int(random_state) != random_state:
    raise ValueError(
        f"random_state must be an int seed, a np.random.RandomState or None, "
        f"got {random_state!r}.")
  return int(random_state)


def evaluate_representation(
    data, representation_fn, random_state=0,
    sizes: Mapping[str, Mapping[str, int]] | None = None,
    on_progress: ProgressFn | None = None, *,
    metrics: Sequence[str] | None = None,
    num_bins: int = information.DEFAULT_NUM_BINS,
    prune_threshold: float = intervention.DEFAULT_PRUNE_THRESHOLD,
    continuous_factors: bool = False,
    sample_batch_size: int = 16,
    chunk_size: int = sampling.DEFAULT_CHUNK_SIZE,
    n_jobs: int | None = -1,
    dci_backend: str = "auto",
    cache_codes: bool = False) -> dict[str, float | int | bool | str]:
  """Runs the disentanglement metrics with disentanglement_lib's protocol.

  Every metric uses the study defaults of dlib unless ``sizes`` or a keyword
  says otherwise. Each one starts from a fresh ``RandomState(seed)``, as dlib
  does with ``evaluation.random_seed``; the array-level metrics share one
  pool of samples (see the module docstring: identical draws to dlib at the
  default sizes).

  Args:
    data: GroundTruthData-like dataset.
    representation_fn: numpy observations [B, ...] -> codes [B, num_codes];
      it is called with at most ``chunk_size`` observations at a time.
    random_state: int seed (dlib: ``evaluation.random_seed``, default 0), or
      a ``RandomState`` from which one seed is drawn, or ``None`` for a fresh
      seed; the seed used is recorded in the result.
    sizes: per-metric overrides of ``DEFAULT_SIZES`` (e.g. ``CHEAP_SIZES``
      for periodic evaluation during training).
    on_progress: called as ``on_progress(stage, seconds)`` after each stage:
      ``"sample_pool"`` (drawing and encoding the shared pool), then each
      metric's name; ``seconds`` is that stage's wall time.
    metrics: which of ``registry.metric_names()`` to run (default: every
      one that applies to ``data``, ``registry.metric_names(data)``).
    num_bins: histogram bins for MIG, modularity and the unsupervised mutual
      information (dlib: 20).
    prune_threshold: FactorVAE's minimum global code std (dlib study: 0.05).
    continuous_factors: SAP's factor treatment (dlib study: ``False``).
    sample_batch_size: points per ``data.sample`` call for the pool (dlib's
      ``batch_size`` of these metrics, 16); changes which draws are made only.
    chunk_size: observations per ``representation_fn`` call (not in dlib).
    n_jobs: parallel classifier fits within DCI (sklearn backend), SAP and
      explicitness (joblib convention; -1 uses every core). Not in dlib,
      which fits sequentially; it changes no result.
    dci_backend: ``"jax"`` fits DCI's boosted trees with
      ``gradient_boosting`` (sklearn's algorithm, all factors at once on the
      default JAX device), ``"sklearn"`` with sklearn itself (the
      reference); ``"auto"`` (default) uses ``"jax"`` on a GPU/TPU and
      ``"sklearn"`` on a CPU.
    cache_codes: encode each distinct observation once
      (``code_cache.CodeCache``) when ``data`` names its observations by
      index; the draws are unchanged, so for a deterministic
      ``representation_fn`` (e.g. mean codes) so are the scores, and at the
      default sizes dSprites needs 0.74M encodes instead of 2.9M. Leave it
      off for a stochastic representation (sampled codes), which the cache
      would freeze per observation. ``data`` may also be a cache's
      ``dataset`` already (with its ``representation_fn``).

  Returns:
    A flat JSON-serialisable dict. Scores are floats under
    ``"mig"``, ``"dci/disentanglement"``, ``"dci/completeness"``,
    ``"dci/informativeness_train"``, ``"dci/informativeness_test"``,
    ``"sap"``, ``"modularity/modularity"``,
    ``"modularity/explicitness_train"``, ``"modularity/explicitness_test"``,
    ``"unsupervised/gaussian_total_correlation"``,
    ``"unsupervised/gaussian_wasserstein_correlation"``,
    ``"unsupervised/gaussian_wasserstein_correlation_norm"``,
    ``"unsupervised/mutual_info_score"``, ``"beta_vae/train_accuracy"``,
    ``"beta_vae/eval_accuracy"``, ``"factor_vae/train_accuracy"``,
    ``"factor_vae/eval_accuracy"``, ``"factor_vae/num_active_dims"``,
    ``"irs/IRS"``, ``"irs/num_active_dims"``, dlib's downstream keys under
    ``"downstream_task_logistic_regression/"`` and
    ``"downstream_task_boosted_trees/"`` (e.g. ``".../1000:mean_test_accuracy"``)
    and dlib's fairness keys under ``"fairness/"`` (e.g.
    ``"fairness/mean_fairness:mean_pred:mean_sens"``) (for the metrics run). Settings used are under ``"settings/..."``:
    ``settings/random_seed`` and the other keywords (``settings/dci_backend``
    when DCI runs; ``settings/cache_codes`` says whether codes were cached),
    and
    ``settings/<metric>/<size>`` for each metric run.
  """
  selected = registry.check_metric_names(metrics, data=data)
  resolved = resolve_sizes(sizes)
  seed = _resolve_seed(random_state)
  num_bins = information.check_num_bins(num_bins)
  chunk_size = sampling.check_chunk_size(chunk_size)
  sample_batch_size = sampling.check_positive("sample_batch_size",
                                              sample_batch_size)
  dci_backend = registry.check_dci_backend(dci_backend)
  if dci_backend == "auto" and "dci" in selected:
    # Resolved here so that the settings record which one ran.
    dci_backend = supervised.auto_dci_backend()
  options = {"num_bins": num_bins, "prune_threshold": prune_threshold,
             "continuous_factors": continuous_factors,
             "sample_batch_size": sample_batch_size,
             "chunk_size": chunk_size, "n_jobs": n_jobs,
             "dci_backend": dci_backend}
  if cache_codes and code_cache.supports_code_cache(data):
    cache = code_cache.CodeCache.for_representation(data, representation_fn,
                                                    chunk_size)
    data, representation_fn = cache.dataset, cache.representation_fn(0)
  report = on_progress or (lambda stage, seconds: None)
  results: dict[str, float | int | bool | str] = {}

  def run_stage(stage, fn):
    start = time.perf_counter()
    value = fn()
    report(stage, time.perf_counter() - start)
    return value

  pool_metrics = [m for m in selected if registry.METRICS[m].reads_pool]
  if pool_metrics:
    num_train = max(resolved[m]["num_train"] for m in pool_metrics)
    num_test = max([resolved[m]["num_test"] for m in pool_metrics
                    if "num_test" in resolved[m]] or [0])

    def sample_pool():
      rs = np.random.RandomState(seed)
      train = sampling.sample_codes_and_factors(
          data, representation_fn, num_train, rs, sample_batch_size,
          chunk_size)
      test = (sampling.sample_codes_and_factors(
          data, representation_fn, num_test, rs, sample_batch_size,
          chunk_size) if num_test else (None, None))
      return train, test

    (codes_train, factors_train), (codes_test, factors_test) = run_stage(
        "sample_pool", sample_pool)

  def split(metric):
    """The pool slices dlib's run of ``metric`` would have drawn."""
    n = resolved[metric]["num_train"]
    m = resolved[metric].get("num_test")
    if m is None:
      return codes_train[:n], factors_train[:n]
    return (codes_train[:n], factors_train[:n], codes_test[:m],
            factors_test[:m])

  for metric in selected:
    spec = registry.METRICS[metric]
    inputs = registry.MetricInputs(
        data=data, representation_fn=representation_fn, seed=seed,
        sizes=resolved[metric],
        pool=split(metric) if spec.reads_pool else None, options=options)
    results.update(run_stage(metric, lambda: spec.run(inputs)))

  results["settings/random_seed"] = seed
  results["settings/num_bins"] = num_bins
  results["settings/prune_threshold"] = float(prune_threshold)
  results["settings/continuous_factors"] = bool(continuous_factors)
  results["settings/sample_batch_size"] = sample_batch_size
  results["settings/chunk_size"] = chunk_size
  results["settings/cache_codes"] = isinstance(data,
                                               code_cache.IndexedObservations)
  if "dci" in selected:
    results["settings/dci_backend"] = dci_backend
  for metric in selected:
    for key, value in resolved[metric].items():
      # Lists of sizes (downstream tasks) are recorded as JSON lists.
      results[f"settings/{metric}/{key}"] = (list(value) if isinstance(
          value, tuple) else value)
  return results
