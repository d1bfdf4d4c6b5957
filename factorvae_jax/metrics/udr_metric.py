"""Unsupervised Disentanglement Ranking (UDR), as disentanglement_lib computes it.

Duan et al. 2020, "Unsupervised Model Selection for Variational Disentangled
Representation Learning" (ICLR). Models trained with the same
hyperparameters but different seeds agree on a disentangled representation
(up to permutation and sign) and disagree on entangled ones, so the
similarity of a model's codes to its siblings' ranks models without labels.
This follows dlib's ``evaluation/udr/metrics/udr.py`` (``compute_udr_sklearn``):

1. Draw ``num_data_points`` observations, ``batch_size`` per
   ``data.sample_observations`` call; every model encodes the same ones.
   Each representation function returns ``(codes [B, D], kl [D])``: the mean
   codes and the KL of q(z|x) to the prior per latent, averaged over the
   batch; a model's KL is the mean over batches.
2. Per model: standardise every code (``StandardScaler``: mean 0, std 1; a
   constant code stays 0), zero the codes with KL <= 0.01 (a constant of
   dlib's code), and mark the codes with KL > ``kl_filter_threshold`` as
   informative.
3. For every ordered pair ``(i, j)``, ``i != j``, a similarity matrix
   ``R [D_i, D_j]``: ``"lasso"``: ``|coef|`` of ``Lasso(alpha=0.1)``
   regressing model ``j``'s codes on model ``i``'s; ``"spearman"``: the
   absolute Spearman correlation of every pair of codes. With
   ``filter_low_kl`` only the informative rows (of ``i``) and columns (of
   ``j``) are kept.
4. ``relative_strength_disentanglement(R)``: the mean over columns of
   ``max^2 / sum`` and the same over rows, averaged (1 for a permutation
   matrix); 0/0 counts as 0.
5. Model ``k``'s UDR is the median of its pairs' scores ``S[i, k]`` over
   ``i != k`` (the pairs in which ``k``'s codes are the regression target).
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
from scipy import stats
from sklearn import linear_model
from sklearn import preprocessing

from factorvae_jax.metrics import information
from factorvae_jax.metrics import sampling
from factorvae_jax.utils import errors
from factorvae_jax.utils.random_state import as_random_state

CORRELATION_MATRICES = ("lasso", "spearman")
#: dlib zeroes codes whose KL is at or below this, whatever
#: ``kl_filter_threshold`` says (a constant in its code).
ZERO_KL = 0.01
DEFAULT_KL_FILTER_THRESHOLD = 0.01

#: observations [B, ...] -> (codes [B, D], KL per latent [D]).
UdrRepresentationFn = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def check_correlation_matrix(correlation_matrix: str) -> str:
  """Returns ``correlation_matrix`` if it is one of ``CORRELATION_MATRICES``."""
  if correlation_matrix not in CORRELATION_MATRICES:
    raise errors.InvalidValueError(
        f"correlation_matrix must be one of {list(CORRELATION_MATRICES)}, got "
        f"{correlation_matrix!r}: 'lasso' (Duan et al.'s UDR_L, dlib's "
        f"default) or 'spearman' (UDR_S).")
  return correlation_matrix


def relative_strength_disentanglement(matrix) -> float:
  """How close a non-negative similarity matrix is to a permutation.

  Args:
    matrix: float [D_i, D_j], entries >= 0.

  Returns:
    ``(mean_j max_i R^2 / sum_i R + mean_i max_j R^2 / sum_j R) / 2``, where
    a column or row summing to 0 contributes 0 (dlib's ``nan_to_num``) and
    NaN entries (a constant code's Spearman correlation) make their column
    and row count 0. 1 for a permutation matrix.
  """
  matrix = np.asarray(matrix, dtype=np.float64)

  def side(axis):
    with np.errstate(invalid="ignore", divide="ignore"):
      ratio = np.max(matrix, axis=axis) ** 2 / np.sum(matrix, axis=axis)
    return np.nanmean(np.nan_to_num(ratio, nan=0.0))

  return float((side(0) + side(1)) / 2)


def lasso_correlation_matrix(codes_a, codes_b, random_state=None
                             ) -> np.ndarray:
  """``|coef|`` of ``Lasso(alpha=0.1)`` fitting ``codes_b`` from ``codes_a``.

  Args:
    codes_a, codes_b: float [N, D_a] and [N, D_b].
    random_state: passed to the Lasso as dlib does (its cyclic coordinate
      descent draws a seed from it but does not use it).

  Returns:
    [D_a, D_b]: entry ``[p, q]`` is the weight of code ``p`` of ``a`` in
    the prediction of code ``q`` of ``b``.
  """
  model = linear_model.Lasso(alpha=0.1, random_state=random_state)
  model.fit(codes_a, codes_b)
  return np.abs(np.asarray(model.coef_).reshape(np.shape(codes_b)[1], -1)).T


def spearman_correlation_matrix(codes_a, codes_b) -> np.ndarray:
  """Absolute Spearman correlation of every code of ``a`` with every of ``b``.

  Returns:
    [D_a, D_b]; NaN where a code is constant (as dlib's
    ``scipy.stats.spearmanr`` per pair gives).
  """
  codes_a, codes_b = np.asarray(codes_a), np.asarray(codes_b)
  out = np.empty((codes_a.shape[1], codes_b.shape[1]))
  with warnings.catch_warnings():
    # A constant code has no ranks to correlate: NaN, which
    # relative_strength_disentanglement counts as 0.
    warnings.simplefilter("ignore", stats.ConstantInputWarning)
    for p in range(codes_a.shape[1]):
      for q in range(codes_b.shape[1]):
        out[p, q] = stats.spearmanr(codes_a[:, p], codes_b[:, q],
                                    nan_policy="omit").statistic
  return np.abs(out)


def prepare_codes(codes, kl, kl_filter_threshold: float =
                  DEFAULT_KL_FILTER_THRESHOLD
                  ) -> tuple[np.ndarray, np.ndarray]:
  """Step 2 of the module docstring for one model.

  Args:
    codes: float [N, D] mean codes.
    kl: float [D], the model's KL per latent.
    kl_filter_threshold: codes with KL above it are informative.

  Returns:
    ``(standardised codes with the KL <= 0.01 ones zeroed, informative
    mask [D])``.
  """
  # dlib collects every model's codes in a float64 array before scaling.
  codes = information.check_codes("codes", codes).astype(np.float64)
  kl = np.asarray(kl, dtype=np.float64).reshape(-1)
  if kl.shape != (codes.shape[1],):
    raise ValueError(
        f"kl must hold one value per code ({codes.shape[1]}), got shape "
        f"{np.shape(kl)}; the representation function returns (codes [B, D], "
        f"KL per latent [D]).")
  scaled = preprocessing.StandardScaler().fit_transform(codes)
  return scaled * np.greater(kl, ZERO_KL), kl > kl_filter_threshold


def pair_score(prepared_i, prepared_j, correlation_matrix: str = "lasso",
               filter_low_kl: bool = True, random_state=None
               ) -> tuple[float, np.ndarray]:
  """Similarity of model ``j``'s codes to model ``i``'s (``S[i, j]``).

  Args:
    prepared_i, prepared_j: ``prepare_codes`` of the two models (on the same
      observations).
    correlation_matrix: ``"lasso"`` or ``"spearman"``.
    filter_low_kl: keep only informative codes' rows and columns.
    random_state: handed to the Lasso (see ``lasso_correlation_matrix``).

  Returns:
    ``(score, raw [D_i, D_j] similarity matrix)``. When filtering leaves no
    informative code on either side the score is 0 (dlib raises on the empty
    matrix).
  """
  (codes_i, mask_i), (codes_j, mask_j) = prepared_i, prepared_j
  if check_correlation_matrix(correlation_matrix) == "lasso":
    raw = lasso_correlation_matrix(codes_i, codes_j, random_state)
  else:
    raw = spearman_correlation_matrix(codes_i, codes_j)
  kept = raw[mask_i][:, mask_j] if filter_low_kl else raw
  if kept.size == 0:
    return 0.0, raw
  return relative_strength_disentanglement(kept), raw


def model_scores(pairwise) -> list[float]:
  """UDR per model: the median of column ``k`` of ``pairwise`` without ``k``."""
  pairwise = np.asarray(pairwise, dtype=np.float64)
  return [float(np.median(np.delete(pairwise[:, k], k)))
          for k in range(pairwise.shape[0])]


def _check_models(representation_fns) -> list:
  fns = list(representation_fns)
  if len(fns) < 2:
    raise ValueError(
        f"UDR ranks a model by how well its codes agree with other models' "
        f"(seeds of the same hyperparameters), so it needs at least 2 "
        f"representation functions; got {len(fns)}.")
  return fns


def sample_udr_codes(data, representation_fns: Sequence[UdrRepresentationFn],
                     random_state, batch_size: int = 10,
                     num_data_points: int = 1000
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Step 1: every model's codes of the same observations, and its KL.

  Args:
    data: GroundTruthData-like dataset.
    representation_fns: one per model, observations -> (codes, kl).
    random_state: ``np.random.RandomState`` or int seed.
    batch_size: observations per draw and per call (dlib: 10).
    num_data_points: observations in all; a multiple of ``batch_size``
      (dlib: 1000).

  Returns:
    ``(codes, kls)``: per model [num_data_points, D] codes and its KL [D]
    (the mean over batches of the batch KLs).
  """
  batch_size = sampling.check_positive("batch_size", batch_size)
  num_data_points = sampling.check_positive("num_data_points",
                                            num_data_points)
  if num_data_points % batch_size:
    raise ValueError(
        f"num_data_points ({num_data_points}) must be a multiple of "
        f"batch_size ({batch_size}), as in dlib; e.g. 1000 and 10.")
  rs = as_random_state(random_state)
  codes = [[] for _ in representation_fns]
  kls = [[] for _ in representation_fns]
  for _ in range(num_data_points // batch_size):
    observations = data.sample_observations(batch_size, rs)
    for k, fn in enumerate(representation_fns):
      batch_codes, batch_kl = fn(observations)
      # float64, as dlib's collecting arrays (the Lasso sees these numbers).
      codes[k].append(np.asarray(batch_codes, dtype=np.float64))
      kls[k].append(np.asarray(batch_kl, dtype=np.float64))
  return ([np.concatenate(c) for c in codes],
          [np.mean(np.stack(k), axis=0) for k in kls])


def udr_from_codes(codes: Sequence[np.ndarray], kls: Sequence[np.ndarray],
                   correlation_matrix: str = "lasso",
                   filter_low_kl: bool = True,
                   kl_filter_threshold: float = DEFAULT_KL_FILTER_THRESHOLD,
                   include_raw_correlations: bool = False,
                   random_state=None) -> dict:
  """Steps 2-5 on given codes (see ``udr``).

  Args:
    codes: per model, [N, D_k] codes of the same N observations.
    kls: per model, its KL per latent [D_k].
    correlation_matrix, filter_low_kl, kl_filter_threshold: as ``udr``.
    include_raw_correlations: also return the unfiltered matrices.
    random_state: handed to every Lasso fit, as dlib does.

  Returns:
    As ``udr``.
  """
  check_correlation_matrix(correlation_matrix)
  _check_models(codes)
  if len(kls) != len(codes):
    raise ValueError(f"{len(codes)} models' codes but {len(kls)} KL vectors.")
  if len({len(c) for c in codes}) != 1:
    raise ValueError(
        f"every model must encode the same observations; got "
        f"{[len(c) for c in codes]} points.")
  prepared = [prepare_codes(c, kl, kl_filter_threshold)
              for c, kl in zip(codes, kls)]
  num = len(codes)
  pairwise = np.zeros((num, num))
  raw = [[None] * num for _ in range(num)]
  for i in range(num):
    for j in range(num):
      if i != j:
        pairwise[i, j], raw[i][j] = pair_score(
            prepared[i], prepared[j], correlation_matrix, filter_low_kl,
            random_state)
  result = {"model_scores": model_scores(pairwise),
            "pairwise_disentanglement_scores": pairwise.tolist()}
  if include_raw_correlations:
    result["raw_correlations"] = [
        [None if m is None else m.tolist() for m in row] for row in raw]
  return result


def udr(data, representation_fns: Sequence[UdrRepresentationFn],
        random_state, batch_size: int = 10, num_data_points: int = 1000,
        correlation_matrix: str = "lasso", filter_low_kl: bool = True,
        kl_filter_threshold: float = DEFAULT_KL_FILTER_THRESHOLD,
        include_raw_correlations: bool = False) -> dict:
  """UDR of several models at once (dlib's ``compute_udr_sklearn``).

  See the module docstring for the definition. The draws are dlib's:
  ``num_data_points / batch_size`` calls of ``data.sample_observations``,
  each batch passed to every model in turn, then (``"lasso"``) one Lasso
  fit per ordered pair with ``random_state`` handed to it.

  Args:
    data: GroundTruthData-like dataset.
    representation_fns: at least 2; each maps observations [B, ...] to
      ``(mean codes [B, D], KL per latent averaged over the batch [D])``.
    random_state: ``np.random.RandomState`` or int seed.
    batch_size: observations per draw (dlib: 10).
    num_data_points: observations in all, a multiple of ``batch_size``
      (dlib: 1000).
    correlation_matrix: ``"lasso"`` (dlib's default) or ``"spearman"``.
    filter_low_kl: ignore codes with KL <= ``kl_filter_threshold`` in the
      similarity matrices (dlib: True).
    kl_filter_threshold: dlib: 0.01.
    include_raw_correlations: also return every pair's unfiltered matrix
      (dlib includes them by default; they are large).

  Returns:
    ``{"model_scores": [UDR per model], "pairwise_disentanglement_scores":
    [M][M] (S[i][j], 0 on the diagonal)}``, plus ``"raw_correlations"``
    ([M][M] matrices, None on the diagonal) when asked.

  Raises:
    ValueError: fewer than 2 models, an unknown correlation matrix, or
      sizes that are not positive or not multiples.
  """
  fns = _check_models(representation_fns)
  check_correlation_matrix(correlation_matrix)
  rs = as_random_state(random_state)
  codes, kls = sample_udr_codes(data, fns, rs, batch_size, num_data_points)
  return udr_from_codes(codes, kls, correlation_matrix, filter_low_kl,
                        kl_filter_threshold, include_raw_correlations,
                        random_state=rs)
