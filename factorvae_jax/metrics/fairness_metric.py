"""Fairness of classifiers trained on a representation (disentanglement_lib).

Locatello et al. 2019, "On the Fairness of Disentangled Representations"
(NeurIPS), Sec. 4. A classifier predicts a *target* factor ``i`` from the
codes; its unfairness with respect to a *sensitive* factor ``j`` is how much
the distribution of its predictions changes when ``j`` is intervened on:

1. One classifier per target factor, trained on ``num_train`` points.
2. For every pair ``i != j``: ``num_test_points_per_class`` factor vectors
   are drawn once; for every class ``c`` of factor ``j`` the vectors are
   copied with factor ``j`` set to ``c``, rendered, encoded and classified.
   ``counts[p, c]`` counts the predictions ``p`` under intervention ``c``.
3. The total variation distance between each column's prediction
   distribution and the pooled one (``inter_group_fairness``); its
   count-weighted mean is ``mean_fairness[i, j]``, its maximum
   ``max_fairness[i, j]``.
4. dlib's summaries of both matrices (``fairness_scores``), among them
   ``"mean_fairness:mean_pred:mean_sens"``, the paper's score: 0 is fair.

The draws and their order are dlib's (training points, then per target and
sensitive factor one ``sample_factors`` and one observation draw per class),
and so is the float32 arithmetic of the distances.
"""

from __future__ import annotations

import numpy as np

from factorvae_jax.metrics import downstream
from factorvae_jax.metrics import sampling
from factorvae_jax.metrics import supervised
from factorvae_jax.utils.random_state import as_random_state


def inter_group_fairness(counts) -> tuple[float, float]:
  """Mean and largest total variation distance of a class to the pool.

  Args:
    counts: int [num_predicted_classes, num_sensitive_classes]: how often
      each class was predicted under each intervention on the sensitive
      factor.

  Returns:
    ``(mean, max)``: the total variation distance between each column's
    prediction distribution and the pooled distribution, averaged with the
    columns' counts as weights, and its maximum. Computed in float32, as
    dlib does, so the numbers agree with dlib's bit for bit.
  """
  counts = np.asarray(counts)
  pooled = np.sum(counts, axis=1, dtype=np.float32)
  pooled /= pooled.sum()
  per_class = np.sum(counts, axis=0)
  distributions = np.array(counts, dtype=np.float32)
  distributions /= per_class[None, :]  # In place: stays float32, as dlib's.
  distances = np.sum(np.abs(distributions - pooled[:, None]), axis=0) / 2.0
  weighted = distances * per_class
  weighted /= per_class.sum()
  return float(np.sum(weighted)), float(np.max(distances))


def fairness_scores(matrix, prefix: str) -> dict[str, float]:
  """dlib's summaries of a fairness matrix [target i, sensitive j].

  Args:
    matrix: float [F, F]; the diagonal is ignored.
    prefix: ``"mean_fairness"`` or ``"max_fairness"``.

  Returns:
    ``"<prefix>:pred<i>:sens<j>"`` for every ``i != j``;
    ``"<prefix>:pred<i>:{mean,max}_sens"`` (over sensitive factors, per
    target) and ``"<prefix>:sens<j>:{mean,max}_pred"``; and the eight
    overall combinations ``"<prefix>:{mean,max}_pred:{mean,max}_sens"``
    (the outer reduction over targets of the inner one over sensitive
    factors) and ``"<prefix>:{mean,max}_sens:{mean,max}_pred"`` (the other
    way round).
  """
  matrix = np.asarray(matrix, dtype=np.float64)
  num = matrix.shape[0]
  off = ~np.eye(num, dtype=bool)
  scores = {}
  for i in range(num):
    for j in range(num):
      if i != j:
        scores[f"{prefix}:pred{i}:sens{j}"] = float(matrix[i, j])
  row_mean = [np.mean(matrix[i][off[i]]) for i in range(num)]
  row_max = [np.max(matrix[i][off[i]]) for i in range(num)]
  for i in range(num):
    scores[f"{prefix}:pred{i}:mean_sens"] = float(row_mean[i])
    scores[f"{prefix}:pred{i}:max_sens"] = float(row_max[i])
  col_mean = [np.mean(matrix[:, j][off[:, j]]) for j in range(num)]
  col_max = [np.max(matrix[:, j][off[:, j]]) for j in range(num)]
  for j in range(num):
    scores[f"{prefix}:sens{j}:mean_pred"] = float(col_mean[j])
    scores[f"{prefix}:sens{j}:max_pred"] = float(col_max[j])
  for name, values in (("mean_sens:mean_pred", np.mean(col_mean)),
                       ("mean_sens:max_pred", np.mean(col_max)),
                       ("max_sens:mean_pred", np.max(col_mean)),
                       ("max_sens:max_pred", np.max(col_max)),
                       ("mean_pred:mean_sens", np.mean(row_mean)),
                       ("mean_pred:max_sens", np.mean(row_max)),
                       ("max_pred:mean_sens", np.max(row_mean)),
                       ("max_pred:max_sens", np.max(row_max))):
    scores[f"{prefix}:{name}"] = float(values)
  return scores


def fairness(data, representation_fn, random_state, num_train: int = 10000,
             num_test_points_per_class: int = 100, batch_size: int = 16,
             predictor: str = "gradient_boosting",
             predictor_seed: int | None = 0,
             chunk_size: int = sampling.DEFAULT_CHUNK_SIZE,
             n_jobs: int | None = -1,
             boosted_trees_backend: str = "sklearn") -> dict[str, float]:
  """dlib's fairness metric (``fairness.compute_fairness``).

  See the module docstring for the definition.

  Args:
    data: GroundTruthData-like dataset with at least 2 factors.
    representation_fn: numpy observations [B, ...] -> codes [B, num_codes].
    random_state: ``np.random.RandomState`` or int seed.
    num_train: training points of the classifiers (dlib study: 10000).
    num_test_points_per_class: factor vectors drawn per (target, sensitive)
      pair, each rendered once per class of the sensitive factor (dlib
      study: 100).
    batch_size: points per ``data.sample`` call when drawing the training
      points (dlib: 16).
    predictor: ``"gradient_boosting"`` (dlib's fairness study) or
      ``"logistic_regression_cv"``.
    predictor_seed: the boosted trees' ``random_state`` (dlib: None, which
      changes the trees from run to run).
    chunk_size: observations per ``representation_fn`` call (not in dlib).
    n_jobs: parallel classifier fits, one per target factor (joblib
      convention; not in dlib, and it changes no result: fitting draws
      nothing from ``random_state``).
    boosted_trees_backend: who fits the ``"gradient_boosting"`` predictor:
      "sklearn" (the reference), "numba" (``boosted_trees.fit_trees``:
      sklearn's arithmetic compiled, the same trees and predictions) or
      "auto" (``supervised.auto_dci_backend``). The JAX port ("jax") fits
      DCI's trees but has no predictor, so with "jax" the classifiers are
      fitted on the host by ``supervised.host_boosted_trees_backend``
      (numba where it equals this sklearn, else sklearn).

  Returns:
    ``fairness_scores`` of the mean and the max fairness matrices: keys
    ``"mean_fairness:..."`` and ``"max_fairness:..."``, e.g.
    ``"mean_fairness:mean_pred:mean_sens"``.

  Raises:
    ValueError: on fewer than 2 factors, an unknown predictor, a bad size,
      or a training set in which a factor takes a single value.
  """
  num_values = [int(n) for n in data.factors_num_values]
  num_factors = len(num_values)
  if num_factors < 2:
    raise ValueError(
        f"fairness compares a target factor with a different sensitive one, "
        f"so it needs at least 2 factors; the dataset has {num_factors}.")
  num_train = sampling.check_positive("num_train", num_train)
  per_class = sampling.check_positive("num_test_points_per_class",
                                      num_test_points_per_class)
  downstream.check_predictor(predictor)
  chunk_size = sampling.check_chunk_size(chunk_size)
  rs = as_random_state(random_state)
  codes, factors = sampling.sample_codes_and_factors(
      data, representation_fn, num_train, rs, batch_size, chunk_size)
  supervised._check_classifiable(  # pylint: disable=protected-access
      "fairness", factors)
  # dlib fits target i's classifier just before its interventions; fitting
  # draws nothing from the random state, so all are fitted first, in
  # parallel, and the draws below keep dlib's order.
  predict = _fit_predictors(codes, factors, predictor, predictor_seed,
                            n_jobs, boosted_trees_backend, num_values)
  mean_matrix = np.zeros((num_factors, num_factors))
  max_matrix = np.zeros((num_factors, num_factors))
  for i in range(num_factors):
    for j in range(num_factors):
      if i == j:
        continue
      drawn = np.asarray(data.sample_factors(per_class, rs))
      observations = []
      for c in range(num_values[j]):
        intervened = np.copy(drawn)
        intervened[:, j] = c
        observations.append(
            data.sample_observations_from_factors(intervened, rs))
      # Encoding consumes no random draw, so the classes' observations are
      # encoded together instead of one class at a time.
      predictions = predict(i, sampling.encode(
          representation_fn, np.concatenate(observations), chunk_size))
      counts = np.stack(
          [np.bincount(p, minlength=num_values[i])
           for p in predictions.reshape(num_values[j], per_class)], axis=1)
      mean_matrix[i, j], max_matrix[i, j] = inter_group_fairness(counts)
  return {**fairness_scores(mean_matrix, "mean_fairness"),
          **fairness_scores(max_matrix, "max_fairness")}


def _fit_predictors(codes, factors, predictor: str, predictor_seed, n_jobs,
                    backend: str, num_values):
  """``predict(i, codes)``: the classes target ``i``'s classifier predicts."""
  if backend == "auto":
    backend = supervised.auto_dci_backend()
  if backend == "jax":
    backend = supervised.host_boosted_trees_backend()
  if predictor == "gradient_boosting" and backend == "numba":
    # Imported here: numba is needed only by this backend.
    from factorvae_jax.metrics import boosted_trees  # pylint: disable=import-outside-toplevel
    trees = boosted_trees.fit_trees(
        codes, factors, random_state=predictor_seed,
        num_threads=supervised._num_threads(n_jobs))  # pylint: disable=protected-access
    return lambda i, x: trees.predict(x, i)
  models = supervised._map_parallel(  # pylint: disable=protected-access
      downstream.fit_predictor,
      [(predictor, codes, factors[:, i], predictor_seed)
       for i in range(factors.shape[1])], n_jobs, costs=num_values)
  return lambda i, x: models[i].predict(x)
