"""Downstream classification tasks, as disentanglement_lib computes them.

Locatello et al. 2019 ("Challenging Common Assumptions ...", Sec. 6) ask
whether disentangled codes make downstream learning easier: for every
factor, a classifier predicts the factor's class from the codes, trained on
10, 100, 1000 or 10000 labelled points; its accuracy on 5000 fresh points is
the score. dlib's study runs it with two predictors:

* ``"logistic_regression_cv"``: ``LogisticRegressionCV(Cs=10,
  cv=KFold(n_splits=5))`` (dlib's ``logistic_regression_cv``), which is
  deterministic;
* ``"gradient_boosting"``: ``GradientBoostingClassifier()`` with sklearn's
  defaults (dlib's ``gradient_boosting_classifier``). dlib gives it no
  ``random_state``, so its trees (the order features are visited in, which
  decides ties between equally good splits) change from run to run; here it
  gets ``predictor_seed`` so that a result can be reproduced.

The predictor names and ``make_predictor`` are shared with the fairness
metric (``fairness_metric.py``).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
from sklearn import ensemble
from sklearn import exceptions as sklearn_exceptions
from sklearn import linear_model
from sklearn import model_selection

from factorvae_jax.metrics import information
from factorvae_jax.metrics import sampling
from factorvae_jax.metrics import supervised
from factorvae_jax.utils.random_state import as_random_state

#: The classifiers of dlib's studies, by the names its gin configs use.
PREDICTORS = ("logistic_regression_cv", "gradient_boosting")
#: dlib's downstream study sizes.
DEFAULT_NUM_TRAIN = (10, 100, 1000, 10000)
DEFAULT_NUM_TEST = 5000


def check_predictor(predictor: str) -> str:
  """Returns ``predictor`` if it names one of ``PREDICTORS``.

  Raises:
    ValueError: naming the bad value, the allowed ones and what they are.
  """
  if predictor not in PREDICTORS:
    raise ValueError(
        f"predictor must be one of {list(PREDICTORS)}, got {predictor!r}: "
        f"'logistic_regression_cv' is dlib's LogisticRegressionCV(Cs=10, "
        f"cv=KFold(5)), 'gradient_boosting' its GradientBoostingClassifier().")
  return predictor


def make_predictor(predictor: str, predictor_seed: int | None = 0):
  """A fresh, unfitted classifier as dlib's study builds it.

  Args:
    predictor: one of ``PREDICTORS``.
    predictor_seed: the boosted trees' ``random_state`` (dlib: None, i.e.
      different trees every run); unused by the deterministic logistic
      regression.

  Returns:
    An sklearn classifier.
  """
  if check_predictor(predictor) == "logistic_regression_cv":
    # scoring="accuracy" is what dlib's call selects C by (sklearn's
    # default until 1.11, which switches to log loss): pinned so that a newer
    # sklearn keeps dlib's estimator.
    return linear_model.LogisticRegressionCV(
        Cs=10, cv=model_selection.KFold(n_splits=5), scoring="accuracy")
  return ensemble.GradientBoostingClassifier(random_state=predictor_seed)


def fit_predictor(predictor: str, codes, labels, predictor_seed=0):
  """Fits ``make_predictor(predictor)`` on ``codes`` -> ``labels``.

  Convergence warnings of the capped solvers are silenced: the iteration
  cap (sklearn's default) is part of dlib's reference setting.
  """
  model = make_predictor(predictor, predictor_seed)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
    # sklearn 1.9 announces future defaults of LogisticRegressionCV
    # (l1_ratios, fitted attributes) that do not change this fit.
    warnings.simplefilter("ignore", FutureWarning)
    model.fit(codes, labels)
  return model


def _fit_one_factor(predictor, predictor_seed, x_train, y_train, x_test,
                    y_test):
  """Train and test accuracy of one factor's classifier (a joblib task)."""
  model = fit_predictor(predictor, x_train, y_train, predictor_seed)
  return (float(np.mean(model.predict(x_train) == y_train)),
          float(np.mean(model.predict(x_test) == y_test)))


def check_num_train(num_train) -> tuple[int, ...]:
  """``num_train`` as a tuple of distinct positive ints (an int is one size).

  Raises:
    ValueError: on an empty sequence, a repeated size or a non-positive one.
  """
  sizes = (num_train,) if np.isscalar(num_train) else tuple(num_train)
  if not sizes:
    raise ValueError(
        f"num_train must name at least one training set size, got "
        f"{num_train!r}; dlib's study uses {DEFAULT_NUM_TRAIN}.")
  sizes = tuple(sampling.check_positive("each num_train", s) for s in sizes)
  if len(set(sizes)) != len(sizes):
    raise ValueError(
        f"num_train {num_train!r} repeats a size; each size names its result "
        f"keys ('<size>:mean_test_accuracy'), so give each once.")
  return sizes


def accuracy_scores(train_size: int, train_accuracy: Sequence[float],
                    test_accuracy: Sequence[float]) -> dict[str, float]:
  """dlib's result keys for one training set size.

  Returns:
    ``"<n>:mean_train_accuracy"``, ``"<n>:mean_test_accuracy"``,
    ``"<n>:min_train_accuracy"``, ``"<n>:min_test_accuracy"`` and, per
    factor ``i``, ``"<n>:train_accuracy_factor_<i>"`` and
    ``"<n>:test_accuracy_factor_<i>"``.
  """
  scores = {f"{train_size}:mean_train_accuracy": float(np.mean(train_accuracy)),
            f"{train_size}:mean_test_accuracy": float(np.mean(test_accuracy)),
            f"{train_size}:min_train_accuracy": float(np.min(train_accuracy)),
            f"{train_size}:min_test_accuracy": float(np.min(test_accuracy))}
  for i, (train, test) in enumerate(zip(train_accuracy, test_accuracy)):
    scores[f"{train_size}:train_accuracy_factor_{i}"] = float(train)
    scores[f"{train_size}:test_accuracy_factor_{i}"] = float(test)
  return scores


def factor_accuracies(codes_train, factors_train, codes_test, factors_test,
                      predictor: str = "logistic_regression_cv",
                      predictor_seed: int | None = 0,
                      n_jobs: int | None = -1,
                      boosted_trees_backend: str = "sklearn"
                      ) -> tuple[list[float], list[float]]:
  """Per-factor train and test accuracy of one classifier per factor.

  Args:
    codes_train, factors_train: float [N, C] codes and int [N, F] factors.
    codes_test, factors_test: the held-out points.
    predictor: one of ``PREDICTORS``.
    predictor_seed: the boosted trees' ``random_state``.
    n_jobs: parallel fits, one per factor (joblib convention); changes no
      result.
    boosted_trees_backend: who fits the ``"gradient_boosting"`` predictor:
      a DCI backend (``supervised.dci_importance_matrix``: "sklearn", the
      reference; "numba", sklearn's arithmetic compiled, the same trees and
      accuracies; "jax"; "auto").

  Returns:
    ``(train accuracies, test accuracies)``, one float per factor.

  Raises:
    ValueError: a factor has a single class among the training points.
  """
  check_predictor(predictor)
  codes_train, factors_train = (
      information.check_codes("codes_train", codes_train, 1),
      information.check_factors("factors_train", factors_train,
                                len(codes_train)))
  codes_test = information.check_codes("codes_test", codes_test, 1)
  factors_test = information.check_factors("factors_test", factors_test,
                                           len(codes_test))
  supervised._check_classifiable(  # pylint: disable=protected-access
      f"downstream task ({predictor}, {len(codes_train)} training points)",
      factors_train)
  if predictor == "gradient_boosting":
    # The same GradientBoostingClassifier(random_state) per factor as DCI's.
    _, train, test = supervised.dci_importance_matrix(
        codes_train, factors_train, codes_test, factors_test, n_jobs=n_jobs,
        random_state=predictor_seed, backend=boosted_trees_backend)
    return [float(a) for a in train], [float(a) for a in test]
  tasks = [(predictor, predictor_seed, codes_train, factors_train[:, k],
            codes_test, factors_test[:, k])
           for k in range(factors_train.shape[1])]
  costs = [len(np.unique(factors_train[:, k]))
           for k in range(factors_train.shape[1])]
  results = supervised._map_parallel(  # pylint: disable=protected-access
      _fit_one_factor, tasks, n_jobs, costs)
  return [r[0] for r in results], [r[1] for r in results]


def downstream_task(data, representation_fn, random_state,
                    num_train: Sequence[int] = DEFAULT_NUM_TRAIN,
                    num_test: int = DEFAULT_NUM_TEST, batch_size: int = 16,
                    predictor: str = "logistic_regression_cv",
                    predictor_seed: int | None = 0,
                    chunk_size: int = sampling.DEFAULT_CHUNK_SIZE,
                    n_jobs: int | None = -1,
                    boosted_trees_backend: str = "sklearn"
                    ) -> dict[str, float]:
  """dlib's downstream classification task on a representation.

  For each training set size ``n`` in ``num_train`` (in that order), draws
  ``n`` training points and then ``num_test`` test points (``batch_size``
  per ``data.sample`` call, from ``random_state``: dlib's draws), fits one
  ``predictor`` per factor on the training codes and measures its accuracy.

  Args:
    data: GroundTruthData-like dataset.
    representation_fn: numpy observations [B, ...] -> codes [B, num_codes].
    random_state: ``np.random.RandomState`` or int seed.
    num_train: training set sizes (dlib study: 10, 100, 1000, 10000).
    num_test: test points per size (dlib study: 5000).
    batch_size: points per ``data.sample`` call (dlib: 16).
    predictor: ``"logistic_regression_cv"`` or ``"gradient_boosting"``.
    predictor_seed: the boosted trees' ``random_state`` (dlib: None; see the
      module docstring).
    chunk_size: observations per ``representation_fn`` call (not in dlib).
    n_jobs: parallel per-factor fits (not in dlib; changes no result).
    boosted_trees_backend: as in ``factor_accuracies`` (the suite passes
      its ``dci_backend``).

  Returns:
    dlib's keys for every size (``accuracy_scores``), e.g.
    ``"1000:mean_test_accuracy"``, ``"1000:min_test_accuracy"``,
    ``"1000:test_accuracy_factor_2"``.

  Raises:
    ValueError: on an empty or repeated ``num_train``, an unknown predictor,
      or a training set in which a factor takes a single value.
  """
  sizes = check_num_train(num_train)
  num_test = sampling.check_positive("num_test", num_test)
  check_predictor(predictor)
  rs = as_random_state(random_state)
  scores = {}
  for size in sizes:
    train = sampling.sample_codes_and_factors(data, representation_fn, size,
                                              rs, batch_size, chunk_size)
    test = sampling.sample_codes_and_factors(data, representation_fn,
                                             num_test, rs, batch_size,
                                             chunk_size)
    train_accuracy, test_accuracy = factor_accuracies(
        *train, *test, predictor=predictor, predictor_seed=predictor_seed,
        n_jobs=n_jobs, boosted_trees_backend=boosted_trees_backend)
    scores.update(accuracy_scores(size, train_accuracy, test_accuracy))
  return scores
