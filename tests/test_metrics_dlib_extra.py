"""Tests for IRS, the downstream tasks, fairness and UDR (metrics/*_metric.py,
downstream.py) and for UDR over a sweep (sweeps/udr.py).

Expected numbers are worked out by hand in the comments, on codes chosen so
that the arithmetic is exact: a perfectly disentangled code, a rotated one
and one with a dead dimension. Agreement with disentanglement_lib's own code
on random representations was checked outside the suite (docs/metrics.md,
"IRS, downstream tasks, fairness and UDR").
"""

import itertools
import json
import os

import jax
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax import metrics
from factorvae_jax import sweeps
from factorvae_jax.builder import run_config
from factorvae_jax.builder.checkpointing import Checkpointer
from factorvae_jax.builder.model import build_step_config
from factorvae_jax.builder.state import create_train_state
from factorvae_jax.builder.state import read_hparams
from factorvae_jax.builder.trained_model import load_trained_model
from factorvae_jax.data.ground_truth import GroundTruthData
from factorvae_jax.metrics import fairness_metric
from factorvae_jax.metrics import irs_metric
from factorvae_jax.metrics import udr_metric
from factorvae_jax.sweeps import aggregate
from factorvae_jax.sweeps import figures
from factorvae_jax.sweeps import snapshot
from factorvae_jax.sweeps import udr as sweep_udr
from tests import test_metrics


class Grid(GroundTruthData):
  """Two factors, 2 and 3 classes; the observation is the factor vector."""

  factor_names = ("a", "b")
  factors_num_values = (2, 3)
  observation_shape = (1, 1, 2)
  source = "tests"

  def sample_observations_from_factors(self, factors, random_state):
    return np.asarray(factors, np.float32).reshape(len(factors), 1, 1, 2)

  def sample_device_batch(self, arrays, key, batch_size):
    raise NotImplementedError


def factors_of(obs):
  return np.asarray(obs, np.float64).reshape(len(obs), -1)


def perfect(obs):
  return factors_of(obs)


def rotated(obs):
  """45-degree rotation of the factors: (a + b, a - b) / sqrt(2)."""
  f = factors_of(obs)
  return np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1]], 1) / np.sqrt(2)


def with_dead(obs):
  """The perfect code plus a constant (collapsed) dimension."""
  f = factors_of(obs)
  return np.concatenate([f, np.full((len(f), 1), 0.25)], 1)


def full_grid(*sizes, repeat=1):
  """Every combination of classes, ``repeat`` times: factors exactly
  uncorrelated in the sample."""
  rows = list(itertools.product(*[range(n) for n in sizes])) * repeat
  return np.array(rows, np.int64)


# ---------------------------------------------------------------------------
# IRS
# ---------------------------------------------------------------------------


def test_irs_perfect_rotated_and_dead_codes_by_hand():
  factors = full_grid(2, 2)  # (a, b) in {0, 1}^2, each once
  # Perfect: with its factor fixed a code does not move: IRS 1.
  assert irs_metric.irs_from_codes(factors.astype(float), factors,
                                   diff_quantile=1.0) == {
                                       "IRS": 1.0, "num_active_dims": 2}
  # Rotated, z = (a + b, a - b): max |z - E z| = 1 for both codes; with a
  # (or b) fixed each code takes two values 1 apart, so it moves 0.5 from
  # the group mean. Every entry is 1 - 0.5 / 1 = 0.5.
  codes = np.stack([factors.sum(1), factors[:, 0] - factors[:, 1]], 1)
  result = irs_metric.irs_from_codes(codes.astype(float), factors,
                                     diff_quantile=1.0)
  assert result == {"IRS": 0.5, "num_active_dims": 2}
  # A dead (constant) code is dropped: the score of the perfect code, and
  # num_active_dims counts the live codes (dlib sums their values instead).
  dead = np.concatenate([factors, np.full((4, 1), 3.0)], 1)
  assert irs_metric.irs_from_codes(dead, factors, diff_quantile=1.0) == {
      "IRS": 1.0, "num_active_dims": 2}
  # Every code dead: 0, as dlib.
  assert irs_metric.irs_from_codes(np.ones((4, 2)), factors) == {
      "IRS": 0.0, "num_active_dims": 0}


def test_irs_groups_factor_classes_into_dlib_histogram_bins():
  # dlib discretises the factors into 20 bins: 40 classes become 20 groups
  # {2k, 2k + 1}. A code equal to the factor then deviates 0.5 from each
  # group's mean, against max |z - E z| = 19.5: IRS = 1 - 0.5 / 19.5.
  factors = np.arange(40)[:, None]
  result = irs_metric.irs_from_codes(factors.astype(float), factors,
                                     diff_quantile=1.0)
  assert result["IRS"] == pytest.approx(1 - 0.5 / 19.5, abs=1e-12)
  # With 40 bins every class is its own group again.
  assert irs_metric.irs_from_codes(factors.astype(float), factors,
                                   diff_quantile=1.0, num_bins=40)["IRS"] == 1


def test_irs_samples_like_dlib_and_checks_arguments():
  data = test_metrics.ToyData(noise=0.1)
  result = metrics.irs(data, test_metrics.noisy_rep, 3, num_train=300)
  codes, factors = metrics.sample_codes_and_factors(
      data, test_metrics.noisy_rep, 300, np.random.RandomState(3), 16)
  assert result == irs_metric.irs_from_codes(codes, factors)
  with pytest.raises(ValueError, match=r"diff_quantile must be in \[0, 1\]"):
    metrics.irs(data, test_metrics.noisy_rep, 0, diff_quantile=99)


# ---------------------------------------------------------------------------
# Downstream tasks
# ---------------------------------------------------------------------------


def test_downstream_boosted_trees_by_hand_and_dlib_keys():
  # Perfect, rotated and padded-with-a-dead-dimension codes all give every
  # (a, b) cell a distinct code, so 100 boosting stages fit the training
  # points exactly and classify every test point right.
  for rep in (perfect, rotated, with_dead):
    scores = metrics.downstream_task(Grid(), rep, 0, num_train=(40,),
                                     num_test=30,
                                     predictor="gradient_boosting", n_jobs=1)
    assert scores == {
        "40:mean_train_accuracy": 1.0, "40:mean_test_accuracy": 1.0,
        "40:min_train_accuracy": 1.0, "40:min_test_accuracy": 1.0,
        "40:train_accuracy_factor_0": 1.0, "40:test_accuracy_factor_0": 1.0,
        "40:train_accuracy_factor_1": 1.0, "40:test_accuracy_factor_1": 1.0,
    }, rep.__name__


def test_downstream_without_a_factor_predicts_its_majority_class():
  # The code keeps b only: a's classifier can only learn, in each of b's
  # three cells, the class of a most frequent there in the training set;
  # its test accuracy is how often that guess is right. b's stays perfect.
  def b_only(obs):
    return factors_of(obs)[:, 1:]

  scores = metrics.downstream_task(Grid(), b_only, 1, num_train=(60,),
                                   num_test=40,
                                   predictor="gradient_boosting", n_jobs=1)
  rs = np.random.RandomState(1)
  _, train = metrics.sample_codes_and_factors(Grid(), b_only, 60, rs)
  _, test = metrics.sample_codes_and_factors(Grid(), b_only, 40, rs)
  assert scores["60:test_accuracy_factor_1"] == 1.0
  assert scores["60:min_test_accuracy"] == scores["60:test_accuracy_factor_0"]
  # In each of b's cells the trees predict the class of a that was more
  # frequent there in training (either one where the two tie).
  guesses = []
  for b in range(3):
    counts = np.bincount(train[train[:, 1] == b, 0], minlength=2)
    guesses.append([c for c in (0, 1) if counts[c] == counts.max()])
  possible = {sum(np.sum((test[:, 1] == b) & (test[:, 0] == g[b]))
                  for b in range(3)) / 40
              for g in itertools.product(*guesses)}
  assert scores["60:test_accuracy_factor_0"] in possible


def test_downstream_logistic_regression_is_dlib_procedure():
  # dlib's loop: for each size, train points then test points from one
  # RandomState (16 per sample call), one LogisticRegressionCV(Cs=10,
  # cv=KFold(5)) per factor.
  from sklearn import linear_model, model_selection  # pylint: disable=g-import-not-at-top
  scores = metrics.downstream_task(Grid(), rotated, 2, num_train=(10, 20),
                                   num_test=20, n_jobs=1)
  rs = np.random.RandomState(2)
  for size in (10, 20):
    x, y = metrics.sample_codes_and_factors(Grid(), rotated, size, rs)
    xt, yt = metrics.sample_codes_and_factors(Grid(), rotated, 20, rs)
    if size == 10:
      continue  # Drawn only: size 20's points come after these.
    for k in range(2):
      model = linear_model.LogisticRegressionCV(
          Cs=10, cv=model_selection.KFold(n_splits=5)).fit(x, y[:, k])
      assert scores[f"{size}:test_accuracy_factor_{k}"] == np.mean(
          model.predict(xt) == yt[:, k])
  assert len(scores) == 2 * (4 + 2 * 2)


def test_downstream_and_fairness_argument_errors():
  with pytest.raises(ValueError, match="at least one training set size"):
    metrics.downstream_task(Grid(), perfect, 0, num_train=())
  with pytest.raises(ValueError, match="repeats a size"):
    metrics.downstream_task(Grid(), perfect, 0, num_train=(10, 10))
  with pytest.raises(ValueError, match=r"predictor must be one of "
                     r"\['logistic_regression_cv', 'gradient_boosting'\]"):
    metrics.downstream_task(Grid(), perfect, 0, predictor="lasso")
  with pytest.raises(ValueError, match="predictor must be one of"):
    metrics.fairness(Grid(), perfect, 0, predictor="linear_regression")


# ---------------------------------------------------------------------------
# Fairness
# ---------------------------------------------------------------------------


def test_inter_group_fairness_by_hand():
  # Predictions follow the sensitive class exactly: each column's
  # distribution is one-hot against a pooled (1/2, 1/2): TV 1/2 each.
  assert fairness_metric.inter_group_fairness([[2, 0], [0, 2]]) == (0.5, 0.5)
  # Columns (1, 1) and (3, 1) of 2 and 4 predictions; pooled (4, 2) / 6.
  # TV: |1/2 - 2/3| = 1/6 and |3/4 - 2/3| = 1/12; weighted mean
  # (2/6 + 4/12) / 6 = 1/9; max 1/6. (float32, as dlib.)
  mean, worst = fairness_metric.inter_group_fairness([[1, 3], [1, 1]])
  assert mean == pytest.approx(1 / 9, abs=1e-7)
  assert worst == pytest.approx(1 / 6, abs=1e-7)


def test_fairness_scores_keys_and_summaries_by_hand():
  matrix = np.array([[0, .1, .2], [.3, 0, .4], [.5, .6, 0]])
  scores = fairness_metric.fairness_scores(matrix, "mean_fairness")
  # 6 pairs, 2 x 3 per-target, 2 x 3 per-sensitive, 8 overall = 26 keys.
  assert len(scores) == 26
  assert scores["mean_fairness:pred1:sens2"] == .4
  assert scores["mean_fairness:pred0:mean_sens"] == pytest.approx(.15)
  assert scores["mean_fairness:sens0:max_pred"] == .5
  # Row means .15, .35, .55; column means .4, .35, .3.
  assert scores["mean_fairness:mean_pred:mean_sens"] == pytest.approx(.35)
  assert scores["mean_fairness:max_pred:mean_sens"] == pytest.approx(.55)
  assert scores["mean_fairness:max_sens:mean_pred"] == pytest.approx(.4)
  # Row maxima .2, .4, .6 -> mean .4; column maxima .5, .6, .4 -> max .6.
  assert scores["mean_fairness:mean_pred:max_sens"] == pytest.approx(.4)
  assert scores["mean_fairness:max_sens:max_pred"] == pytest.approx(.6)


def test_fairness_is_zero_when_predictions_ignore_the_sensitive_factor():
  # Perfect, rotated and dead-dimension codes: each target's classifier is
  # exact on every cell, so its predictions are the target's own values,
  # which an intervention on the other factor does not change: every
  # total variation distance is 0.
  for rep in (perfect, rotated, with_dead):
    scores = metrics.fairness(Grid(), rep, 0, num_train=60,
                              num_test_points_per_class=10)
    assert len(scores) == 2 * (2 + 2 * 2 + 2 * 2 + 8)
    assert all(v == 0.0 for v in scores.values()), rep.__name__
    assert scores["mean_fairness:mean_pred:mean_sens"] == 0.0


def test_fairness_draws_like_dlib():
  """Training draws, then per (target, sensitive) pair one sample_factors
  and one observation draw per sensitive class: the stream ends where
  dlib's ends."""
  data = test_metrics.ToyData(noise=0.1)  # rendering consumes draws
  rs = np.random.RandomState(4)
  metrics.fairness(data, test_metrics.noisy_rep, rs, num_train=40,
                   num_test_points_per_class=3,
                   predictor="logistic_regression_cv")
  ref = np.random.RandomState(4)
  metrics.sample_codes_and_factors(data, test_metrics.noisy_rep, 40, ref)
  sizes = data.factors_num_values
  for i in range(3):
    for j in range(3):
      if i != j:
        drawn = data.sample_factors(3, ref)
        for c in range(sizes[j]):
          drawn[:, j] = c
          data.sample_observations_from_factors(drawn, ref)
  assert rs.randint(2**30) == ref.randint(2**30)


# ---------------------------------------------------------------------------
# UDR
# ---------------------------------------------------------------------------


def test_relative_strength_by_hand():
  assert udr_metric.relative_strength_disentanglement(np.eye(3)) == 1.0
  # Columns and rows score 1/2, 1/2, 1: mean 2/3 on both sides.
  two = np.array([[1., 1, 0], [1, 1, 0], [0, 0, 1]])
  assert udr_metric.relative_strength_disentanglement(two) == pytest.approx(
      2 / 3)
  assert udr_metric.relative_strength_disentanglement(
      np.ones((3, 3))) == pytest.approx(1 / 3)
  assert udr_metric.relative_strength_disentanglement(np.zeros((3, 3))) == 0
  assert udr_metric.model_scores([[0, .2, .9], [.4, 0, .1], [.6, .8, 0]]) == [
      .5, .5, .5]
  assert udr_metric.model_scores([[0, .2, .9, .1], [.4, 0, .1, .2],
                                  [.6, .8, 0, .3], [.0, .1, .7, 0]]) == [
                                      .4, .2, .7, .2]


def _grid_codes():
  # A full 3 x 4 x 5 grid, twice: standardised codes are exactly orthogonal,
  # so Lasso(alpha=0.1) soft-thresholds the least squares weights by 0.1.
  return full_grid(3, 4, 5, repeat=2).astype(np.float64)


def test_udr_perfect_permuted_rotated_and_dead_codes_by_hand():
  codes = _grid_codes()
  kl = np.ones(3)
  # Another seed's code: the same factors permuted and sign-flipped.
  other = codes[:, [2, 0, 1]] * np.array([-1.0, 1.0, -2.0])
  # Spearman: |rho| 1 on matched pairs, exactly 0 across the grid's
  # factors: a permutation matrix, score 1.
  result = metrics.udr_from_codes([codes, other], [kl, kl], "spearman")
  np.testing.assert_allclose(result["model_scores"], [1.0, 1.0], atol=1e-12)
  # Lasso: the matched weight is 1 - 0.1 = 0.9, the others 0, so every
  # row and column scores 0.9^2 / 0.9 = 0.9.
  result = metrics.udr_from_codes([codes, other], [kl, kl], "lasso")
  np.testing.assert_allclose(result["model_scores"], [0.9, 0.9], atol=1e-9)
  np.testing.assert_allclose(result["pairwise_disentanglement_scores"],
                             [[0, 0.9], [0.9, 0]], atol=1e-9)
  # Rotated by 45 degrees in the first two codes: least squares weights
  # +-1/sqrt(2) in a 2 x 2 block, so Lasso gives 1/sqrt(2) - 0.1 there;
  # each block row/column scores (w^2 / 2w) = w / 2, the third code 0.9.
  # Mean over 3 columns: (w / 2 + w / 2 + 0.9) / 3, the same for rows.
  rot = codes.copy()
  rot[:, 0] = (codes[:, 0] / codes[:, 0].std() +
               codes[:, 1] / codes[:, 1].std()) / np.sqrt(2)
  rot[:, 1] = (codes[:, 0] / codes[:, 0].std() -
               codes[:, 1] / codes[:, 1].std()) / np.sqrt(2)
  w = 1 / np.sqrt(2) - 0.1
  result = metrics.udr_from_codes([codes, rot], [kl, kl], "lasso")
  np.testing.assert_allclose(result["model_scores"], [(w + 0.9) / 3] * 2,
                             atol=1e-9)
  # A dead dimension (constant, KL 0) is zeroed and filtered out: the
  # perfect pair's 0.9 again. Unfiltered, the 4 x 3 matrix gains an
  # all-zero row (0 / 0 counts 0): columns score 0.9 each, rows
  # (0.9, 0.9, 0.9, 0) -> 0.675, and the pair (0.9 + 0.675) / 2.
  dead = np.concatenate([other, np.full((len(codes), 1), 2.0)], 1)
  kl_dead = np.array([1.0, 1.0, 1.0, 0.0])
  result = metrics.udr_from_codes([dead, codes], [kl_dead, kl], "lasso")
  np.testing.assert_allclose(result["pairwise_disentanglement_scores"][0][1],
                             0.9, atol=1e-9)
  result = metrics.udr_from_codes([dead, codes], [kl_dead, kl], "lasso",
                                  filter_low_kl=False)
  np.testing.assert_allclose(result["pairwise_disentanglement_scores"][0][1],
                             (0.9 + 0.675) / 2, atol=1e-9)


def test_udr_draws_like_dlib_and_averages_batch_kls():
  data = test_metrics.ToyData(noise=0.1)
  seen = []

  def make(k):
    def fn(obs):
      seen.append((k, np.array(obs)))
      codes = test_metrics.noisy_rep(obs)
      return codes, np.full(codes.shape[1], float(len(seen)))
    return fn

  rs = np.random.RandomState(5)
  codes, kls = udr_metric.sample_udr_codes(data, [make(0), make(1)], rs,
                                           batch_size=4, num_data_points=12)
  ref = np.random.RandomState(5)
  for b in range(3):
    expected = data.sample_observations(4, ref)
    # Every model encodes each batch, in order, before the next draw.
    np.testing.assert_array_equal(seen[2 * b][1], expected)
    np.testing.assert_array_equal(seen[2 * b + 1][1], expected)
  # KL: the mean of the batch KLs (calls 1, 3, 5 for model 0).
  np.testing.assert_array_equal(kls[0], np.full(4, 3.0))
  np.testing.assert_array_equal(kls[1], np.full(4, 4.0))
  assert codes[0].shape == (12, 4)


def test_udr_argument_errors():
  data = test_metrics.ToyData()

  def fn(obs):
    codes = test_metrics.noisy_rep(obs)
    return codes, np.ones(codes.shape[1])

  with pytest.raises(ValueError, match="at least 2 representation functions"):
    metrics.udr(data, [fn], 0)
  with pytest.raises(ValueError, match="correlation_matrix must be one of"):
    metrics.udr(data, [fn, fn], 0, correlation_matrix="pearson")
  with pytest.raises(ValueError, match="must be a multiple of batch_size"):
    metrics.udr(data, [fn, fn], 0, batch_size=7, num_data_points=100)


# ---------------------------------------------------------------------------
# Registry and suite
# ---------------------------------------------------------------------------


def test_registry_entries_have_dlib_study_defaults():
  d = metrics.DEFAULT_SIZES
  assert d["irs"] == {"num_train": 10000}
  for name in ("downstream_task_logistic_regression",
               "downstream_task_boosted_trees"):
    assert d[name] == {"num_train": (10, 100, 1000, 10000), "num_test": 5000}
  assert d["fairness"] == {"num_train": 10000,
                           "num_test_points_per_class": 100}
  assert metrics.METRICS["udr"].sizes["default"] == {
      "batch_size": 10, "num_data_points": 1000}
  assert "udr" not in metrics.ALL_METRICS and "udr" not in d
  with pytest.raises(ValueError, match="python -m experiments.udr"):
    metrics.check_metric_names(["mig", "udr"])


def test_suite_runs_the_new_metrics_with_prefixed_dlib_keys():
  names = ["irs", "downstream_task_logistic_regression",
           "downstream_task_boosted_trees", "fairness"]
  small = {"num_train": [20], "num_test": 20}
  results = metrics.evaluate_representation(
      Grid(), perfect, random_state=1, sizes={
          "irs": {"num_train": 100},
          "downstream_task_logistic_regression": small,
          "downstream_task_boosted_trees": small,
          "fairness": {"num_train": 30, "num_test_points_per_class": 2}},
      metrics=names, n_jobs=1)
  json.dumps(results)
  assert results["irs/IRS"] == 1.0 and results["irs/num_active_dims"] == 2.0
  assert "downstream_task_logistic_regression/20:mean_test_accuracy" in results
  # The perfect code's trees are exact, and so unaffected by interventions.
  assert results["downstream_task_boosted_trees/20:min_test_accuracy"] == 1.0
  assert results["fairness/mean_fairness:mean_pred:mean_sens"] == 0.0
  assert results["settings/downstream_task_logistic_regression/num_train"] == [
      20]
  assert results["settings/fairness/num_test_points_per_class"] == 2
  with pytest.raises(ValueError, match="must list at least one size"):
    metrics.evaluate_representation(
        Grid(), perfect, metrics=names[1:2],
        sizes={"downstream_task_logistic_regression": {"num_train": []}})


# ---------------------------------------------------------------------------
# UDR over a sweep, end to end on fabricated finished runs
# ---------------------------------------------------------------------------


def _fabricate_done(run, sweep_dir):
  """A finished run without training: random encoder weights, a checkpoint
  at step 40, config.json and a results.json."""
  config = run.config
  workdir = run.workdir(sweep_dir)
  os.makedirs(workdir, exist_ok=True)
  shape = (64, 64, 1)
  step_config = build_step_config(config, shape, axis_name=None)
  state = create_train_state(
      step_config, jax.random.PRNGKey(run.seed), shape,
      read_hparams(step_config.objective, config.model))
  state = state.replace(step=np.int32(40))
  checkpointer = Checkpointer(os.path.join(workdir, "checkpoints"), 2)
  checkpointer.save(state)
  checkpointer.close()
  with open(os.path.join(workdir, "config.json"), "w") as f:
    json.dump(run_config.config_to_dict(config), f)
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump({"scores": {"mig": 0.1 * run.seed}, "checkpoint_step": 40,
               "seconds": 1.0}, f)


def test_udr_over_a_sweep_is_resumable_and_equals_the_metric(tmp_path):
  sweep_dir = str(tmp_path)
  spec = os.path.join(os.path.dirname(factorvae_dsprites.__file__), "..",
                      "sweeps", "factorvae_study.py") + ":test,seeds=3"
  runs = sweeps.expand(sweeps.load_sweep(spec))
  snapshot.check_and_write(sweep_dir, spec, runs)
  group = [r for r in runs if r.name.startswith("factor_vae/gamma=10/")]
  alone = next(r for r in runs if r.name.startswith("beta_vae/"))
  for run in group[:2] + [alone]:
    _fabricate_done(run, sweep_dir)

  report = sweep_udr.score_sweep(sweep_dir, sizes="tiny", log=lambda _: None)
  assert sorted(report.encoded) == sorted(r.name for r in group[:2])
  assert report.pairs_computed == 2
  assert [n for n, _ in report.skipped] == [alone.name]
  assert set(report.scored) == {r.name for r in group[:2]}

  # The scores are the metric's on the runs' own encoders: dlib's draws
  # from RandomState(eval_seed), mean codes and batch-averaged KL.
  def representation(run):
    model = load_trained_model(run.workdir(sweep_dir))

    def fn(obs):
      mean, _ = model.encode(obs)
      return mean, model.kl_per_dim(obs)
    return fn, model.dataset

  fns, datasets = zip(*[representation(r) for r in group[:2]])
  direct = metrics.udr(datasets[0], list(fns),
                       group[0].config.eval_seed, batch_size=10,
                       num_data_points=200)
  for k, run in enumerate(group[:2]):
    assert report.scored[run.name] == pytest.approx(
        direct["model_scores"][k], abs=1e-6)
    with open(os.path.join(run.workdir(sweep_dir), "results.json")) as f:
      results = json.load(f)
    assert results["scores"]["udr/lasso"] == report.scored[run.name]
    assert results["scores"]["mig"] == 0.1 * run.seed  # kept
  rows = aggregate.collect(sweep_dir).rows
  assert {r["name"]: r.get("udr/lasso") for r in rows}[group[0].name] == (
      report.scored[group[0].name])

  # Nothing new: nothing encoded or computed, files left alone.
  codes_file = os.path.join(group[0].workdir(sweep_dir), sweep_udr.CODES_FILE)
  mtime = os.stat(codes_file).st_mtime_ns
  again = sweep_udr.score_sweep(sweep_dir, sizes="tiny", log=lambda _: None)
  assert (again.encoded, again.pairs_computed) == ([], 0)
  assert again.scored == report.scored

  # A third seed finishes later: only it is encoded, only its 4 ordered
  # pairs are computed, and all three are scored over the group.
  _fabricate_done(group[2], sweep_dir)
  later = sweep_udr.score_sweep(sweep_dir, sizes="tiny", log=lambda _: None)
  assert later.encoded == [group[2].name]
  assert later.pairs_computed == 4
  assert set(later.scored) == {r.name for r in group}
  assert os.stat(codes_file).st_mtime_ns == mtime

  # The study views: both new figures are drawn.
  collected = aggregate.collect(sweep_dir)
  written, _ = figures.write_figures(collected, sweep_dir)
  names = {os.path.basename(p) for p in written}
  assert {"rank_correlation_all_metrics.png",
          "udr_vs_supervised.png"} <= names
  assert figures.udr_metrics(collected) == ["udr/lasso"]
