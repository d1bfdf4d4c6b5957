"""Array-level supervised disentanglement metrics: MIG, DCI, SAP, modularity.

Each function takes codes ``[num_points, num_codes]`` (float) and factors
``[num_points, num_factors]`` (int class indices) and reproduces the
computation of disentanglement_lib (Locatello et al. 2019) on the same
arrays: same binning, same estimators with the same settings, same tie
handling. Where dlib's computation is undefined (it would return NaN or
crash) we define the value and say so in the docstring; ``docs/metrics.md``
lists every such case.

Classifier-based metrics fit one model per factor; those fits run in
parallel across processes (``n_jobs``, joblib's convention: ``-1`` uses every
core, ``1`` or ``None`` runs in this process).
"""

from __future__ import annotations

import os
import warnings

import joblib
import numpy as np
from sklearn import exceptions as sklearn_exceptions
from sklearn import metrics as sklearn_metrics
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from factorvae_jax.metrics import information

# dlib adds this to every importance before taking entropies, so an all-zero
# row or column reads as uniform (maximal entropy) instead of 0/0.
_IMPORTANCE_EPS = 1e-11
# dlib scores a code whose variance is at most this as 0 in continuous SAP.
_SAP_MIN_CODE_VARIANCE = 1e-12


def _check_pair(codes, factors, split: str, min_points: int = 2):
  codes = information.check_codes(f"codes_{split}", codes, min_points)
  factors = information.check_factors(f"factors_{split}", factors,
                                      codes.shape[0])
  return codes, factors


def _check_train_test(codes_train, factors_train, codes_test, factors_test):
  codes_train, factors_train = _check_pair(codes_train, factors_train, "train")
  codes_test, factors_test = _check_pair(codes_test, factors_test, "test",
                                         min_points=1)
  if codes_test.shape[1] != codes_train.shape[1]:
    raise ValueError(
        f"codes_train has {codes_train.shape[1]} codes but codes_test has "
        f"{codes_test.shape[1]}; both must come from the same representation.")
  if factors_test.shape[1] != factors_train.shape[1]:
    raise ValueError(
        f"factors_train has {factors_train.shape[1]} factors but factors_test "
        f"has {factors_test.shape[1]}; both must come from the same dataset.")
  return codes_train, factors_train, codes_test, factors_test


def _check_classifiable(metric: str, factors_train: np.ndarray) -> None:
  """Raises unless every factor has at least two classes in the training set."""
  single = [j for j in range(factors_train.shape[1])
            if np.all(factors_train[:, j] == factors_train[0, j])]
  if single:
    raise ValueError(
        f"{metric}: factor(s) {single} take a single value in the "
        f"{factors_train.shape[0]} training points, so no classifier can be "
        f"fitted for them. Sample more training points or drop those factors.")


def _check_min_codes(metric: str, codes: np.ndarray) -> None:
  if codes.shape[1] < 2:
    raise ValueError(
        f"{metric} compares the best code with the second best, so it needs "
        f"at least 2 codes; got {codes.shape[1]}.")


def _map_parallel(fn, arg_tuples, n_jobs, costs=None):
  """Returns ``[fn(*args) for args in arg_tuples]``, in joblib workers.

  Args:
    fn: a module-level function (it is pickled to the workers).
    arg_tuples: one tuple of arguments per call.
    n_jobs: joblib's convention; ``None`` or 1 runs here, sequentially.
    costs: optional relative cost per call. The calls are dispatched most
      expensive first, which shortens the wall time when a few calls (factors
      with many classes) dominate.
  """
  if n_jobs in (None, 1) or len(arg_tuples) <= 1:
    return [fn(*args) for args in arg_tuples]
  order = (np.argsort(-np.asarray(costs), kind="stable") if costs is not None
           else np.arange(len(arg_tuples)))
  results = joblib.Parallel(n_jobs=n_jobs)(
      joblib.delayed(fn)(*arg_tuples[i]) for i in order)
  out = [None] * len(arg_tuples)
  for i, result in zip(order, results):
    out[i] = result
  return out


def _num_classes(factors: np.ndarray) -> list[int]:
  return [len(np.unique(factors[:, j])) for j in range(factors.shape[1])]


# --------------------------------------------------------------------------
# MIG
# --------------------------------------------------------------------------


def mig(codes, factors, num_bins: int = information.DEFAULT_NUM_BINS
        ) -> float:
  """Mutual Information Gap (Chen et al. 2018, "Isolating Sources of
  Disentanglement in VAEs"), computed as in disentanglement_lib.

  Definition: discretise each code into ``num_bins`` equal-width histogram
  bins (``information.histogram_discretize``); compute the plug-in mutual
  information ``I(z_i; v_k)`` in nats between every code ``i`` and factor
  ``k`` and the plug-in entropy ``H(v_k)``. Then

    MIG = mean_k (I(z_(1); v_k) - I(z_(2); v_k)) / H(v_k)

  where ``z_(1)`` and ``z_(2)`` are the codes with the largest and second
  largest mutual information with ``v_k``. The paper estimates the MI of a
  continuous code by sampling; dlib (and we) use the histogram estimate.

  Args:
    codes: float [num_points, num_codes], at least 2 codes.
    factors: int [num_points, num_factors] factor class indices.
    num_bins: bins per code (dlib study default 20).

  Returns:
    The MIG score in [0, 1].

  Raises:
    ValueError: on malformed inputs, fewer than 2 codes, or a factor that
      takes a single value (its entropy is 0 and dlib's ratio is 0/0).
  """
  codes = information.check_codes("codes", codes)
  factors = information.check_factors("factors", factors, codes.shape[0])
  _check_min_codes("mig", codes)
  entropy = information.discrete_entropy(factors)
  if np.any(entropy == 0):
    raise ValueError(
        f"mig: factor(s) {np.flatnonzero(entropy == 0).tolist()} take a single "
        f"value in the {factors.shape[0]} points, so their entropy is 0 and "
        f"the gap/entropy ratio is undefined. Sample more points or drop those "
        f"factors.")
  mutual_info = information.discrete_mutual_info(
      information.histogram_discretize(codes, num_bins), factors)
  top = np.sort(mutual_info, axis=0)[::-1]
  return float(np.mean((top[0] - top[1]) / entropy))


# --------------------------------------------------------------------------
# DCI
# --------------------------------------------------------------------------


def _fit_gradient_boosting(x_train, y_train, x_test, y_test, random_state):
  """One factor of DCI: importances and train/test accuracy of a GBT."""
  model = GradientBoostingClassifier(random_state=random_state)
  model.fit(x_train, y_train)
  return (np.abs(model.feature_importances_),
          float(np.mean(model.predict(x_train) == y_train)),
          float(np.mean(model.predict(x_test) == y_test)))


def host_boosted_trees_backend() -> str:
  """'numba' if the numba backend can run and repeats this sklearn exactly,
  else 'sklearn': the fastest host backend equal to sklearn.

  numba repeats scikit-learn 1.9's arithmetic (squared-error trees; sklearn
  1.8 and older grow GradientBoostingClassifier's trees with the
  "friedman_mse" criterion, which rounds differently).
  """
  try:
    import numba  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    return "sklearn"
  import sklearn  # pylint: disable=import-outside-toplevel
  major, minor = (int(v) for v in sklearn.__version__.split(".")[:2])
  return "numba" if (major, minor) >= (1, 9) else "sklearn"


def auto_dci_backend() -> str:
  """The fastest DCI backend that equals sklearn here, from measurements.

  'jax' when JAX's default device is an accelerator (the port grows every
  factor's trees together there); on a CPU 'numba' (sklearn's arithmetic
  repeated in a compiled kernel, several times faster than sklearn's own
  fits: docs/performance.md, "DCI's boosted trees compiled with numba"), or
  'sklearn' when numba is not installed or sklearn is older than the 1.9
  whose arithmetic the kernel repeats.
  """
  import jax  # Only now: the package must import without JAX.
  if jax.default_backend() != "cpu":
    return "jax"
  return host_boosted_trees_backend()


def _num_threads(n_jobs) -> int:
  """Threads for joblib's ``n_jobs`` convention (-1: every CPU)."""
  cpus = os.cpu_count() or 1
  if n_jobs in (None, 1):
    return 1
  if n_jobs < 0:
    return max(1, cpus + 1 + n_jobs)
  return min(n_jobs, cpus)


def dci_importance_matrix(codes_train, factors_train, codes_test,
                          factors_test, n_jobs: int | None = -1,
                          random_state=None, backend: str = "auto"):
  """Fits DCI's per-factor gradient-boosted trees.

  One ``sklearn.ensemble.GradientBoostingClassifier`` with sklearn's default
  settings (100 depth-3 trees per class, learning rate 0.1) per factor,
  trained to predict the factor's class from all codes, as in dlib.
  ``"sklearn"`` runs sklearn itself. ``"numba"`` runs
  ``boosted_trees.fit_gradient_boosting``: sklearn's arithmetic, operation
  for operation, presorted once and compiled, so the same trees and the
  same floats (bit for bit on codes without exactly repeated values; see
  that module). ``"jax"`` runs ``gradient_boosting.fit_gradient_boosting``
  (all factors in one jitted program on the default JAX device; equal to
  sklearn up to ties between equally good splits, see that module).

  Args:
    codes_train: float [num_train, num_codes].
    factors_train: int [num_train, num_factors].
    codes_test: float [num_test, num_codes].
    factors_test: int [num_test, num_factors].
    n_jobs: parallel fits (joblib convention; the fits are independent).
      For ``"numba"``, the number of threads.
    random_state: the classifiers' ``random_state``. dlib leaves it ``None``;
      it only breaks ties between equally good splits, so any value gives the
      same scores up to those ties. Pass an int for reproducible runs. The
      numba and JAX backends replay sklearn's use of it.
    backend: ``"numba"``, ``"jax"``, ``"sklearn"`` (the reference) or
      ``"auto"`` (default: ``auto_dci_backend()``: ``"jax"`` when JAX's
      default device is a GPU/TPU, else ``"numba"`` if it is installed, else
      ``"sklearn"``).

  Returns:
    ``(importance, train_accuracy, test_accuracy)``: float64 importance
    matrix [num_codes, num_factors] (absolute impurity-based feature
    importances, each column from one factor's model) and the per-factor
    accuracies, float64 [num_factors] each.
  """
  codes_train, factors_train, codes_test, factors_test = _check_train_test(
      codes_train, factors_train, codes_test, factors_test)
  _check_classifiable("dci", factors_train)
  if backend == "auto":
    backend = auto_dci_backend()
  if backend == "numba":
    # Imported here: numba is needed only by this backend.
    from factorvae_jax.metrics import boosted_trees  # pylint: disable=import-outside-toplevel
    importance, train_acc, test_acc = boosted_trees.fit_gradient_boosting(
        codes_train, factors_train, codes_test, factors_test,
        random_state=random_state, num_threads=_num_threads(n_jobs))
    return np.abs(importance), train_acc, test_acc
  if backend == "jax":
    # Imported here: the rest of the package (and its joblib workers) must
    # not need JAX.
    from factorvae_jax.metrics import gradient_boosting
    importance, train_acc, test_acc = gradient_boosting.fit_gradient_boosting(
        codes_train, factors_train, codes_test, factors_test,
        random_state=random_state)
    # As for sklearn's: a split that gains nothing can round to -1e-17.
    return np.abs(importance), train_acc, test_acc
  if backend != "sklearn":
    raise ValueError(
        f"dci backend must be 'auto', 'numba', 'jax' or 'sklearn', got "
        f"{backend!r}; 'auto' picks 'jax' on an accelerator and 'numba' "
        f"(or 'sklearn' without numba) on a CPU.")
  results = _map_parallel(
      _fit_gradient_boosting,
      [(codes_train, factors_train[:, j], codes_test, factors_test[:, j],
        random_state) for j in range(factors_train.shape[1])], n_jobs,
      # A multiclass GBT fits one tree per class and stage.
      costs=_num_classes(factors_train))
  importance = np.stack([r[0] for r in results], axis=1).astype(np.float64)
  return (importance, np.array([r[1] for r in results]),
          np.array([r[2] for r in results]))


def _one_minus_entropy(columns: np.ndarray, base: int) -> np.ndarray:
  """1 - entropy (log ``base``) of each column normalised to sum 1 (+ eps)."""
  p = columns + _IMPORTANCE_EPS
  p = p / np.sum(p, axis=0, keepdims=True)
  if base < 2:
    # A distribution over one outcome has zero entropy; dlib divides 0 by
    # log(1) = 0 here and gets NaN.
    return np.ones(p.shape[1])
  return 1.0 - (-np.sum(p * np.log(p), axis=0)) / np.log(base)


def dci_from_importance(importance) -> dict[str, float]:
  """Disentanglement and completeness of an importance matrix (Eastwood &
  Williams 2018, "A Framework for the Quantitative Evaluation of Disentangled
  Representations"), exactly as disentanglement_lib computes them.

  With ``R`` the [num_codes, num_factors] importance matrix and ``eps=1e-11``:

  * disentanglement of code ``i``: ``D_i = 1 - H_K(P_i)``, ``P_i`` the row
    ``R[i] + eps`` normalised to sum 1, ``H_K`` entropy in base
    ``K = num_factors``. The score is ``sum_i rho_i D_i`` with
    ``rho_i = sum_k R[i, k] / sum R``.
  * completeness of factor ``k``: ``C_k = 1 - H_D(P~_k)``, ``P~_k`` the
    column ``R[:, k] + eps`` normalised, base ``D = num_codes``; the score is
    ``sum_k w_k C_k`` with ``w_k = sum_i R[i, k] / sum R``.

  Edge cases (as dlib): an all-zero row or column gets ``D_i`` / ``C_k`` of 0
  (the eps makes it uniform) and weight 0; an all-zero matrix uses uniform
  weights, so both scores are 0. Where dlib returns NaN (one factor for
  disentanglement, one code for completeness: entropy in base 1) we return
  per-code / per-factor scores of 1.

  Args:
    importance: non-negative [num_codes, num_factors].

  Returns:
    ``{"disentanglement": float, "completeness": float}``.
  """
  importance = np.asarray(importance, dtype=np.float64)
  if importance.ndim != 2 or importance.size == 0:
    raise ValueError(
        f"importance must be a non-empty [num_codes, num_factors] matrix, got "
        f"shape {importance.shape}.")
  if np.any(importance < 0) or not np.all(np.isfinite(importance)):
    raise ValueError(
        "importance must be finite and non-negative (dlib takes absolute "
        "feature importances); pass np.abs(importance).")
  num_codes, num_factors = importance.shape
  per_code = _one_minus_entropy(importance.T, num_factors)
  per_factor = _one_minus_entropy(importance, num_codes)
  weights = importance if importance.sum() > 0 else np.ones_like(importance)
  code_share = weights.sum(axis=1) / weights.sum()
  factor_share = weights.sum(axis=0) / weights.sum()
  return {"disentanglement": float(np.sum(per_code * code_share)),
          "completeness": float(np.sum(per_factor * factor_share))}


def dci(codes_train, factors_train, codes_test, factors_test,
        n_jobs: int | None = -1, random_state=None,
        backend: str = "auto") -> dict[str, float]:
  """DCI disentanglement, completeness and informativeness (Eastwood &
  Williams 2018), with gradient-boosted trees as in disentanglement_lib.

  Definition: fit one ``GradientBoostingClassifier`` (sklearn defaults) per
  factor on the training codes; the absolute feature importances form the
  importance matrix ``R`` [num_codes, num_factors]; disentanglement and
  completeness are the entropy-weighted averages of ``dci_from_importance``.
  Informativeness is the classifiers' mean accuracy over factors (dlib
  reports accuracy under this name, not the paper's prediction error; higher
  is better).

  Args:
    codes_train: float [num_train, num_codes] (dlib study: 10000 points).
    factors_train: int [num_train, num_factors]; every factor needs at least
      two classes.
    codes_test: float [num_test, num_codes] (dlib study: 5000 points).
    factors_test: int [num_test, num_factors].
    n_jobs: parallel per-factor fits (joblib convention; default all cores).
    random_state: the classifiers' ``random_state`` (dlib: ``None``); see
      ``dci_importance_matrix``.
    backend: ``"numba"`` (sklearn's gradient boosting, compiled, in
      ``boosted_trees``), ``"jax"`` (the port in ``gradient_boosting``),
      ``"sklearn"`` (the reference) or ``"auto"`` (default: ``"jax"`` on an
      accelerator, ``"numba"`` on a CPU); see ``dci_importance_matrix``.

  Returns:
    ``{"disentanglement", "completeness", "informativeness_train",
    "informativeness_test"}`` as floats.
  """
  importance, train_acc, test_acc = dci_importance_matrix(
      codes_train, factors_train, codes_test, factors_test, n_jobs=n_jobs,
      random_state=random_state, backend=backend)
  scores = dci_from_importance(importance)
  scores["informativeness_train"] = float(np.mean(train_acc))
  scores["informativeness_test"] = float(np.mean(test_acc))
  return scores


# --------------------------------------------------------------------------
# SAP
# --------------------------------------------------------------------------


def _sap_discrete_column(x_train, y_train, x_test, y_test):
  """Test accuracy of a 1-D linear SVM per code, for one factor."""
  column = np.zeros(x_train.shape[1])
  with warnings.catch_warnings():
    # dlib's settings cap liblinear at 1000 iterations; not converging there
    # is part of the reference computation, so the warning is noise.
    warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
    for i in range(x_train.shape[1]):
      classifier = LinearSVC(C=0.01, class_weight="balanced")
      classifier.fit(x_train[:, i:i + 1], y_train)
      column[i] = np.mean(classifier.predict(x_test[:, i:i + 1]) == y_test)
  return column


def sap_score_matrix(codes_train, factors_train, codes_test, factors_test,
                     continuous_factors: bool = False,
                     n_jobs: int | None = -1) -> np.ndarray:
  """SAP's [num_codes, num_factors] matrix of per-pair predictiveness.

  Discrete factors (default): entry ``[i, k]`` is the test accuracy of
  ``sklearn.svm.LinearSVC(C=0.01, class_weight="balanced")`` (other settings
  sklearn's defaults) trained on code ``i`` alone to predict factor ``k``.
  Continuous factors: entry ``[i, k]`` is the R^2 of a 1-D linear regression
  of factor ``k`` on code ``i`` over the *training* points,
  ``cov(z_i, v_k)^2 / (var(z_i) var(v_k))`` (ddof=1), set to 0 when
  ``var(z_i) <= 1e-12``; the test arrays are unused (both as in dlib).

  Args:
    codes_train: float [num_train, num_codes].
    factors_train: int [num_train, num_factors].
    codes_test: float [num_test, num_codes].
    factors_test: int [num_test, num_factors].
    continuous_factors: treat factor indices as continuous values.
    n_jobs: parallel per-factor fits for the discrete case.

  Returns:
    float64 [num_codes, num_factors].
  """
  codes_train, factors_train, codes_test, factors_test = _check_train_test(
      codes_train, factors_train, codes_test, factors_test)
  _check_classifiable("sap", factors_train)
  if continuous_factors:
    z = codes_train.astype(np.float64)
    v = factors_train.astype(np.float64)
    zc = z - z.mean(axis=0)
    vc = v - v.mean(axis=0)
    dof = z.shape[0] - 1
    cov = zc.T @ vc / dof
    var_z = np.sum(zc * zc, axis=0) / dof
    var_v = np.sum(vc * vc, axis=0) / dof
    with np.errstate(divide="ignore", invalid="ignore"):
      r2 = cov ** 2 / (var_z[:, None] * var_v[None, :])
    return np.where(var_z[:, None] > _SAP_MIN_CODE_VARIANCE, r2, 0.0)
  columns = _map_parallel(
      _sap_discrete_column,
      [(codes_train, factors_train[:, k], codes_test, factors_test[:, k])
       for k in range(factors_train.shape[1])], n_jobs,
      costs=_num_classes(factors_train))
  return np.stack(columns, axis=1)


def sap(codes_train, factors_train, codes_test, factors_test,
        continuous_factors: bool = False, n_jobs: int | None = -1) -> float:
  """Separated Attribute Predictability (Kumar et al. 2018, "Variational
  Inference of Disentangled Latent Concepts from Unlabeled Observations"),
  computed as in disentanglement_lib.

  Definition: with ``S`` the score matrix of ``sap_score_matrix`` (test
  accuracy of a 1-D linear SVM per code and factor, or R^2 for continuous
  factors), ``SAP = mean_k (S_(1)k - S_(2)k)``, the gap between the best and
  second-best code for each factor, averaged over factors. Note that with
  discrete factors even a perfect code cannot reach 1: the second-best code
  still scores about chance accuracy (1/num_classes with balanced classes).

  Args:
    codes_train: float [num_train, num_codes], at least 2 codes (dlib study:
      10000 points).
    factors_train: int [num_train, num_factors].
    codes_test: float [num_test, num_codes] (dlib study: 5000 points).
    factors_test: int [num_test, num_factors].
    continuous_factors: dlib study default ``False``.
    n_jobs: parallel per-factor fits (joblib convention).

  Returns:
    The SAP score.
  """
  codes_train = information.check_codes("codes_train", codes_train)
  _check_min_codes("sap", codes_train)
  matrix = sap_score_matrix(codes_train, factors_train, codes_test,
                            factors_test, continuous_factors, n_jobs)
  top = np.sort(matrix, axis=0)
  return float(np.mean(top[-1] - top[-2]))


# --------------------------------------------------------------------------
# Modularity and explicitness
# --------------------------------------------------------------------------


def modularity_from_mutual_info(mutual_info) -> float:
  """Ridgeway & Mozer's modularity of a [num_codes, num_factors] MI matrix.

  Per code ``i`` with ``theta_i = max_k m_ik``:
  ``delta_i = sum_{k != argmax} m_ik^2 / (theta_i^2 (K - 1))`` and the code's
  modularity is ``1 - delta_i``; a code with ``theta_i = 0`` (no information
  about any factor) scores 0. The result is the mean over codes. With a
  single factor (``K = 1``) dlib divides 0 by 0; we score every informative
  code 1 there.

  Args:
    mutual_info: non-negative [num_codes, num_factors].

  Returns:
    The modularity score in [0, 1].
  """
  squared = np.square(np.asarray(mutual_info, dtype=np.float64))
  max_squared = np.max(squared, axis=1)
  num_factors = squared.shape[1]
  if num_factors == 1:
    return float(np.mean(np.where(max_squared > 0, 1.0, 0.0)))
  numerator = np.sum(squared, axis=1) - max_squared
  with np.errstate(divide="ignore", invalid="ignore"):
    per_code = 1.0 - numerator / (max_squared * (num_factors - 1.0))
  return float(np.mean(np.where(max_squared == 0, 0.0, per_code)))


def _explicitness_one_factor(x_train, y_train, x_test, y_test):
  """Train and test mean one-vs-rest ROC-AUC of a logistic regression."""
  with warnings.catch_warnings():
    # LogisticRegression's default 100 lbfgs iterations are dlib's setting;
    # hitting that cap is part of the reference computation.
    warnings.simplefilter("ignore", sklearn_exceptions.ConvergenceWarning)
    classifier = LogisticRegression().fit(x_train, y_train)
  return (_mean_one_vs_rest_auc(classifier, x_train, y_train),
          _mean_one_vs_rest_auc(classifier, x_test, y_test))


def _mean_one_vs_rest_auc(classifier, x, y) -> float:
  proba = classifier.predict_proba(x)
  aucs = []
  for column, label in enumerate(classifier.classes_):
    positive = y == label
    # dlib's one-hot labels come from the evaluated split itself; a class
    # missing from it (or a split of one class) makes its AUC undefined and
    # dlib crash. We average over the classes whose AUC is defined, which is
    # every class whenever dlib returns a value.
    if positive.all() or not positive.any():
      continue
    aucs.append(sklearn_metrics.roc_auc_score(positive, proba[:, column]))
  return float(np.mean(aucs)) if aucs else float("nan")


def modularity_explicitness(codes_train, factors_train, codes_test,
                            factors_test,
                            num_bins: int = information.DEFAULT_NUM_BINS,
                            n_jobs: int | None = -1) -> dict[str, float]:
  """Modularity and explicitness (Ridgeway & Mozer 2018, "Learning Deep
  Disentangled Embeddings With the F-Statistic Loss"), as in dlib.

  Modularity: ``modularity_from_mutual_info`` of the histogram mutual
  information matrix of the *training* codes (``num_bins`` bins, as MIG).

  Explicitness: codes are standardised with the training mean and standard
  deviation (ddof=0; a constant code is only centred, where dlib divides by
  0); per factor, ``sklearn.linear_model.LogisticRegression()`` with
  sklearn's default settings is fitted on the training codes, and the score
  is the macro-averaged one-vs-rest ROC-AUC of its ``predict_proba`` against
  one-hot labels, on the training and on the test split; both are averaged
  over factors.

  Args:
    codes_train: float [num_train, num_codes] (dlib study: 10000 points).
    factors_train: int [num_train, num_factors].
    codes_test: float [num_test, num_codes] (dlib study: 5000 points).
    factors_test: int [num_test, num_factors].
    num_bins: bins per code for the mutual information (dlib study: 20).
    n_jobs: parallel per-factor fits (joblib convention).

  Returns:
    ``{"modularity", "explicitness_train", "explicitness_test"}`` as floats.
  """
  codes_train, factors_train, codes_test, factors_test = _check_train_test(
      codes_train, factors_train, codes_test, factors_test)
  _check_classifiable("modularity_explicitness", factors_train)
  mutual_info = information.discrete_mutual_info(
      information.histogram_discretize(codes_train, num_bins), factors_train)
  x_train = codes_train.astype(np.float64)
  x_test = codes_test.astype(np.float64)
  mean = x_train.mean(axis=0)
  std = x_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  x_train = (x_train - mean) / std
  x_test = (x_test - mean) / std
  results = _map_parallel(
      _explicitness_one_factor,
      [(x_train, factors_train[:, k], x_test, factors_test[:, k])
       for k in range(factors_train.shape[1])], n_jobs,
      costs=_num_classes(factors_train))
  return {
      "modularity": modularity_from_mutual_info(mutual_info),
      "explicitness_train": float(np.mean([r[0] for r in results])),
      "explicitness_test": float(np.mean([r[1] for r in results])),
  }
