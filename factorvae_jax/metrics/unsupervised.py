"""Unsupervised scores of a representation, computed from codes alone.

These need no factor labels, cost milliseconds on 10^4 codes, and are meant
for logging during training. They reproduce disentanglement_lib's
``unsupervised_metrics`` (Locatello et al. 2019, Sec. 4 and App. B) on the
same array. The covariance is ``np.cov`` of the codes (ddof=1), as in dlib.
"""

from __future__ import annotations

import numpy as np

from factorvae_jax.metrics import information


def _covariance(codes: np.ndarray) -> np.ndarray:
  """Sample covariance (ddof=1) of the columns, always 2-D."""
  return np.atleast_2d(np.cov(codes.astype(np.float64), rowvar=False))


def _check_constant_codes(metric: str, cov: np.ndarray) -> None:
  constant = np.flatnonzero(np.diag(cov) <= 0).tolist()
  if constant:
    raise ValueError(
        f"{metric}: code(s) {constant} are constant over the sample, so their "
        f"Gaussian entropy is -inf and the score is undefined. Drop them "
        f"first, e.g. codes[:, codes.std(axis=0) > 0].")


def _total_correlation_from_cov(cov: np.ndarray) -> float:
  _check_constant_codes("gaussian_total_correlation", cov)
  sign, logdet = np.linalg.slogdet(cov)
  if sign <= 0:
    # A singular covariance (one code a linear function of others) has
    # infinite total correlation.
    return float("inf")
  return float(0.5 * (np.sum(np.log(np.diag(cov))) - logdet))


def _wasserstein_correlation_from_cov(cov: np.ndarray) -> float:
  # dlib takes trace(sqrtm(diag(cov) * cov)) with the diagonal scaling the
  # rows. That matrix is similar to S = D^1/2 cov D^1/2 (D = diag(cov)), which
  # is symmetric PSD, so the trace of its principal square root is the sum of
  # the square roots of S's eigenvalues: the same number, without a general
  # (and for near-singular inputs complex-valued) sqrtm.
  scale = np.sqrt(np.diag(cov))
  eigenvalues = np.linalg.eigvalsh(cov * np.outer(scale, scale))
  trace_sqrt = np.sum(np.sqrt(np.clip(eigenvalues, 0.0, None)))
  return float(2.0 * np.trace(cov) - 2.0 * trace_sqrt)


def gaussian_total_correlation(codes) -> float:
  """Total correlation of a Gaussian fitted to the codes (dlib's
  ``gaussian_total_correlation``; Locatello et al. 2019).

  Definition: with ``Sigma`` the sample covariance of the codes (ddof=1),
  ``TC = KL(N(0, Sigma) || N(0, diag(Sigma)))
  = sum_i H(N(0, Sigma_ii)) - H(N(0, Sigma))
  = 0.5 (sum_i log Sigma_ii - log det Sigma)`` in nats. It is 0 for
  uncorrelated codes and ``-0.5 log(1 - rho^2)`` for two codes with
  correlation ``rho``; it is invariant to rescaling each code.

  Args:
    codes: float [num_points, num_codes].

  Returns:
    The total correlation (``inf`` for a singular covariance).

  Raises:
    ValueError: if a code is constant (dlib returns NaN there).
  """
  codes = information.check_codes("codes", codes)
  return _total_correlation_from_cov(_covariance(codes))


def gaussian_wasserstein_correlation(codes) -> float:
  """Squared 2-Wasserstein distance between a Gaussian fitted to the codes
  and the product of its marginals (dlib's
  ``gaussian_wasserstein_correlation``; Locatello et al. 2019).

  Definition: ``W = 2 tr(Sigma) - 2 tr((diag(Sigma) Sigma)^(1/2))`` with
  ``Sigma`` the sample covariance (ddof=1). It is 0 for uncorrelated codes
  and scales with the codes' variance; see
  ``gaussian_wasserstein_correlation_norm`` for the scale-free variant.

  Args:
    codes: float [num_points, num_codes].

  Returns:
    The Wasserstein correlation.
  """
  codes = information.check_codes("codes", codes)
  return _wasserstein_correlation_from_cov(_covariance(codes))


def gaussian_wasserstein_correlation_norm(codes) -> float:
  """``gaussian_wasserstein_correlation`` divided by ``tr(Sigma)`` (dlib's
  ``gaussian_wasserstein_correlation_norm``): in [0, 2], scale invariant.

  Args:
    codes: float [num_points, num_codes].

  Returns:
    The normalised Wasserstein correlation.

  Raises:
    ValueError: if every code is constant (the trace is 0).
  """
  codes = information.check_codes("codes", codes)
  cov = _covariance(codes)
  if np.trace(cov) <= 0:
    raise ValueError(
        "gaussian_wasserstein_correlation_norm: every code is constant, so "
        "the normalising trace is 0. Evaluate a representation that varies.")
  return _wasserstein_correlation_from_cov(cov) / float(np.trace(cov))


def mutual_info_score(codes,
                      num_bins: int = information.DEFAULT_NUM_BINS) -> float:
  """Average pairwise mutual information between codes (dlib's
  ``mutual_info_score`` among its unsupervised metrics).

  Definition: discretise each code into ``num_bins`` equal-width histogram
  bins (as MIG), compute the plug-in mutual information ``I(z_i; z_j)`` in
  nats for every pair, and average over the ``C^2 - C`` ordered off-diagonal
  pairs (``C`` codes). There is no normalisation by entropies (dlib has
  none), so the value is in nats and grows with ``num_bins``; independent
  codes give about 0 plus the plug-in estimator's positive bias.

  Args:
    codes: float [num_points, num_codes], at least 2 codes.
    num_bins: bins per code (dlib study default 20).

  Returns:
    The mean off-diagonal mutual information.
  """
  codes = information.check_codes("codes", codes)
  num_codes = codes.shape[1]
  if num_codes < 2:
    raise ValueError(
        f"mutual_info_score averages over pairs of codes, so it needs at "
        f"least 2 codes; got {num_codes}.")
  labels = information.histogram_discretize(codes, num_bins)
  matrix = information.discrete_mutual_info(labels, labels)
  np.fill_diagonal(matrix, 0.0)
  return float(np.sum(matrix) / (num_codes ** 2 - num_codes))


def unsupervised_scores(codes, num_bins: int = information.DEFAULT_NUM_BINS
                        ) -> dict[str, float]:
  """All four unsupervised scores of dlib's ``unsupervised_metrics``.

  Shares one covariance between the Gaussian scores. A constant code makes
  the total correlation NaN here (instead of raising) so that logging during
  training never stops on a collapsed code.

  Args:
    codes: float [num_points, num_codes], at least 2 codes.
    num_bins: bins per code for ``mutual_info_score``.

  Returns:
    ``{"gaussian_total_correlation", "gaussian_wasserstein_correlation",
    "gaussian_wasserstein_correlation_norm", "mutual_info_score"}``.
  """
  codes = information.check_codes("codes", codes)
  cov = _covariance(codes)
  try:
    total_correlation = _total_correlation_from_cov(cov)
  except ValueError:
    total_correlation = float("nan")
  wasserstein = _wasserstein_correlation_from_cov(cov)
  trace = float(np.trace(cov))
  return {
      "gaussian_total_correlation": total_correlation,
      "gaussian_wasserstein_correlation": wasserstein,
      "gaussian_wasserstein_correlation_norm":
          wasserstein / trace if trace > 0 else float("nan"),
      "mutual_info_score": mutual_info_score(codes, num_bins),
  }
