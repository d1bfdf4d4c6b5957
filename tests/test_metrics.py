"""Tests for factorvae_jax.metrics.

Three kinds of checks:

* hand-computed values on tiny arrays (MIG, modularity, DCI weighting, TC);
* agreement with a straightforward, loop-by-loop restatement of
  disentanglement_lib's computation (sklearn/scipy primitives, dlib's draw
  order) on the same inputs, to float precision;
* behaviour on a synthetic dataset whose observations are the factors, with
  representations that are disentangled, mixed or random: scores order as
  the definitions say, and the invariances hold.

Sample sizes are small so the whole file runs in well under a minute.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
from sklearn import metrics as sklearn_metrics
from sklearn import preprocessing
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from factorvae_jax import metrics
from factorvae_jax.data.ground_truth import GroundTruthData

SIZES = (4, 5, 3)


class ToyData(GroundTruthData):
  """Observations are the factor classes (as floats), optionally noisy.

  With ``noise > 0`` rendering consumes the random state, like datasets that
  draw nuisance variables, which makes the draw order observable.
  """

  factor_names = ("a", "b", "c")
  factors_num_values = SIZES
  observation_shape = (1, 1, len(SIZES))
  source = "tests"

  def __init__(self, noise=0.0):
    self.noise = noise

  def sample_observations_from_factors(self, factors, random_state):
    obs = np.asarray(factors, dtype=np.float32)
    if self.noise:
      obs = obs + self.noise * random_state.randn(*obs.shape).astype(
          np.float32)
    return obs.reshape(len(obs), 1, 1, len(SIZES))

  def sample_device_batch(self, arrays, key, batch_size):
    raise NotImplementedError


def flat(obs):
  return np.asarray(obs, dtype=np.float64).reshape(len(obs), -1)


def perfect_rep(obs):
  """One code per factor, through different monotone maps."""
  f = flat(obs)
  return np.stack([2.0 * f[:, 0] + 1.0, np.exp(0.3 * f[:, 1]),
                   -0.5 * f[:, 2]], axis=1)


def mixed_rep(obs):
  """Codes 0 and 1 each mix factors a and b; code 2 is factor c."""
  f = flat(obs)
  return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2]], axis=1)


def make_random_rep(seed=0):
  rs = np.random.RandomState(seed)
  return lambda obs: rs.randn(len(obs), 3)


def pseudo_noise(obs, k):
  """Deterministic 'noise' from the observation (same input, same output)."""
  f = flat(obs)
  return np.sin(f @ np.array([12.9898, 78.233, 37.719]) * (k + 1)) * 0.2


def noisy_rep(obs):
  f = flat(obs)
  return np.stack([f[:, 0] + pseudo_noise(obs, 0) + 0.3 * f[:, 1],
                   f[:, 1] + pseudo_noise(obs, 1),
                   f[:, 2] + pseudo_noise(obs, 2),
                   pseudo_noise(obs, 3)], axis=1)


def sample_arrays(rep, num, seed, data=None):
  return metrics.sample_codes_and_factors(data or ToyData(), rep, num,
                                          np.random.RandomState(seed))


# ---------------------------------------------------------------------------
# Loop-by-loop restatements of dlib's computations (reference values).
# ---------------------------------------------------------------------------


def ref_discretize(codes, num_bins):
  out = np.zeros(codes.shape, dtype=np.int64)
  for i in range(codes.shape[1]):
    out[:, i] = np.digitize(codes[:, i],
                            np.histogram(codes[:, i], num_bins)[1][:-1])
  return out


def ref_mi_matrix(labels_a, labels_b):
  return np.array([[sklearn_metrics.mutual_info_score(labels_b[:, j],
                                                      labels_a[:, i])
                    for j in range(labels_b.shape[1])]
                   for i in range(labels_a.shape[1])])


def ref_mig(codes, factors, num_bins=20):
  m = ref_mi_matrix(ref_discretize(codes, num_bins), factors)
  h = np.array([sklearn_metrics.mutual_info_score(factors[:, j], factors[:, j])
                for j in range(factors.shape[1])])
  s = np.sort(m, axis=0)[::-1]
  return np.mean((s[0] - s[1]) / h)


def ref_dci_from_importance(r):
  per_code = 1.0 - scipy.stats.entropy(r.T + 1e-11, base=r.shape[1])
  per_factor = 1.0 - scipy.stats.entropy(r + 1e-11, base=r.shape[0])
  w = r if r.sum() != 0 else np.ones_like(r)
  return (np.sum(per_code * w.sum(axis=1) / w.sum()),
          np.sum(per_factor * w.sum(axis=0) / w.sum()))


def ref_modularity(m):
  sq = np.square(m)
  mx = np.max(sq, axis=1)
  with np.errstate(divide="ignore", invalid="ignore"):
    score = 1.0 - (np.sum(sq, axis=1) - mx) / (mx * (sq.shape[1] - 1.0))
  score[mx == 0.0] = 0.0
  return np.mean(score)


def ref_explicitness(codes_train, factors_train, codes_test, factors_test):
  mean, std = codes_train.mean(axis=0), codes_train.std(axis=0)
  xtr, xte = (codes_train - mean) / std, (codes_test - mean) / std
  train, test = [], []
  for k in range(factors_train.shape[1]):
    clf = LogisticRegression().fit(xtr, factors_train[:, k])
    mlb = preprocessing.MultiLabelBinarizer()
    train.append(sklearn_metrics.roc_auc_score(
        mlb.fit_transform(factors_train[:, k:k + 1]), clf.predict_proba(xtr)))
    test.append(sklearn_metrics.roc_auc_score(
        mlb.fit_transform(factors_test[:, k:k + 1]), clf.predict_proba(xte)))
  return np.mean(train), np.mean(test)


def ref_sap(codes_train, factors_train, codes_test, factors_test,
            continuous):
  s = np.zeros((codes_train.shape[1], factors_train.shape[1]))
  for i in range(s.shape[0]):
    for j in range(s.shape[1]):
      if continuous:
        c = np.cov(codes_train[:, i], factors_train[:, j], ddof=1)
        s[i, j] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1]) if c[0, 0] > 1e-12 else 0
      else:
        clf = LinearSVC(C=0.01, class_weight="balanced")
        clf.fit(codes_train[:, i:i + 1], factors_train[:, j])
        s[i, j] = np.mean(clf.predict(codes_test[:, i:i + 1])
                          == factors_test[:, j])
  s = np.sort(s, axis=0)
  return np.mean(s[-1] - s[-2])


def ref_factor_vae(data, rep, rs, batch_size, num_train, num_eval,
                   num_var, threshold):
  """dlib's protocol, one representation call per batch."""
  global_var = np.var(rep(data.sample_observations(num_var, rs)), axis=0,
                      ddof=1)
  active = np.sqrt(global_var) >= threshold

  def votes(n):
    v = np.zeros((data.num_factors, len(global_var)), dtype=np.int64)
    for _ in range(n):
      k = rs.randint(data.num_factors)
      f = data.sample_factors(batch_size, rs)
      f[:, k] = f[0, k]
      local = np.var(rep(data.sample_observations_from_factors(f, rs)),
                     axis=0, ddof=1)
      v[k, np.argmin(local[active] / global_var[active])] += 1
    return v

  train = votes(num_train)
  classifier = np.argmax(train, axis=0)
  cols = np.arange(train.shape[1])
  evals = votes(num_eval)
  return (np.sum(train[classifier, cols]) / np.sum(train),
          np.sum(evals[classifier, cols]) / np.sum(evals))


def ref_beta_vae(data, rep, rs, batch_size, num_train, num_eval):
  def points(n):
    x, y = [], []
    for _ in range(n):
      k = rs.randint(data.num_factors)
      f1 = data.sample_factors(batch_size, rs)
      f2 = data.sample_factors(batch_size, rs)
      f2[:, k] = f1[:, k]
      z1 = rep(data.sample_observations_from_factors(f1, rs))
      z2 = rep(data.sample_observations_from_factors(f2, rs))
      x.append(np.mean(np.abs(z1 - z2), axis=0))
      y.append(k)
    return np.array(x), np.array(y)

  xtr, ytr = points(num_train)
  model = LogisticRegression().fit(xtr, ytr)
  xev, yev = points(num_eval)
  return model.score(xtr, ytr), model.score(xev, yev)


# ---------------------------------------------------------------------------
# Discretisation and mutual information
# ---------------------------------------------------------------------------


def test_histogram_discretize_uses_dlib_edges():
  codes = np.array([[0.0, 7.0], [0.24, 7.0], [0.5, 7.0], [1.0, 7.0]])
  labels = metrics.histogram_discretize(codes, num_bins=4)
  # Edges 0, .25, .5, .75(, 1): the max falls in the last bin; a constant
  # column falls in one bin.
  np.testing.assert_array_equal(labels[:, 0], [1, 1, 3, 4])
  assert len(np.unique(labels[:, 1])) == 1
  rs = np.random.RandomState(0)
  for dtype in (np.float32, np.float64):
    x = rs.randn(500, 3).astype(dtype)
    np.testing.assert_array_equal(metrics.histogram_discretize(x, 20),
                                  ref_discretize(x, 20))


def test_discrete_mutual_info_and_entropy_match_sklearn():
  rs = np.random.RandomState(1)
  a = rs.randint(0, 7, size=(300, 3))
  b = np.stack([a[:, 0] // 2, rs.randint(0, 3, 300), a[:, 1] + a[:, 2]], 1)
  np.testing.assert_allclose(metrics.discrete_mutual_info(a, b),
                             ref_mi_matrix(a, b), rtol=0, atol=1e-12)
  entropy = [sklearn_metrics.mutual_info_score(b[:, j], b[:, j])
             for j in range(3)]
  np.testing.assert_allclose(metrics.discrete_entropy(b), entropy, atol=1e-12)
  # A constant column carries no information.
  np.testing.assert_allclose(
      metrics.discrete_mutual_info(np.zeros((10, 1), int), a[:10]), 0.0)


# ---------------------------------------------------------------------------
# MIG
# ---------------------------------------------------------------------------


def test_mig_hand_computed():
  # f0, f1 are two independent fair bits; code 0 copies f0, code 1 is f0 OR
  # f1. I(c1; f0) = I(c1; f1) = H(1/4, 3/4) - log(2)/2 =: m, I(c0; f0) =
  # log 2, I(c0; f1) = 0. Gaps: factor 0 (log 2 - m), factor 1 (m - 0), so
  # MIG = ((log 2 - m) + m) / (2 log 2) = 1/2 exactly.
  factors = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  codes = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
  m = 0.25 * np.log(4) + 0.75 * np.log(4 / 3) - 0.5 * np.log(2)
  mi = metrics.discrete_mutual_info(metrics.histogram_discretize(codes, 2),
                                    factors)
  np.testing.assert_allclose(mi, [[np.log(2), 0.0], [m, m]], atol=1e-15)
  assert metrics.mig(codes, factors, num_bins=2) == pytest.approx(0.5,
                                                                  abs=1e-15)


def test_mig_matches_dlib_computation():
  codes, factors = sample_arrays(noisy_rep, 1500, seed=3)
  assert metrics.mig(codes, factors) == pytest.approx(
      ref_mig(codes, factors), abs=1e-12)
  codes32 = codes.astype(np.float32)
  assert metrics.mig(codes32, factors, 7) == pytest.approx(
      ref_mig(codes32, factors, 7), abs=1e-12)


def test_mig_orders_perfect_mixed_random():
  scores = {name: metrics.mig(*sample_arrays(rep, 3000, seed=0))
            for name, rep in [("perfect", perfect_rep), ("mixed", mixed_rep),
                              ("random", make_random_rep())]}
  assert scores["perfect"] > 0.98
  assert 0.1 < scores["mixed"] < 0.8
  assert scores["random"] < 0.03


def test_mig_invariant_to_code_permutation_and_positive_rescaling():
  codes, factors = sample_arrays(noisy_rep, 1000, seed=4)
  transformed = codes[:, [2, 0, 3, 1]] * np.array([3.0, 0.25, 17.0, 1e-3])
  assert metrics.mig(transformed, factors) == pytest.approx(
      metrics.mig(codes, factors), abs=1e-12)


def test_mig_rejects_undefined_inputs():
  codes, factors = sample_arrays(perfect_rep, 50, seed=0)
  constant = factors.copy()
  constant[:, 1] = 2
  with pytest.raises(ValueError, match=r"factor\(s\) \[1\] take a single"):
    metrics.mig(codes, constant)
  with pytest.raises(ValueError, match="at least 2 codes"):
    metrics.mig(codes[:, :1], factors)
  bad = codes.copy()
  bad[3, 2] = np.nan
  with pytest.raises(ValueError, match=r"code column\(s\) \[2\]"):
    metrics.mig(bad, factors)
  with pytest.raises(ValueError, match="integer factor class indices"):
    metrics.mig(codes, factors.astype(float))
  with pytest.raises(ValueError, match="same samples"):
    metrics.mig(codes, factors[:-1])


# ---------------------------------------------------------------------------
# DCI
# ---------------------------------------------------------------------------


def test_dci_from_importance_hand_computed_and_edge_cases():
  def scores(r):
    s = metrics.dci_from_importance(np.array(r, dtype=float))
    return s["disentanglement"], s["completeness"]

  np.testing.assert_allclose(scores(np.eye(3)), [1.0, 1.0], atol=1e-8)
  np.testing.assert_allclose(scores(np.ones((3, 3))), [0.0, 0.0], atol=1e-12)
  # All zero: uniform weights, uniform (eps) distributions -> 0, as dlib.
  np.testing.assert_allclose(scores(np.zeros((2, 3))), [0.0, 0.0],
                             atol=1e-12)
  # Both codes predict only factor 0: each code is perfectly disentangled,
  # factor 0 is split evenly over 2 codes (completeness 0) and factor 1 has
  # weight 0.
  np.testing.assert_allclose(scores([[1.0, 0.0], [1.0, 0.0]]), [1.0, 0.0],
                             atol=1e-8)
  # A zero row contributes nothing; the rest are perfect.
  np.testing.assert_allclose(scores([[2.0, 0.0], [0.0, 0.0], [0.0, 1.0]]),
                             [1.0, 1.0], atol=1e-8)
  rs = np.random.RandomState(0)
  r = rs.rand(6, 4) ** 3
  np.testing.assert_allclose(scores(r), ref_dci_from_importance(r),
                             atol=1e-12)
  # dlib returns NaN with a single factor (entropy in base 1); we return 1.
  assert scores([[1.0], [0.0]])[0] == pytest.approx(1.0)
  with pytest.raises(ValueError, match="non-negative"):
    metrics.dci_from_importance(-np.eye(2))


def test_dci_orders_perfect_mixed_random_and_parallel_agrees():
  def run(rep, n_jobs=1):
    codes, factors = sample_arrays(rep, 700, seed=5)
    return metrics.dci(codes[:500], factors[:500], codes[500:], factors[500:],
                       n_jobs=n_jobs, random_state=0)

  perfect, mixed, random = (run(perfect_rep), run(mixed_rep),
                            run(make_random_rep()))
  assert perfect["disentanglement"] > 0.95 and perfect["completeness"] > 0.95
  assert perfect["informativeness_test"] == pytest.approx(1.0)
  assert perfect["informativeness_train"] == pytest.approx(1.0)
  assert random["disentanglement"] < 0.3
  assert random["informativeness_test"] < 0.5
  for key in ("disentanglement", "completeness"):
    assert random[key] < mixed[key] < perfect[key]
  assert set(perfect) == {"disentanglement", "completeness",
                          "informativeness_train", "informativeness_test"}
  assert run(mixed_rep, n_jobs=2) == mixed


# ---------------------------------------------------------------------------
# SAP
# ---------------------------------------------------------------------------


def test_sap_matches_dlib_computation():
  codes, factors = sample_arrays(noisy_rep, 600, seed=6)
  args = (codes[:400], factors[:400], codes[400:], factors[400:])
  for continuous in (False, True):
    assert metrics.sap(*args, continuous_factors=continuous,
                       n_jobs=1) == pytest.approx(
                           ref_sap(*args, continuous), abs=1e-12)


def test_sap_orders_perfect_mixed_random():
  def run(rep, continuous):
    codes, factors = sample_arrays(rep, 1500, seed=7)
    return metrics.sap(codes[:1000], factors[:1000], codes[1000:],
                       factors[1000:], continuous_factors=continuous,
                       n_jobs=1)

  # Continuous: a code that is a linear function of its factor has R^2 = 1
  # and the others about 0.
  assert run(lambda o: flat(o) * [2.0, -1.0, 0.5], True) > 0.98
  assert run(make_random_rep(), True) < 0.02
  perfect, mixed, random = (run(perfect_rep, False), run(mixed_rep, False),
                            run(make_random_rep(), False))
  assert random < 0.05 < mixed < perfect
  # Discrete: the best code is far above the second one, which sits near
  # chance, so a perfect code cannot reach 1.
  codes, factors = sample_arrays(lambda o: flat(o) * [2.0, -1.0, 0.5], 600,
                                 seed=8)
  matrix = metrics.sap_score_matrix(codes[:400], factors[:400], codes[400:],
                                    factors[400:], n_jobs=1)
  assert matrix.shape == (3, 3)
  assert np.all(np.argmax(matrix, axis=0) == [0, 1, 2])


# ---------------------------------------------------------------------------
# Modularity and explicitness
# ---------------------------------------------------------------------------


def test_modularity_from_mutual_info_hand_computed():
  assert metrics.modularity_from_mutual_info(np.eye(3)) == 1.0
  # One code equally informative about two factors: delta = 1.
  assert metrics.modularity_from_mutual_info([[1.0, 1.0]]) == 0.0
  # Code 0: 1 - 0.5^2 / (1 * 2) = 0.875; code 1 is uninformative -> 0.
  assert metrics.modularity_from_mutual_info(
      [[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]]) == pytest.approx(0.875 / 2)
  m = np.random.RandomState(0).rand(5, 4)
  m[2] = 0
  assert metrics.modularity_from_mutual_info(m) == pytest.approx(
      ref_modularity(m), abs=1e-14)


def test_modularity_explicitness_matches_dlib_computation():
  codes, factors = sample_arrays(noisy_rep, 900, seed=9)
  args = (codes[:600], factors[:600], codes[600:], factors[600:])
  scores = metrics.modularity_explicitness(*args, n_jobs=1)
  mi = ref_mi_matrix(ref_discretize(args[0], 20), args[1])
  assert scores["modularity"] == pytest.approx(ref_modularity(mi), abs=1e-12)
  train, test = ref_explicitness(*args)
  assert scores["explicitness_train"] == pytest.approx(train, abs=1e-9)
  assert scores["explicitness_test"] == pytest.approx(test, abs=1e-9)


def test_modularity_explicitness_orders_representations():
  def run(rep):
    codes, factors = sample_arrays(rep, 1500, seed=10)
    return metrics.modularity_explicitness(
        codes[:1000], factors[:1000], codes[1000:], factors[1000:], n_jobs=1)

  perfect, mixed, random = (run(perfect_rep), run(mixed_rep),
                            run(make_random_rep()))
  assert perfect["modularity"] > 0.97
  assert mixed["modularity"] < perfect["modularity"]
  assert perfect["explicitness_test"] > 0.95
  assert abs(random["explicitness_test"] - 0.5) < 0.05
  assert random["explicitness_test"] < perfect["explicitness_test"]


# ---------------------------------------------------------------------------
# Unsupervised scores
# ---------------------------------------------------------------------------


def codes_with_exact_covariance(cov, num=500, seed=0):
  """Samples whose sample covariance (ddof=1) equals ``cov`` exactly."""
  x = np.random.RandomState(seed).randn(num, len(cov))
  x -= x.mean(axis=0)
  whiten = np.linalg.cholesky(np.cov(x, rowvar=False))
  x = np.linalg.solve(whiten, x.T).T
  return x @ np.linalg.cholesky(cov).T


def test_gaussian_total_correlation_hand_computed():
  for rho in (0.0, 0.3, -0.8):
    codes = codes_with_exact_covariance(
        np.array([[4.0, 2.0 * rho], [2.0 * rho, 1.0]]))
    assert metrics.gaussian_total_correlation(codes) == pytest.approx(
        -0.5 * np.log(1 - rho ** 2), abs=1e-10)
  # Block-independent: TC adds up.
  cov = scipy.linalg.block_diag([[1.0, 0.5], [0.5, 1.0]],
                                [[2.0, -0.6], [-0.6, 0.5]])
  rho2 = 0.6 ** 2 / (2.0 * 0.5)
  assert metrics.gaussian_total_correlation(
      codes_with_exact_covariance(cov)) == pytest.approx(
          -0.5 * np.log(1 - 0.25) - 0.5 * np.log(1 - rho2), abs=1e-10)
  with pytest.raises(ValueError, match=r"code\(s\) \[1\] are constant"):
    metrics.gaussian_total_correlation(np.c_[np.arange(5.0), np.ones(5)])


def test_wasserstein_correlation_matches_dlib_formula():
  codes = noisy_rep(ToyData().sample_observations(400, 0))
  cov = np.cov(codes, rowvar=False)
  expected = 2 * np.trace(cov) - 2 * np.trace(
      scipy.linalg.sqrtm(cov * np.expand_dims(np.diag(cov), axis=1))).real
  assert metrics.gaussian_wasserstein_correlation(codes) == pytest.approx(
      expected, abs=1e-9)
  assert metrics.gaussian_wasserstein_correlation_norm(
      codes) == pytest.approx(expected / np.trace(cov), abs=1e-9)
  diagonal = codes_with_exact_covariance(np.diag([1.0, 3.0]))
  assert metrics.gaussian_wasserstein_correlation(diagonal) == pytest.approx(
      0.0, abs=1e-9)


def test_mutual_info_score_hand_computed_and_reference():
  # Two identical fair bits: I = log 2 for both ordered pairs.
  codes = np.array([[0.0, 5.0], [0.0, 5.0], [1.0, 6.0], [1.0, 6.0]])
  assert metrics.mutual_info_score(codes, num_bins=2) == pytest.approx(
      np.log(2), abs=1e-15)
  codes = noisy_rep(ToyData().sample_observations(800, 1))
  labels = ref_discretize(codes, 20)
  m = ref_mi_matrix(labels, labels)
  np.fill_diagonal(m, 0)
  expected = m.sum() / (m.shape[0] ** 2 - m.shape[0])
  scores = metrics.unsupervised_scores(codes)
  assert scores["mutual_info_score"] == pytest.approx(expected, abs=1e-12)
  assert scores["gaussian_total_correlation"] == pytest.approx(
      metrics.gaussian_total_correlation(codes), abs=1e-12)
  independent = np.random.RandomState(0).rand(5000, 3)
  assert metrics.mutual_info_score(independent) < 0.05
  assert metrics.gaussian_total_correlation(independent) < 0.01


# ---------------------------------------------------------------------------
# FactorVAE and BetaVAE scores
# ---------------------------------------------------------------------------

SMALL_VOTES = dict(batch_size=16, num_train=150, num_eval=100)


def test_factor_vae_matches_dlib_protocol_draw_for_draw():
  data = ToyData(noise=0.05)
  ours = metrics.factor_vae_score(data, noisy_rep, np.random.RandomState(3),
                                  num_variance_estimate=300,
                                  chunk_size=100, **SMALL_VOTES)
  train, evals = ref_factor_vae(data, noisy_rep, np.random.RandomState(3),
                                16, 150, 100, 300, 0.05)
  assert ours["train_accuracy"] == train
  assert ours["eval_accuracy"] == evals
  assert ours["num_active_dims"] == 4


def test_factor_vae_orders_perfect_mixed_random():
  data = ToyData()
  run = lambda rep: metrics.factor_vae_score(  # noqa: E731
      data, rep, 0, num_variance_estimate=500, **SMALL_VOTES)
  perfect, mixed, random = (run(perfect_rep), run(mixed_rep),
                            run(make_random_rep()))
  assert perfect == {"train_accuracy": 1.0, "eval_accuracy": 1.0,
                     "num_active_dims": 3}
  assert random["eval_accuracy"] < 0.6
  assert random["eval_accuracy"] < mixed["eval_accuracy"] < 1.0


def test_factor_vae_invariant_to_permutation_and_rescaling():
  data = ToyData(noise=0.05)
  base = metrics.factor_vae_score(data, noisy_rep, 1,
                                  num_variance_estimate=300, **SMALL_VOTES)
  transformed = metrics.factor_vae_score(
      data, lambda o: noisy_rep(o)[:, [3, 1, 0, 2]] * [8.0, 0.5, 3.0, 64.0],
      1, num_variance_estimate=300, **SMALL_VOTES)
  assert transformed == base


def test_factor_vae_prunes_collapsed_codes():
  data = ToyData()
  # Code 3 is factor a at a scale whose std (~0.011) is below 0.05.
  rep = lambda o: np.c_[perfect_rep(o), 0.01 * flat(o)[:, 0]]  # noqa: E731
  scores = metrics.factor_vae_score(data, rep, 0, num_variance_estimate=500,
                                    **SMALL_VOTES)
  assert scores["num_active_dims"] == 3
  assert scores["eval_accuracy"] == 1.0
  with pytest.warns(UserWarning, match="every dimension is pruned"):
    scores = metrics.factor_vae_score(
        data, lambda o: 1e-3 * perfect_rep(o), 0, num_variance_estimate=500,
        **SMALL_VOTES)
  assert scores == {"train_accuracy": 0.0, "eval_accuracy": 0.0,
                    "num_active_dims": 0}
  with pytest.raises(ValueError, match="batch_size must be an integer >= 2"):
    metrics.factor_vae_score(data, perfect_rep, 0, batch_size=1)


def test_beta_vae_matches_dlib_protocol_and_orders_representations():
  data = ToyData(noise=0.05)
  ours = metrics.beta_vae_score(data, noisy_rep, np.random.RandomState(4),
                                chunk_size=50, **SMALL_VOTES)
  train, evals = ref_beta_vae(data, noisy_rep, np.random.RandomState(4), 16,
                              150, 100)
  assert ours["train_accuracy"] == pytest.approx(train, abs=1e-12)
  assert ours["eval_accuracy"] == pytest.approx(evals, abs=1e-12)
  clean = ToyData()
  perfect = metrics.beta_vae_score(clean, perfect_rep, 0, **SMALL_VOTES)
  random = metrics.beta_vae_score(clean, make_random_rep(), 0, **SMALL_VOTES)
  assert perfect["eval_accuracy"] == 1.0
  assert random["eval_accuracy"] < 0.6


# ---------------------------------------------------------------------------
# Sampling and the suite
# ---------------------------------------------------------------------------


def test_sample_codes_and_factors_draws_like_dlib_and_chunks_calls():
  data = ToyData(noise=0.1)
  calls = []

  def rep(obs):
    calls.append(len(obs))
    return flat(obs)

  codes, factors = metrics.sample_codes_and_factors(
      data, rep, 100, np.random.RandomState(0), batch_size=16, chunk_size=40)
  rs = np.random.RandomState(0)
  expected_f, expected_obs = [], []
  for size in [16] * 6 + [4]:
    f, o = data.sample(size, rs)
    expected_f.append(f)
    expected_obs.append(flat(o))
  np.testing.assert_array_equal(factors, np.concatenate(expected_f))
  np.testing.assert_array_equal(codes, np.concatenate(expected_obs))
  assert max(calls) <= 40 and sum(calls) == 100


TINY_SIZES = {
    "mig": {"num_train": 400},
    "dci": {"num_train": 300, "num_test": 200},
    "sap": {"num_train": 400, "num_test": 200},
    "modularity": {"num_train": 400, "num_test": 200},
    "unsupervised": {"num_train": 400},
    "beta_vae": {"batch_size": 16, "num_train": 100, "num_eval": 50},
    "factor_vae": {"batch_size": 16, "num_train": 100, "num_eval": 50,
                   "num_variance_estimate": 300},
}


def test_evaluate_representation_reuses_dlib_draws_and_is_json():
  data = ToyData()
  stages = []
  results = metrics.evaluate_representation(
      data, perfect_rep, random_state=7, sizes=TINY_SIZES,
      on_progress=lambda stage, seconds: stages.append((stage, seconds)),
      metrics=list(TINY_SIZES), n_jobs=1)
  json.dumps(results)
  # The metrics of TINY_SIZES, in the registry's order (the newer ones are
  # tested in test_metrics_dlib_extra.py).
  assert [s for s, _ in stages] == ["sample_pool"] + list(TINY_SIZES)
  assert all(seconds >= 0 for _, seconds in stages)
  score_keys = {k for k in results if not k.startswith("settings/")}
  assert score_keys == {
      "mig", "dci/disentanglement", "dci/completeness",
      "dci/informativeness_train", "dci/informativeness_test", "sap",
      "modularity/modularity", "modularity/explicitness_train",
      "modularity/explicitness_test",
      "unsupervised/gaussian_total_correlation",
      "unsupervised/gaussian_wasserstein_correlation",
      "unsupervised/gaussian_wasserstein_correlation_norm",
      "unsupervised/mutual_info_score", "beta_vae/train_accuracy",
      "beta_vae/eval_accuracy", "factor_vae/train_accuracy",
      "factor_vae/eval_accuracy", "factor_vae/num_active_dims"}
  assert all(isinstance(results[k], float) for k in score_keys)
  assert results["settings/random_seed"] == 7
  assert results["settings/dci/num_train"] == 300
  assert results["factor_vae/eval_accuracy"] == 1.0
  assert results["beta_vae/eval_accuracy"] == 1.0
  # Each pool metric sees exactly what dlib's run with seed 7 would draw:
  # num_train points, then num_test points, from a fresh RandomState(7).
  rs = np.random.RandomState(7)
  train = metrics.sample_codes_and_factors(data, perfect_rep, 400, rs)
  test = metrics.sample_codes_and_factors(data, perfect_rep, 200, rs)
  assert results["mig"] == metrics.mig(*train)
  assert results["sap"] == metrics.sap(*train, *test, n_jobs=1)
  rs = np.random.RandomState(7)
  dci_train = metrics.sample_codes_and_factors(data, perfect_rep, 300, rs)
  assert results["dci/informativeness_train"] == metrics.dci(
      *dci_train, *test, n_jobs=1,
      random_state=7)["informativeness_train"]
  assert results["factor_vae/eval_accuracy"] == metrics.factor_vae_score(
      data, perfect_rep, 7, **TINY_SIZES["factor_vae"])["eval_accuracy"]


def test_evaluate_representation_subset_and_argument_errors():
  data = ToyData()
  results = metrics.evaluate_representation(
      data, mixed_rep, random_state=np.random.RandomState(0),
      sizes=TINY_SIZES, metrics=["unsupervised", "mig"], n_jobs=1)
  assert {k for k in results if not k.startswith("settings/")} == {
      "mig", "unsupervised/gaussian_total_correlation",
      "unsupervised/gaussian_wasserstein_correlation",
      "unsupervised/gaussian_wasserstein_correlation_norm",
      "unsupervised/mutual_info_score"}
  again = metrics.evaluate_representation(
      data, mixed_rep, random_state=results["settings/random_seed"],
      sizes=TINY_SIZES, metrics=["mig", "unsupervised"], n_jobs=1)
  assert again == results
  with pytest.raises(ValueError, match="unknown metric 'migg'"):
    metrics.evaluate_representation(data, mixed_rep, sizes={"migg": {}})
  with pytest.raises(ValueError, match="unknown setting 'num_test'"):
    metrics.evaluate_representation(data, mixed_rep,
                                    sizes={"mig": {"num_test": 3}})
  with pytest.raises(ValueError, match="non-empty subset"):
    metrics.evaluate_representation(data, mixed_rep, metrics=["dsc"])
  for sizes in (metrics.DEFAULT_SIZES, metrics.CHEAP_SIZES):
    assert set(sizes) == set(metrics.ALL_METRICS)


def test_default_sizes_are_dlib_study_settings():
  assert metrics.DEFAULT_SIZES["mig"] == {"num_train": 10000}
  for name in ("dci", "sap", "modularity"):
    assert metrics.DEFAULT_SIZES[name] == {"num_train": 10000,
                                           "num_test": 5000}
  assert metrics.DEFAULT_SIZES["beta_vae"] == {
      "batch_size": 64, "num_train": 10000, "num_eval": 5000}
  assert metrics.DEFAULT_SIZES["factor_vae"] == {
      "batch_size": 64, "num_train": 10000, "num_eval": 5000,
      "num_variance_estimate": 10000}
  assert metrics.DEFAULT_NUM_BINS == 20
  assert metrics.DEFAULT_PRUNE_THRESHOLD == 0.05


def test_metrics_package_does_not_import_training_code_or_jax():
  code = ("import sys, factorvae_jax.metrics; "
          "bad = [m for m in sys.modules if m == 'jax' or m.startswith(("
          "'factorvae_jax.training', 'factorvae_jax.models', "
          "'factorvae_jax.objectives', 'factorvae_jax.data'))]; "
          "assert not bad, bad")
  repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=repo_root)

