"""Ground-truth dataset interface shared by training and the metrics.

The public methods follow disentanglement_lib's ``GroundTruthData`` so metric
code written for either library runs on the other's datasets. On top of that
interface every dataset offers a pure JAX sampler (``device_arrays`` plus
``sample_device_batch``) so the train step can draw batches on the accelerator
without a host-to-device copy per step.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

import jax
import numpy as np

# Re-exported: code written against this module imports it from here.
from factorvae_jax.utils.random_state import as_random_state  # noqa: F401


class GroundTruthData(abc.ABC):
  """A dataset whose observations are a deterministic-or-noisy function of factors.

  Subclasses set ``factor_names``, ``factors_num_values``, ``observation_shape``
  and ``source`` and implement ``sample_observations_from_factors`` and the
  device sampler. Factors are always *class indices* (ints in
  ``[0, factors_num_values[i])``), as in disentanglement_lib.
  """

  #: Human-readable factor names, one per factor.
  factor_names: tuple[str, ...]
  #: Number of classes of each factor.
  factors_num_values: tuple[int, ...]
  #: Shape of one observation, (height, width, channels).
  observation_shape: tuple[int, int, int]
  #: One line saying where the images come from (written into run outputs).
  source: str

  @property
  def num_factors(self) -> int:
    return len(self.factors_num_values)

  @property
  def num_images(self) -> int:
    """Number of distinct factor combinations (the size of the full grid)."""
    return int(np.prod(self.factors_num_values))

  # --- disentanglement_lib interface -------------------------------------
  def sample_factors(self, num: int, random_state) -> np.ndarray:
    """Samples factor class indices uniformly and independently.

    Args:
      num: number of samples.
      random_state: ``np.random.RandomState`` or int seed.

    Returns:
      int64 array [num, num_factors].
    """
    rs = as_random_state(random_state)
    return np.stack(
        [rs.randint(n, size=num) for n in self.factors_num_values], axis=1)

  @abc.abstractmethod
  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Returns float32 observations in [0, 1], shape [num, *observation_shape]."""

  def sample(self, num: int, random_state):
    """Returns ``(factors, observations)`` for ``num`` random factor draws."""
    rs = as_random_state(random_state)
    factors = self.sample_factors(num, rs)
    return factors, self.sample_observations_from_factors(factors, rs)

  def sample_observations(self, num: int, random_state) -> np.ndarray:
    """Returns ``num`` observations for random factors."""
    return self.sample(num, random_state)[1]

  # --- index <-> factor mapping ------------------------------------------
  def factors_to_index(self, factors) -> np.ndarray:
    """Maps factor classes [..., num_factors] to flat grid indices (row-major).

    The last factor varies fastest, which is the ordering of the official
    dSprites and 3D Shapes files.
    """
    factors = np.asarray(factors)
    return np.ravel_multi_index(
        tuple(factors[..., i] for i in range(self.num_factors)),
        self.factors_num_values)

  def index_to_factors(self, index) -> np.ndarray:
    """Inverse of ``factors_to_index``: flat indices -> [..., num_factors]."""
    return np.stack(np.unravel_index(np.asarray(index),
                                     self.factors_num_values), axis=-1)

  # --- observation indices (encode-once evaluation) ----------------------
  #: True when every observation is one of ``num_observations`` stored or
  #: rendered images, picked by ``observation_indices``: the image depends
  #: on the factors and the random draws alone, so a deterministic encoder
  #: gives every index one code (``metrics.code_cache`` encodes each once).
  has_observation_index: bool = False

  # The defaults below suit a dataset with one image per factor combination
  # (dSprites): it sets ``has_observation_index`` and implements
  # ``observations_at``. One with nuisance factors overrides both.
  @property
  def num_observations(self) -> int:
    """Number of distinct observations ``observation_indices`` can name."""
    return self.num_images

  def observation_indices(self, factors: np.ndarray,
                          random_state) -> np.ndarray:
    """The observations ``sample_observations_from_factors`` would return,
    as indices into ``observations_at``.

    Makes exactly the random draws ``sample_observations_from_factors``
    makes (that method is ``observations_at(observation_indices(...))``);
    by default none: the flat grid index of the factors.

    Args:
      factors: int [num, num_factors] factor classes.
      random_state: ``np.random.RandomState`` or int seed.

    Returns:
      int64 [num] indices in ``[0, num_observations)``.
    """
    del random_state
    if not self.has_observation_index:
      raise NotImplementedError(
          f"{type(self).__name__} has no observation index: its "
          f"observations are not one of a fixed set (has_observation_index "
          f"is False).")
    factors = np.asarray(factors)
    check_factor_grid(type(self).__name__, factors, self.factors_num_values)
    return np.asarray(self.factors_to_index(factors), np.int64)

  def observations_at(self, indices: np.ndarray) -> np.ndarray:
    """float32 observations [num, *observation_shape] of the given indices."""
    raise NotImplementedError(
        f"{type(self).__name__} has no observation index "
        f"(has_observation_index is False).")

  # --- on-device sampling --------------------------------------------------
  def device_arrays(self) -> Any:
    """Arrays the device sampler needs (a pytree); placed on device by the caller."""
    return {}

  @abc.abstractmethod
  def sample_device_batch(self, arrays: Any, key: jax.Array,
                          batch_size: int) -> jax.Array:
    """Pure JAX: draws ``batch_size`` observations uniformly from the dataset.

    Must be jittable with ``arrays`` as a traced argument (never close over
    large arrays: they would be baked into the compiled program).

    Args:
      arrays: the pytree returned by ``device_arrays`` (on device).
      key: PRNG key.
      batch_size: static batch size.

    Returns:
      float32 [batch_size, *observation_shape] in [0, 1].
    """

  def describe(self) -> dict:
    """A JSON-serialisable description (written into the run's outputs)."""
    return {
        "class": type(self).__name__,
        "source": self.source,
        "factor_names": list(self.factor_names),
        "factors_num_values": [int(n) for n in self.factors_num_values],
        "observation_shape": [int(n) for n in self.observation_shape],
    }


def sample_uniform_indices(key: jax.Array, batch_size: int,
                           num: int) -> jax.Array:
  """Uniform indices in [0, num), the same for a key whatever the device count."""
  return jax.random.randint(key, (batch_size,), 0, num)


def check_factor_grid(name: str, factors: np.ndarray,
                      sizes: Sequence[int]) -> None:
  """Raises ValueError unless ``factors`` are valid classes of ``sizes``."""
  factors = np.asarray(factors)
  if factors.ndim != 2 or factors.shape[1] != len(sizes):
    raise ValueError(
        f"{name}: factors must have shape [num, {len(sizes)}], got "
        f"{factors.shape}.")
  for i, n in enumerate(sizes):
    col = factors[:, i]
    if col.size and (col.min() < 0 or col.max() >= n):
      raise ValueError(
          f"{name}: factor {i} has classes outside [0, {n}): "
          f"min {col.min()}, max {col.max()}.")

