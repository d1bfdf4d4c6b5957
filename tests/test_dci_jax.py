"""The JAX gradient boosting of DCI against sklearn, and the metric registry.

``metrics.gradient_boosting`` follows sklearn's ``GradientBoostingClassifier``
rules; every comparison here fits sklearn itself (``random_state=0``, whose
feature-visiting order the port replays) on the same continuous arrays:
importances to 1e-3 and, on these cases, accuracies exactly. The port does
not repeat sklearn's rounding, which decides ties between equally good splits
(see the module docstring): on other data such a tie can go the other way
and change later trees and a few predictions (docs/metrics.md, DCI, has the
measured gaps). ``tests/test_boosted_trees.py`` checks the exact CPU
backend. The inputs are small; most of the time is compiling."""

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

from factorvae_jax import metrics
from factorvae_jax.metrics import gradient_boosting
from tests import test_metrics


def sklearn_reference(x_train, y_train, x_test, y_test, num_stages=100):
  """dlib's DCI fits: one sklearn classifier per factor."""
  importance, train_acc, test_acc = [], [], []
  for j in range(y_train.shape[1]):
    model = GradientBoostingClassifier(n_estimators=num_stages,
                                       random_state=0)
    model.fit(x_train, y_train[:, j])
    importance.append(np.abs(model.feature_importances_))
    train_acc.append(np.mean(model.predict(x_train) == y_train[:, j]))
    test_acc.append(np.mean(model.predict(x_test) == y_test[:, j]))
  return np.stack(importance, axis=1), np.array(train_acc), np.array(test_acc)


def assert_matches_sklearn(x_train, y_train, x_test, y_test, num_stages=100,
                           importance_atol=1e-3):
  ours = gradient_boosting.fit_gradient_boosting(
      x_train, y_train, x_test, y_test, num_stages=num_stages)
  ref = sklearn_reference(x_train, y_train, x_test, y_test, num_stages)
  np.testing.assert_allclose(ours[0], ref[0], rtol=0, atol=importance_atol)
  np.testing.assert_array_equal(ours[1], ref[1])
  np.testing.assert_array_equal(ours[2], ref[2])
  return ours, ref


def random_problem(seed, num_train=400, num_test=200, num_codes=3):
  """Continuous codes; a binary, a 3-class and a 4-class factor of them."""
  rs = np.random.RandomState(seed)
  x = rs.randn(num_train + num_test, num_codes)
  z = x @ rs.randn(num_codes, 3) + 0.3 * rs.randn(len(x), 3)
  y = np.stack([(z[:, 0] > 0.2).astype(int), np.digitize(z[:, 1], [-1, 1]),
                np.digitize(z[:, 2], [-1, 0, 1]) * 2 + 5], axis=1)
  return x[:num_train], y[:num_train], x[num_train:], y[num_train:]


@pytest.mark.slow
def test_matches_sklearn_on_random_data():
  (importance, _, _), _ = assert_matches_sklearn(*random_problem(0))
  # Labels may be any integers (the last factor is 5, 7, 9, 11).
  np.testing.assert_allclose(importance.sum(axis=0), 1.0)


@pytest.mark.slow
def test_matches_sklearn_on_the_metric_test_representations():
  """The DCI inputs of tests/test_metrics.py, with noisy observations."""
  data = test_metrics.ToyData(noise=0.2)
  # mixed_rep's codes 0 and 1 are a + b and a - b: their extremes often cut
  # off the same samples (the rounding-decided ties above).
  for rep, atol in ((test_metrics.noisy_rep, 1e-3),
                    (test_metrics.mixed_rep, 2e-3)):
    codes, factors = test_metrics.sample_arrays(rep, 600, seed=5, data=data)
    split = (codes[:400], factors[:400], codes[400:], factors[400:])
    (importance, train, test), _ = assert_matches_sklearn(
        *split, importance_atol=atol)
    ours = metrics.dci(*split, backend="jax", random_state=0)
    ref = metrics.dci(*split, backend="sklearn", n_jobs=1, random_state=0)
    for key in ref:
      assert ours[key] == pytest.approx(ref[key], abs=0.01), key
    scores = metrics.dci_from_importance(importance)
    assert ours["disentanglement"] == scores["disentanglement"]
    assert ours["informativeness_train"] == np.mean(train)
    assert ours["informativeness_test"] == np.mean(test)


@pytest.mark.slow
def test_follows_sklearn_feature_threshold_and_constant_codes():
  """Values closer than float32 1e-7 are never split apart; a constant code
  gets no importance; float64 inputs are cast to float32 first."""
  rs = np.random.RandomState(3)
  x = rs.randn(300, 3)
  x[:, 1] = 0.7                               # constant code
  x[::2, 2] = np.float32(1.0)                 # 1.0 and its float32 neighbour
  x[1::2, 2] = np.nextafter(np.float32(1.0), np.float32(2.0))
  x[:, 0] += 1e-9 * rs.randn(300)             # below float32 resolution
  y = np.stack([(x[:, 0] > 0.1).astype(int) + (np.arange(300) % 2),
                (rs.rand(300) < 0.5).astype(int)], axis=1)
  (importance, _, _), _ = assert_matches_sklearn(x, y, x, y, num_stages=10)
  assert np.all(importance[1] == 0.0)
  assert np.all(importance[2] == 0.0)


def test_dci_backend_is_checked():
  codes, factors = test_metrics.sample_arrays(test_metrics.noisy_rep, 60, 1)
  with pytest.raises(ValueError, match="'jax' or 'sklearn'"):
    metrics.dci(codes[:40], factors[:40], codes[40:], factors[40:],
                backend="xgboost")
  with pytest.raises(ValueError, match=r"dci_backend must be one of"):
    metrics.evaluate_representation(test_metrics.ToyData(),
                                    test_metrics.noisy_rep,
                                    metrics=["dci"], dci_backend="gpu")
  assert metrics.DCI_BACKENDS == ("auto", "numba", "jax", "sklearn")


# ---------------------------------------------------------------------------
# The metric registry
# ---------------------------------------------------------------------------


def test_registry_entries_are_complete_and_presets_derive_from_them():
  # The suite runs every entry except those that compare several models
  # (UDR), which run over a sweep.
  assert metrics.ALL_METRICS == tuple(
      name for name, spec in metrics.METRICS.items()
      if not getattr(spec, "compares_models", False))
  for name, spec in metrics.METRICS.items():
    assert set(spec.sizes) == {"default", "cheap", "tiny"}, name
    keys = set(spec.sizes["default"])
    assert all(set(spec.sizes[p]) == keys for p in spec.sizes), name
    if spec.reads_pool:
      assert "num_train" in keys, name
    for preset in ("default", "cheap", "tiny"):
      if name in metrics.ALL_METRICS:  # the suite's presets
        assert metrics.SIZE_PRESETS[preset][name] == spec.sizes[preset]
  assert metrics.DEFAULT_SIZES == metrics.preset("default")
  assert metrics.CHEAP_SIZES == metrics.preset("cheap")
  assert metrics.preset("tiny") == metrics.TINY_SIZES
  with pytest.raises(ValueError, match="unknown; choose one of"):
    metrics.preset("huge")


def test_check_metric_names_orders_and_names_bad_values():
  assert metrics.check_metric_names(["dci", "mig"]) == ("mig", "dci")
  assert metrics.check_metric_names(None) == metrics.ALL_METRICS
  with pytest.raises(ValueError, match=r"config.final_eval_metrics .*'dsc'"):
    metrics.check_metric_names(("mig", "dsc"), "config.final_eval_metrics")
  with pytest.raises(ValueError, match="non-empty subset"):
    metrics.check_metric_names(())


def test_a_new_metric_is_one_registry_entry(monkeypatch):
  """An extra entry runs in the suite, reads the pool and records sizes."""
  seen = {}

  def run(inputs):
    seen["shape"] = inputs.pool[0].shape
    return {"code_mean": float(np.mean(inputs.pool[0]))}

  spec = metrics.MetricSpec(run, reads_pool=True, sizes={
      p: {"num_train": 50} for p in ("default", "cheap", "tiny")})
  monkeypatch.setitem(metrics.METRICS, "code_mean", spec)
  results = metrics.evaluate_representation(
      test_metrics.ToyData(), test_metrics.noisy_rep, random_state=0,
      sizes={"code_mean": {"num_train": 50}}, metrics=["code_mean", "mig"],
      n_jobs=1)
  assert seen["shape"] == (50, 4)
  assert "code_mean" in results and "mig" in results
  assert results["settings/code_mean/num_train"] == 50
