"""DCI's numba backend (``metrics.boosted_trees``) against sklearn itself.

``boosted_trees`` repeats sklearn's ``GradientBoostingClassifier`` arithmetic
operation for operation, so on codes without exactly repeated values every
comparison here is exact: the same importances bit for bit (which needs the
same trees, including sklearn's choice among equally good splits) and the
same accuracies. The cases are small; the first one also pays numba's
compilation (cached on disk afterwards).
"""

from unittest import mock

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier

pytest.importorskip("numba")

from factorvae_jax import metrics  # noqa: E402
from factorvae_jax.metrics import boosted_trees  # noqa: E402


def sklearn_fits(x_train, y_train, x_test, y_test, num_stages, random_state):
  """dlib's DCI fits: one sklearn classifier per factor."""
  importance, train_acc, test_acc = [], [], []
  for j in range(y_train.shape[1]):
    model = GradientBoostingClassifier(n_estimators=num_stages,
                                       random_state=random_state)
    model.fit(x_train, y_train[:, j])
    importance.append(model.feature_importances_)
    train_acc.append(np.mean(model.predict(x_train) == y_train[:, j]))
    test_acc.append(np.mean(model.predict(x_test) == y_test[:, j]))
  return np.stack(importance, axis=1), np.array(train_acc), np.array(test_acc)


def assert_equal_to_sklearn(x_train, y_train, x_test, y_test, num_stages=100,
                            random_state=0):
  ours = boosted_trees.fit_gradient_boosting(
      x_train, y_train, x_test, y_test, num_stages=num_stages,
      random_state=random_state)
  ref = sklearn_fits(x_train, y_train, x_test, y_test, num_stages,
                     random_state)
  np.testing.assert_array_equal(ours[0], ref[0])
  np.testing.assert_array_equal(ours[1], ref[1])
  np.testing.assert_array_equal(ours[2], ref[2])
  return ours


def gaussian_problem(seed, num_train, num_codes, classes, num_test=200):
  """Gaussian codes; factor ``j`` has ``classes[j]`` classes, the first
  depending on two codes, the others on a noisy projection of all."""
  rs = np.random.RandomState(seed)
  x = rs.randn(num_train + num_test, num_codes).astype(np.float32)
  factors = []
  for j, k in enumerate(classes):
    z = x @ rs.randn(num_codes) + rs.randn(len(x)) if j else x[:, 0] + x[:, 1]
    edges = np.quantile(z[:num_train], np.linspace(0, 1, k + 1)[1:-1])
    factors.append(np.digitize(z, edges))
  y = np.stack(factors, axis=1)
  return x[:num_train], y[:num_train], x[num_train:], y[num_train:]


def test_equal_to_sklearn_on_gaussian_codes_with_tied_gradients():
  """Issue 24's case, smaller: at stage 0 every class has two gradient
  values, so many splits tie and sklearn's rounding picks among them."""
  for seed in (0, 1):
    ours = assert_equal_to_sklearn(
        *gaussian_problem(seed, 500, 6, (3, 5, 2, 4)), random_state=seed)
    np.testing.assert_allclose(ours[0].sum(axis=0), 1.0)


def test_equal_to_sklearn_with_2_and_40_classes_and_any_labels():
  x_train, y_train, x_test, y_test = gaussian_problem(2, 600, 4, (2, 40))
  # Labels may be any integers.
  y_train = y_train * 3 + 7
  y_test = y_test * 3 + 7
  assert_equal_to_sklearn(x_train, y_train, x_test, y_test, num_stages=15,
                          random_state=5)


def test_equal_to_sklearn_with_a_constant_code_and_few_samples():
  """A constant code (sklearn draws it, finds it constant and skips it in
  the node's children), a code below float32 resolution, and nodes of a
  few samples, where the whole search is ties."""
  rs = np.random.RandomState(3)
  x = rs.randn(40, 3)
  x[:, 1] = 0.7
  x[:, 0] += 1e-9 * rs.randn(40)
  y = np.stack([(x[:, 0] > 0.1).astype(int) + (np.arange(40) % 2),
                (rs.rand(40) < 0.5).astype(int)], axis=1)
  ours = assert_equal_to_sklearn(x, y, x, y, num_stages=30, random_state=1)
  assert np.all(ours[0][1] == 0.0)


def test_a_single_class_factor_is_rejected_as_sklearn_does():
  x_train, y_train, x_test, y_test = gaussian_problem(4, 50, 3, (3, 2))
  y_train[:, 1] = 4
  with pytest.raises(ValueError, match="single value"):
    boosted_trees.fit_gradient_boosting(x_train, y_train, x_test, y_test)
  with pytest.raises(ValueError):
    GradientBoostingClassifier().fit(x_train, y_train[:, 1])
  with pytest.raises(ValueError, match="single value"):
    metrics.dci(x_train, y_train, x_test, y_test, backend="numba")


def test_pairwise_sum_is_numpys():
  """Leaf values are numpy means; numpy sums pairwise in blocks of 8."""
  rs = np.random.RandomState(0)
  for n in (1, 7, 8, 9, 127, 128, 129, 1000, 4099):
    a = rs.randn(n) * 10.0 ** rs.uniform(-4, 4, n)
    assert boosted_trees._pairwise_sum(a, 0, n) == np.add.reduce(a)


def test_dci_backend_numba_equals_sklearn_and_threads_change_nothing():
  split = gaussian_problem(6, 300, 4, (3, 2, 4))
  ref = metrics.dci(*split, backend="sklearn", n_jobs=1, random_state=2)
  for n_jobs in (1, -1):
    ours = metrics.dci(*split, backend="numba", n_jobs=n_jobs, random_state=2)
    assert ours == ref



def sklearn_sweep(values, y, best_proxy=-np.inf):
  """sklearn's ``node_split_best`` sweep of one feature, line by line.

  ``values`` float32 sorted, ``y`` the targets in that order. Returns the
  left sum at every valid position and the (proxy, position) that wins.
  """
  end = len(values)
  sum_total = 0.0
  for v in y:
    sum_total += v
  sums, best_pos = {}, -1
  sum_left, w_left, pos, p = 0.0, 0.0, 0, 0
  while p < end:
    p += 1
    while p < end and values[p] <= values[p - 1] + np.float32(1e-7):
      p += 1
    if p == end:
      break
    if p - pos <= end - p:
      for q in range(pos, p):
        sum_left += y[q]
        w_left += 1.0
    else:  # reverse_reset, then subtract from the end
      sum_left, w_left = sum_total, float(end)
      for q in range(end - 1, p - 1, -1):
        sum_left -= y[q]
        w_left -= 1.0
    pos = p
    sum_right = sum_total - sum_left
    proxy = (sum_left * sum_left / w_left
             + sum_right * sum_right / (end - w_left))
    sums[p] = sum_left
    if proxy > best_proxy:
      best_proxy, best_pos = proxy, p
  return sum_total, sums, best_proxy, best_pos


def test_sweep_repeats_sklearns_running_sums_and_reverse_update():
  """Blocks of equal values are moved left at once; a block longer than
  what remains on its right is summed by sklearn from the node total
  backwards (``reverse_reset``), with different rounding."""
  rs = np.random.RandomState(0)
  reversed_somewhere = False
  for trial in range(300):
    n = rs.randint(2, 60)
    values = np.sort(rs.randint(0, rs.randint(1, 6), n)).astype(np.float32)
    y = rs.randn(n) * 10.0 ** rs.uniform(-3, 3, n)
    ids = np.arange(n, dtype=np.int32)
    sum_total, sums, ref_proxy, ref_pos = sklearn_sweep(values, y)
    inverse = 1.0 / np.arange(n + 1).clip(1)
    running = np.empty(n + 1)
    proxy, position = boosted_trees._best_position(
        values, ids, y, 0, n, sum_total, -np.inf, inverse,
        np.empty(n + 1, np.float32), np.empty(n + 1, np.bool_), running,
        np.empty(n + 1))
    assert (proxy, position) == (ref_proxy, ref_pos) or (
        ref_pos == -1 and position == -1)
    for p, value in sums.items():
      assert running[p] == value, (trial, p)
    blocks = np.flatnonzero(np.diff(values) > 0) + 1
    edges = np.concatenate([[0], blocks])
    reversed_somewhere |= any(b - a > n - b for a, b in zip(edges[:-1],
                                                            edges[1:]))
  assert reversed_somewhere


def test_equal_to_sklearn_on_blocks_of_near_equal_values():
  """Distinct values less than FEATURE_THRESHOLD apart form blocks that
  sklearn never splits apart and moves left at once (and, near a node's
  right end, sums backwards: checked directly above), end to end."""
  rs = np.random.RandomState(8)
  n = 400
  group = rs.randint(5, size=n)
  # 1 ulp apart in [0.5, 1) (6e-8 < 1e-7), every value distinct.
  ulp = np.float32(2.0 ** -24)
  blocks = (np.float32(0.5) + group.astype(np.float32) * np.float32(0.1)
            + np.arange(n).astype(np.float32) * ulp).astype(np.float32)
  assert len(np.unique(blocks)) == n
  x = np.stack([blocks, rs.randn(n).astype(np.float32),
                rs.randn(n).astype(np.float32)], axis=1)
  y = np.stack([(group + (x[:, 1] > 0.5)) % 3,
                (group >= 3).astype(int)], axis=1)
  assert_equal_to_sklearn(x[:300], y[:300], x[300:], y[300:],
                          num_stages=40, random_state=3)


def test_downstream_boosted_trees_with_numba_equal_sklearns():
  from factorvae_jax.metrics import downstream  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(5)
  # dSprites-like factors; at 10 and 100 training points most of the 40
  # and 32 classes are missing from the training set (and the test set
  # holds classes the trees never saw).
  num_values = (3, 6, 40)
  for num_train in (10, 100, 600):
    codes = rng.randn(num_train + 300, 4)
    factors = np.stack([rng.randint(n, size=len(codes)) for n in num_values],
                       axis=1)
    codes[:, 0] += factors[:, 0]
    args = (codes[:num_train], factors[:num_train], codes[num_train:],
            factors[num_train:])
    got = downstream.factor_accuracies(*args, predictor="gradient_boosting",
                                       predictor_seed=3,
                                       boosted_trees_backend="numba")
    want = downstream.factor_accuracies(*args, predictor="gradient_boosting",
                                        predictor_seed=3,
                                        boosted_trees_backend="sklearn")
    assert got == want, num_train


def test_fairness_with_numba_trees_equals_sklearns():
  from factorvae_jax.metrics import fairness_metric  # pylint: disable=g-import-not-at-top
  from tests import test_metrics  # pylint: disable=g-import-not-at-top
  kwargs = dict(num_train=300, num_test_points_per_class=20,
                predictor="gradient_boosting", predictor_seed=1, n_jobs=1)
  fits = []
  original = boosted_trees.fit_trees

  def counted_fit_trees(*args, **kw):
    fits.append(1)
    return original(*args, **kw)
  results = {}
  with mock.patch.object(boosted_trees, "fit_trees", counted_fit_trees):
    for backend in ("numba", "sklearn", "jax"):
      del fits[:]
      results[backend] = fairness_metric.fairness(
          test_metrics.ToyData(noise=0.3), test_metrics.noisy_rep, 0,
          boosted_trees_backend=backend, **kwargs)
      # The JAX port has no predictor: with "jax" the classifiers are
      # fitted on the host by numba, the fastest backend equal to sklearn.
      assert len(fits) == (0 if backend == "sklearn" else 1), backend
  assert results["numba"] == results["sklearn"] == results["jax"]
  # Not vacuous: the classifiers are unfair to some pair of factors.
  assert results["sklearn"]["mean_fairness:mean_pred:mean_sens"] > 0
