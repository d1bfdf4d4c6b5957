"""Input checks, histogram discretisation and discrete mutual information.

These are the building blocks shared by MIG, modularity and the unsupervised
mutual-information score. Everything follows disentanglement_lib's
conventions so scores agree with it on the same arrays:

* Codes are discretised per code into ``num_bins`` equal-width bins spanning
  that code's observed ``[min, max]``; the bin of a value is
  ``np.digitize(value, edges[:-1])`` with ``edges`` from ``np.histogram``, so
  labels run from 1 to ``num_bins`` and the maximum lands in the last bin.
* Mutual information is the plug-in (empirical-frequency) estimate in nats,
  the quantity ``sklearn.metrics.mutual_info_score`` returns.
* The entropy of a factor is its plug-in entropy in nats (dlib computes it as
  the mutual information of the factor with itself, which is the same number).

Arrays are laid out ``[num_points, num_codes]`` and ``[num_points,
num_factors]`` (one row per sample), the transpose of dlib's internal layout.
"""

from __future__ import annotations

import numpy as np

#: The bin count disentanglement_lib's study uses for every histogram metric.
DEFAULT_NUM_BINS = 20

_EPS = np.finfo(np.float64).eps


def check_codes(name: str, codes, min_points: int = 2) -> np.ndarray:
  """Returns ``codes`` as a finite float array [num_points, num_codes].

  float32 and float64 inputs keep their dtype, because the histogram edges
  (and so the bins near an edge) depend on it and dlib bins whatever dtype the
  representation returns. Other dtypes (ints, bfloat16, ...) become float64.

  Args:
    name: what to call the array in error messages (e.g. ``"codes_train"``).
    codes: array-like [num_points, num_codes].
    min_points: the fewest rows the caller can work with.

  Returns:
    The validated array.

  Raises:
    ValueError: on a wrong rank, too few rows, no columns or non-finite values.
  """
  codes = np.asarray(codes)
  if codes.dtype not in (np.float32, np.float64):
    codes = codes.astype(np.float64)
  if codes.ndim != 2:
    raise ValueError(
        f"{name} must be a 2-D array [num_points, num_codes], got shape "
        f"{codes.shape}. Reshape a single code with codes[:, None].")
  if codes.shape[0] < min_points or codes.shape[1] < 1:
    raise ValueError(
        f"{name} has shape {codes.shape}; need at least {min_points} points "
        f"and 1 code. Sample more points.")
  if not np.all(np.isfinite(codes)):
    bad = np.unique(np.nonzero(~np.isfinite(codes))[1]).tolist()
    raise ValueError(
        f"{name} contains NaN or inf in code column(s) {bad}; the metrics need "
        f"finite codes. Check the representation function (a diverged model "
        f"produces these).")
  return codes


def check_factors(name: str, factors, num_points: int | None = None
                  ) -> np.ndarray:
  """Returns ``factors`` as an int64 array [num_points, num_factors].

  Args:
    name: what to call the array in error messages.
    factors: integer class indices, array-like [num_points, num_factors].
    num_points: the row count the matching codes have, if known.

  Returns:
    The validated array.

  Raises:
    ValueError: on a wrong rank, a non-integer dtype or a row-count mismatch.
  """
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] < 1:
    raise ValueError(
        f"{name} must be a 2-D array [num_points, num_factors], got shape "
        f"{factors.shape}. Reshape a single factor with factors[:, None].")
  if not (np.issubdtype(factors.dtype, np.integer)
          or factors.dtype == np.bool_):
    raise ValueError(
        f"{name} must hold integer factor class indices, got dtype "
        f"{factors.dtype}. Pass the class indices (as data.sample_factors "
        f"returns them), not factor values; cast with factors.astype(int) if "
        f"they are already whole numbers.")
  if num_points is not None and factors.shape[0] != num_points:
    raise ValueError(
        f"{name} has {factors.shape[0]} rows but the codes have {num_points}; "
        f"codes and factors must describe the same samples, row for row.")
  return factors.astype(np.int64, copy=False)


def check_num_bins(num_bins) -> int:
  """Returns ``num_bins`` as an int after checking it is at least 1."""
  if int(num_bins) != num_bins or num_bins < 1:
    raise ValueError(
        f"num_bins must be a positive integer, got {num_bins!r}; "
        f"disentanglement_lib uses {DEFAULT_NUM_BINS}.")
  return int(num_bins)


def histogram_discretize(codes, num_bins: int = DEFAULT_NUM_BINS
                         ) -> np.ndarray:
  """Discretises each code into equal-width histogram bins (dlib's binning).

  For each column, the edges are those of ``np.histogram(column, num_bins)``
  (``num_bins`` equal-width bins over the column's min..max, or over
  ``value +- 0.5`` for a constant column) and a value's label is
  ``np.digitize(value, edges[:-1])``, an integer in ``[1, num_bins]``.

  Args:
    codes: float [num_points, num_codes].
    num_bins: number of bins per code.

  Returns:
    int64 [num_points, num_codes] bin labels.
  """
  codes = check_codes("codes", codes, min_points=1)
  num_bins = check_num_bins(num_bins)
  labels = np.empty(codes.shape, dtype=np.int64)
  for i in range(codes.shape[1]):
    # np.histogram_bin_edges is the edge computation np.histogram uses, so
    # these are bit-identical to dlib's edges for the same dtype.
    edges = np.histogram_bin_edges(codes[:, i], bins=num_bins)
    labels[:, i] = np.digitize(codes[:, i], edges[:-1])
  return labels


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, int]:
  """Maps arbitrary integer labels to 0..k-1; returns them and k."""
  uniques, dense = np.unique(labels, return_inverse=True)
  return dense.reshape(-1), len(uniques)


def discrete_entropy(labels) -> np.ndarray:
  """Plug-in entropy (nats) of each column of a discrete array.

  Equals ``sklearn.metrics.mutual_info_score(y, y)`` per column, which is how
  dlib computes a factor's entropy.

  Args:
    labels: int [num_points, num_columns].

  Returns:
    float64 [num_columns].
  """
  labels = np.asarray(labels)
  n = labels.shape[0]
  out = np.zeros(labels.shape[1])
  for j in range(labels.shape[1]):
    dense, k = _dense_labels(labels[:, j])
    counts = np.bincount(dense, minlength=k).astype(np.float64)
    counts = counts[counts > 0]
    # -sum p log p with p = c / n, written to avoid log of a tiny ratio.
    out[j] = np.log(n) - np.sum(counts * np.log(counts)) / n
  return np.maximum(out, 0.0)


def discrete_mutual_info(labels_a, labels_b) -> np.ndarray:
  """Plug-in mutual information (nats) between every pair of columns.

  Entry ``[i, j]`` is the empirical mutual information of column ``i`` of
  ``labels_a`` and column ``j`` of ``labels_b``:
  ``sum_xy p(x, y) log(p(x, y) / (p(x) p(y)))`` with ``p`` the sample
  frequencies. It equals ``sklearn.metrics.mutual_info_score`` (which dlib
  calls per pair) up to float rounding; like it, a constant column gives
  exactly 0, per-cell terms below machine epsilon are dropped and the sum is
  clipped at 0.

  Args:
    labels_a: int [num_points, num_a] (e.g. discretised codes).
    labels_b: int [num_points, num_b] (e.g. factor classes).

  Returns:
    float64 [num_a, num_b].
  """
  labels_a = np.asarray(labels_a)
  labels_b = np.asarray(labels_b)
  if labels_a.shape[0] != labels_b.shape[0]:
    raise ValueError(
        f"labels_a has {labels_a.shape[0]} rows and labels_b "
        f"{labels_b.shape[0]}; they must describe the same samples.")
  n = labels_a.shape[0]
  dense_a = [_dense_labels(labels_a[:, i]) for i in range(labels_a.shape[1])]
  dense_b = [_dense_labels(labels_b[:, j]) for j in range(labels_b.shape[1])]
  log_n = np.log(n)
  out = np.zeros((labels_a.shape[1], labels_b.shape[1]))
  for i, (a, ka) in enumerate(dense_a):
    count_a = np.bincount(a, minlength=ka).astype(np.float64)
    for j, (b, kb) in enumerate(dense_b):
      count_b = np.bincount(b, minlength=kb).astype(np.float64)
      joint = np.bincount(a * kb + b, minlength=ka * kb).astype(np.float64)
      nz = np.nonzero(joint)[0]
      c = joint[nz]
      # MI = sum (c/n) [log c + log n - log a_x - log b_y]; summing logs of
      # counts keeps every term exact to rounding even for rare cells.
      if ka == 1 or kb == 1:
        continue  # A constant variable shares no information (exactly 0).
      terms = c / n * (np.log(c) + log_n - np.log(count_a[nz // kb])
                       - np.log(count_b[nz % kb]))
      # sklearn drops terms below machine epsilon; matching it keeps
      # independent pairs at the same (tiny) values.
      terms[np.abs(terms) < _EPS] = 0.0
      out[i, j] = max(np.sum(terms), 0.0)
  return out
