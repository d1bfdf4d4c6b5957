"""Interventional Robustness Score (IRS), as disentanglement_lib computes it.

Suter et al. 2019, "Robustly Disentangled Causal Mechanisms: Validating Deep
Representations for Interventional Robustness". For each code and factor,
IRS asks how far the code moves while that factor is held fixed (the other
factors vary): a code that depends on one factor alone does not move at all
once its factor is fixed.

disentanglement_lib's form (``irs.compute_irs``), which this follows:

1. Sample ``num_train`` (factors, codes) pairs (``batch_size`` per
   ``data.sample`` call), drop the codes that are exactly constant.
2. Discretise every *factor* into ``num_bins`` equal-width histogram bins
   (the study's ``discretizer``, 20 bins): a factor with more than 20
   classes has neighbouring classes merged into one group.
3. For code ``i`` and factor ``k``: for every group ``g`` of factor ``k``,
   the ``diff_quantile`` quantile (``np.percentile``, linear) of
   ``|z_i - E[z_i | g]|`` over the points of ``g``; averaged over the groups
   and divided by ``max |z_i - E[z_i]|`` over all points. ``1 -`` that is
   the IRS matrix entry; a code's score is its best entry, and the IRS is the
   average of the codes' scores weighted by their ``max |z_i - E[z_i]|``.
"""

from __future__ import annotations

import numpy as np

from factorvae_jax.metrics import information
from factorvae_jax.metrics import sampling
from factorvae_jax.utils.random_state import as_random_state

#: dlib's default quantile of the within-group deviations (1.0 is the
#: paper's maximum; dlib uses 0.99 to be robust to outliers).
DEFAULT_DIFF_QUANTILE = 0.99


def _check_quantile(diff_quantile) -> float:
  if not 0.0 <= float(diff_quantile) <= 1.0:
    raise ValueError(
        f"diff_quantile must be in [0, 1], got {diff_quantile!r}; dlib uses "
        f"{DEFAULT_DIFF_QUANTILE} (1.0 is the paper's maximum deviation).")
  return float(diff_quantile)


def irs_matrix(codes, factor_groups, diff_quantile: float =
               DEFAULT_DIFF_QUANTILE) -> tuple[np.ndarray, np.ndarray]:
  """The IRS matrix of non-constant codes and their normalisers.

  Args:
    codes: float [N, num_codes], every column non-constant.
    factor_groups: int [N, num_factors], the group of each point per factor
      (dlib: the histogram bin of the factor).
    diff_quantile: quantile of the within-group deviations.

  Returns:
    ``(matrix [num_codes, num_factors], max_deviations [num_codes])``:
    ``matrix[i, k] = 1 - mean_g q(|z_i - E[z_i|g]|) / max_deviations[i]``.
  """
  codes = np.asarray(codes, np.float64)
  factor_groups = np.asarray(factor_groups)
  max_deviations = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
  deviations = np.zeros((codes.shape[1], factor_groups.shape[1]))
  for k in range(factor_groups.shape[1]):
    groups = np.unique(factor_groups[:, k])
    for group in groups:
      members = codes[factor_groups[:, k] == group]
      spread = np.abs(members - members.mean(axis=0))
      deviations[:, k] += np.percentile(spread, q=diff_quantile * 100, axis=0)
    deviations[:, k] /= len(groups)
  return 1.0 - deviations / max_deviations[:, None], max_deviations


def irs_from_codes(codes, factors, diff_quantile: float =
                   DEFAULT_DIFF_QUANTILE,
                   num_bins: int = information.DEFAULT_NUM_BINS
                   ) -> dict[str, float | int]:
  """IRS of given (codes, factors) samples.

  Args:
    codes: float [N, num_codes].
    factors: int class indices [N, num_factors].
    diff_quantile: quantile of the within-group deviations (dlib: 0.99).
    num_bins: histogram bins the factors are grouped into (dlib study: 20).

  Returns:
    ``{"IRS": float, "num_active_dims": int}`` (dlib's keys). IRS is 0 when
    every code is constant. ``num_active_dims`` counts the non-constant
    codes (dlib returns the *sum of their values* under this name, a bug).
  """
  codes = information.check_codes("codes", codes)
  factors = information.check_factors("factors", factors, codes.shape[0])
  diff_quantile = _check_quantile(diff_quantile)
  # dlib groups the points by the histogram bin of each factor's value.
  groups = information.histogram_discretize(factors, num_bins)
  # Exactly constant codes carry no deviation to normalise by (dlib drops
  # them with var > 0, which is what this tests).
  active = codes.var(axis=0) > 0.0
  if not active.any():
    return {"IRS": 0.0, "num_active_dims": 0}
  matrix, max_deviations = irs_matrix(codes[:, active], groups, diff_quantile)
  scores = matrix.max(axis=1)
  # Non-constant codes have max deviation > 0, so the weights never sum to 0.
  return {"IRS": float(np.average(scores, weights=max_deviations)),
          "num_active_dims": int(active.sum())}


def irs(data, representation_fn, random_state, num_train: int = 10000,
        batch_size: int = 16, diff_quantile: float = DEFAULT_DIFF_QUANTILE,
        num_bins: int = information.DEFAULT_NUM_BINS,
        chunk_size: int = sampling.DEFAULT_CHUNK_SIZE
        ) -> dict[str, float | int]:
  """Interventional Robustness Score of a representation (dlib's ``irs``).

  Draws exactly what dlib draws: ``num_train`` points, ``batch_size`` per
  ``data.sample`` call, from ``random_state``. See the module docstring for
  the definition.

  Args:
    data: GroundTruthData-like dataset.
    representation_fn: numpy observations [B, ...] -> codes [B, num_codes].
    random_state: ``np.random.RandomState`` or int seed.
    num_train: points sampled (dlib study: 10000).
    batch_size: points per ``data.sample`` call (dlib: 16).
    diff_quantile: quantile of the within-group deviations (dlib: 0.99).
    num_bins: histogram bins the factors are grouped into (dlib: 20).
    chunk_size: observations per ``representation_fn`` call (not in dlib).

  Returns:
    ``{"IRS", "num_active_dims"}``, as ``irs_from_codes``.
  """
  _check_quantile(diff_quantile)
  codes, factors = sampling.sample_codes_and_factors(
      data, representation_fn, num_train, as_random_state(random_state),
      batch_size, chunk_size)
  return irs_from_codes(codes, factors, diff_quantile, num_bins)
