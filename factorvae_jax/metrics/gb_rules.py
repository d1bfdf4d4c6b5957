"""scikit-learn's gradient-boosting settings and constants, in one place.

Both DCI backends that follow ``GradientBoostingClassifier`` rule by rule
(``boosted_trees``, compiled for the CPU, and ``gradient_boosting``, the JAX
port) read them here.
"""

import numpy as np

#: sklearn's GradientBoostingClassifier defaults (dlib's DCI setting).
LEARNING_RATE = 0.1
NUM_STAGES = 100
MAX_DEPTH = 3

#: sklearn.tree._partitioner.FEATURE_THRESHOLD (a float32 constant there).
FEATURE_THRESHOLD = np.float32(1e-7)
#: sklearn.tree._tree.EPSILON.
EPSILON = float(np.finfo(np.float64).eps)
#: sklearn's RAND_R_MAX (its tree random number generator's range).
RAND_R_MAX = 2**31 - 1
#: sklearn.ensemble._gb._safe_divide's cut-off.
MIN_DENOMINATOR = 1e-150


def encode_factor(factors: np.ndarray, j: int) -> tuple[np.ndarray, np.ndarray]:
  """Factor ``j``'s sorted classes and each point's class index, as sklearn.

  Raises:
    ValueError: if the factor takes one value (sklearn cannot fit it).
  """
  values, encoded = np.unique(factors[:, j], return_inverse=True)
  if len(values) < 2:
    raise ValueError(
        f"factor {j} takes the single value {values.tolist()} in the "
        f"training points, so no classifier can be fitted for it; sample "
        f"more points or drop the factor.")
  return values, encoded
