"""Encode each distinct observation once, for one model or several.

At disentanglement_lib's study sizes the suite asks for about 2.9M
observations, but dSprites has 737,280 distinct images (3D Shapes 480,000,
Cars3D 17,568): most are drawn many times. When a dataset names its
observations by index (``has_observation_index``: every observation is one of
a fixed set of stored or rendered images) and the representation is
deterministic (the mean of q(z|x), as dlib evaluates), encoding every distinct
index once and looking the codes up gives the same codes as encoding every
draw. ``CodeCache`` does that lazily: an index is rendered and encoded the
first time a metric asks for it. An encoder that pads its input to fixed
chunks gets its spare slots filled with observations not asked for yet, so
every encoder call does useful work: the cache never makes more encoder
calls than encoding every draw would, and once every observation is
encoded it makes none.

The metrics themselves do not change. ``CodeCache.dataset`` is a stand-in
dataset whose observations are the indices (its draws are the wrapped
dataset's own, call for call: the same ``random_state`` stream), and
``CodeCache.representation_fn(k)`` maps indices to model ``k``'s codes.

With several models (the runs of a packed sweep, all of one architecture),
``encode_fn`` returns every model's codes for a chunk of images in one
call, and the first model's pass through the suite fills the cache for all
of them: the later models' passes, which draw the same indices when they use
the same evaluation seed, encode nothing.

Like ``sampling``, this module imports neither JAX nor the dataset package.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from factorvae_jax.metrics import sampling
from factorvae_jax.utils.random_state import as_random_state

#: observations [B, ...] -> codes [B, num_models, num_codes].
ManyModelsEncodeFn = Callable[[np.ndarray], np.ndarray]


def supports_code_cache(data) -> bool:
  """Whether ``data`` names its observations by index (see module doc)."""
  return bool(getattr(data, "has_observation_index", False))


class IndexedObservations:
  """A dataset whose observations are the wrapped dataset's indices.

  Every random draw is delegated to the wrapped dataset in the same order
  (``observation_indices`` makes exactly the draws of
  ``sample_observations_from_factors``), so a metric run on this stand-in
  draws the same factors and observations as on the dataset itself.
  """

  def __init__(self, data):
    if not supports_code_cache(data):
      raise ValueError(
          f"{type(data).__name__} has no observation index "
          f"(has_observation_index is False): its observations are not one "
          f"of a fixed set, so codes cannot be cached per observation. Run "
          f"the metrics on the dataset itself.")
    self.data = data
    self.factor_names = tuple(data.factor_names)
    self.factors_num_values = tuple(data.factors_num_values)

  @property
  def num_factors(self) -> int:
    return len(self.factors_num_values)

  def sample_factors(self, num: int, random_state) -> np.ndarray:
    return self.data.sample_factors(num, random_state)

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """int64 [num] observation indices (the wrapped dataset's draws)."""
    return self.data.observation_indices(factors, random_state)

  def sample(self, num: int, random_state):
    """``(factors, indices)``, drawn as ``GroundTruthData.sample`` draws."""
    rs = as_random_state(random_state)
    factors = self.sample_factors(num, rs)
    return factors, self.sample_observations_from_factors(factors, rs)

  def sample_observations(self, num: int, random_state) -> np.ndarray:
    return self.sample(num, random_state)[1]


class CodeCache:
  """Codes of a dataset's observations, each encoded once, for M models.

  Attributes:
    dataset: the ``IndexedObservations`` stand-in to run the metrics on.
    num_models: M.
    num_encoded: distinct observations encoded so far (per model).
  """

  def __init__(self, data, encode_fn: ManyModelsEncodeFn,
               num_models: int = 1,
               chunk_size: int = sampling.DEFAULT_CHUNK_SIZE,
               fill_to: int = 1):
    """Creates an empty cache.

    Args:
      data: a dataset with ``has_observation_index`` (DSprites, procedural
        dSprites, 3D Shapes, MPI3D, Cars3D, SmallNORB).
      encode_fn: observations [B, ...] -> codes [B, num_models, num_codes]
        (numpy or array-like); must be deterministic, e.g. mean codes.
      num_models: M, the size of ``encode_fn``'s second axis.
      chunk_size: most observations rendered and passed to ``encode_fn`` at
        once (rounded down to a multiple of ``fill_to``).
      fill_to: ``encode_fn`` pads its input to a multiple of this many
        observations (a jitted encoder on fixed-size chunks), so those
        slots cost the same filled or not. The cache fills them with
        observations no metric has asked for yet (in a fixed random
        order): free work that later draws are likely to hit. 1 disables
        filling.

    Raises:
      ValueError: if ``data`` has no observation index.
    """
    self.dataset = IndexedObservations(data)
    self._data = data
    self._encode_fn = encode_fn
    self.num_models = sampling.check_positive("num_models", num_models)
    self._fill_to = sampling.check_positive("fill_to", fill_to)
    self._chunk_size = max(1, sampling.check_chunk_size(chunk_size)
                           // self._fill_to) * self._fill_to
    num = int(data.num_observations)
    self._have = np.zeros(num, bool)
    self._codes: np.ndarray | None = None  # [M, num_observations, C]
    self._fill_order = (np.random.RandomState(0).permutation(num)
                        if self._fill_to > 1 else None)
    self._fill_next = 0
    self.num_encoded = 0

  @classmethod
  def for_representation(cls, data, representation_fn,
                         chunk_size: int = sampling.DEFAULT_CHUNK_SIZE,
                         fill_to: int = 1) -> "CodeCache":
    """A one-model cache over ``representation_fn`` ([B, ...] -> [B, C])."""
    def encode_fn(observations):
      return sampling.encode(representation_fn, observations,
                             chunk_size)[:, None]
    return cls(data, encode_fn, 1, chunk_size, fill_to)

  def representation_fn(self, model: int = 0) -> sampling.RepresentationFn:
    """indices [B] -> model ``model``'s codes [B, num_codes]."""
    if not 0 <= model < self.num_models:
      raise ValueError(f"model must be in [0, {self.num_models}), got "
                       f"{model!r}.")
    return lambda indices: self.codes(indices, model)

  def codes(self, indices, model: int = 0) -> np.ndarray:
    """Model ``model``'s codes of observation indices, encoding new ones.

    Args:
      indices: int [B] indices from ``dataset``'s observations.
      model: which model's codes.

    Returns:
      [B, num_codes] codes, in the dtype ``encode_fn`` returned.
    """
    indices = np.asarray(indices).reshape(-1)
    missing = np.unique(indices[~self._have[indices]])
    if len(missing):
      missing = np.concatenate([missing, self._fillers(-len(missing) %
                                                       self._fill_to,
                                                       missing)])
    for start in range(0, len(missing), self._chunk_size):
      self._encode(missing[start:start + self._chunk_size])
    return self._codes[model, indices]

  def _fillers(self, count: int, taken: np.ndarray) -> np.ndarray:
    """Up to ``count`` not yet encoded indices outside ``taken``."""
    found = []
    while count > 0 and self._fill_next < len(self._fill_order):
      candidates = self._fill_order[self._fill_next:self._fill_next + count]
      self._fill_next += len(candidates)
      candidates = candidates[~self._have[candidates] &
                              ~np.isin(candidates, taken)]
      found.append(candidates)
      count -= len(candidates)
    return np.concatenate(found) if found else np.zeros(0, np.int64)

  def _encode(self, indices: np.ndarray) -> None:
    codes = np.asarray(self._encode_fn(self._data.observations_at(indices)))
    if codes.ndim != 3 or codes.shape[:2] != (len(indices), self.num_models):
      raise ValueError(
          f"encode_fn must map {len(indices)} observations to "
          f"[{len(indices)}, {self.num_models}, num_codes] codes, got shape "
          f"{codes.shape}.")
    if codes.dtype not in (np.float32, np.float64):
      codes = codes.astype(np.float64)
    if self._codes is None:
      self._codes = np.zeros((self.num_models, len(self._have),
                              codes.shape[2]), codes.dtype)
    elif codes.shape[2] != self._codes.shape[2]:
      raise ValueError(
          f"encode_fn returned {codes.shape[2]} codes per observation, "
          f"earlier {self._codes.shape[2]}; it must return the same number "
          f"every call.")
    self._codes[:, indices] = np.swapaxes(codes, 0, 1)
    self._have[indices] = True
    self.num_encoded += len(indices)
