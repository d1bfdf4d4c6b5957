"""Drawing (factors, codes) samples from a dataset through a representation.

``data`` is anything with disentanglement_lib's ``GroundTruthData`` methods
(``num_factors``, ``sample_factors``, ``sample_observations_from_factors``,
``sample``); ``representation_fn`` maps a numpy batch of observations to a
[batch, num_codes] array (numpy, or anything ``np.asarray`` accepts, e.g. a
JAX array).

The random draws are made in the same order and with the same call sizes as
dlib, so with the same ``RandomState`` seed and a dataset that samples like
dlib's, the factors drawn are identical. Only the *encoding* is batched
differently: observations are buffered and passed to ``representation_fn``
``chunk_size``-ish at a time, which bounds memory and amortises per-call
overhead (e.g. a jitted model) without changing any random draw.

This module deliberately does not import JAX or the dataset package, so the
metrics work (and their joblib workers start) without either.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from factorvae_jax.utils.random_state import as_random_state

#: Observations per ``representation_fn`` call when a caller does not say.
DEFAULT_CHUNK_SIZE = 1000

RepresentationFn = Callable[[np.ndarray], np.ndarray]


def check_chunk_size(chunk_size) -> int:
  if int(chunk_size) != chunk_size or chunk_size < 1:
    raise ValueError(
        f"chunk_size must be a positive integer, got {chunk_size!r}; "
        f"{DEFAULT_CHUNK_SIZE} suits most representations.")
  return int(chunk_size)


def check_positive(name: str, value, minimum: int = 1) -> int:
  """Returns ``value`` as an int after checking ``value >= minimum``."""
  if isinstance(value, bool) or int(value) != value or value < minimum:
    raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
  return int(value)


def encode(representation_fn: RepresentationFn, observations,
           chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
  """Applies ``representation_fn`` to ``observations`` in chunks.

  Args:
    representation_fn: maps [batch, *observation_shape] to [batch, num_codes].
    observations: array [num, *observation_shape].
    chunk_size: most observations per call.

  Returns:
    [num, num_codes] numpy array. float32/float64 outputs keep their dtype
    (dlib bins whatever the representation returns); others become float64.

  Raises:
    ValueError: if the representation returns the wrong shape.
  """
  chunk_size = check_chunk_size(chunk_size)
  num = len(observations)
  parts = []
  for start in range(0, num, chunk_size):
    batch = observations[start:start + chunk_size]
    codes = np.asarray(representation_fn(batch))
    if codes.ndim != 2 or codes.shape[0] != len(batch):
      raise ValueError(
          f"representation_fn must map a batch of {len(batch)} observations "
          f"to a [{len(batch)}, num_codes] array, got shape {codes.shape}. "
          f"Flatten the codes per observation (e.g. return "
          f"z.reshape(len(z), -1)).")
    if codes.dtype not in (np.float32, np.float64):
      codes = codes.astype(np.float64)
    parts.append(codes)
  if not parts:
    raise ValueError("encode got 0 observations; sample at least one.")
  return np.concatenate(parts, axis=0)


class EncodingBuffer:
  """Queues observations and encodes them once ``chunk_size`` are waiting.

  Lets a sampler that draws many small batches (one per vote) call the
  representation on large chunks, in order.
  """

  def __init__(self, representation_fn: RepresentationFn, chunk_size: int):
    self._representation_fn = representation_fn
    self._chunk_size = chunk_size
    self._pending: list[np.ndarray] = []
    self._num_pending = 0
    self._codes: list[np.ndarray] = []

  def add(self, observations: np.ndarray) -> None:
    self._pending.append(np.asarray(observations))
    self._num_pending += len(observations)
    if self._num_pending >= self._chunk_size:
      self._flush()

  def _flush(self) -> None:
    if self._pending:
      batch = np.concatenate(self._pending, axis=0)
      self._codes.append(encode(self._representation_fn, batch,
                                self._chunk_size))
      self._pending, self._num_pending = [], 0

  def codes(self) -> np.ndarray:
    """Encodes what is still queued and returns all codes, in order."""
    self._flush()
    return np.concatenate(self._codes, axis=0)


def sample_codes_and_factors(data, representation_fn: RepresentationFn,
                             num_points: int, random_state,
                             batch_size: int = 16,
                             chunk_size: int = DEFAULT_CHUNK_SIZE
                             ) -> tuple[np.ndarray, np.ndarray]:
  """Samples ``num_points`` random (codes, factors) pairs.

  The draws are dlib's ``generate_batch_factor_code``: ``data.sample`` is
  called with ``batch_size`` points at a time (the last call with the
  remainder); ``batch_size`` only decides how the random stream is cut, not
  the distribution. The observations are encoded ``chunk_size`` at a time.

  Args:
    data: a GroundTruthData-like dataset.
    representation_fn: observations -> codes.
    num_points: number of samples.
    random_state: ``np.random.RandomState`` or int seed.
    batch_size: points per ``data.sample`` call (dlib default 16).
    chunk_size: observations per ``representation_fn`` call.

  Returns:
    ``(codes, factors)``: [num_points, num_codes] and int64
    [num_points, num_factors].
  """
  num_points = check_positive("num_points", num_points)
  batch_size = check_positive("batch_size", batch_size)
  rs = as_random_state(random_state)
  buffer = EncodingBuffer(representation_fn, check_chunk_size(chunk_size))
  factors = []
  done = 0
  while done < num_points:
    size = min(batch_size, num_points - done)
    batch_factors, observations = data.sample(size, rs)
    factors.append(np.asarray(batch_factors, dtype=np.int64))
    buffer.add(observations)
    done += size
  return buffer.codes(), np.concatenate(factors, axis=0)


def sample_codes(data, representation_fn: RepresentationFn, num_points: int,
                 random_state, chunk_size: int = DEFAULT_CHUNK_SIZE
                 ) -> np.ndarray:
  """Encodes ``num_points`` random observations, drawn like dlib's
  ``data.sample_observations(num_points, random_state)``.

  The factors are drawn in one ``sample_factors`` call, as that method does;
  the observations are then rendered and encoded ``chunk_size`` at a time to
  bound memory.

  Args:
    data: a GroundTruthData-like dataset.
    representation_fn: observations -> codes.
    num_points: number of samples.
    random_state: ``np.random.RandomState`` or int seed.
    chunk_size: observations per render and per ``representation_fn`` call.

  Returns:
    [num_points, num_codes] codes.
  """
  num_points = check_positive("num_points", num_points)
  chunk_size = check_chunk_size(chunk_size)
  rs = as_random_state(random_state)
  factors = np.asarray(data.sample_factors(num_points, rs))
  parts = []
  for start in range(0, num_points, chunk_size):
    observations = data.sample_observations_from_factors(
        factors[start:start + chunk_size], rs)
    parts.append(encode(representation_fn, observations, chunk_size))
  return np.concatenate(parts, axis=0)
