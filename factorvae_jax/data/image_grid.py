"""A dataset of stored images, one per cell of a full factor grid.

SmallNORB, Cars3D and MPI3D (and 3D Shapes) hold one image for every
combination of their factors. Some of those factors are not ground-truth
factors in disentanglement_lib (SmallNORB's object instance): they are
nuisances, drawn uniformly at random for every observation, exactly as
disentanglement_lib's ``SplitDiscreteStateSpace`` does.

Images stay in their compact stored dtype (uint8, or int16 where resizing can
overshoot [0, 255]) on the host and the device, in row-major order of the full
grid, and become float32 / 255 per batch.
"""

from __future__ import annotations

from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.data import ground_truth


class ImageGridData(ground_truth.GroundTruthData):
  """Stored images over a full factor grid, some factors possibly nuisances."""

  def __init__(self, images: np.ndarray, full_factor_names: Sequence[str],
               full_factor_sizes: Sequence[int],
               latent_factor_indices: Sequence[int], source: str,
               details: Optional[dict] = None):
    """Wraps images already in row-major order of the full grid.

    Args:
      images: [prod(full_factor_sizes), H, W, C] uint8 or int16 (value / 255
        is the observation).
      full_factor_names: names of all grid factors, in grid order.
      full_factor_sizes: classes of each grid factor.
      latent_factor_indices: the grid factors that are ground-truth factors
        (increasing); the others are drawn at random per observation.
      source: one line saying where the images come from.
      details: extra entries for ``describe()`` (file paths, sizes...).
    """
    full_factor_sizes = tuple(int(n) for n in full_factor_sizes)
    if len(full_factor_names) != len(full_factor_sizes):
      raise ValueError(f"{len(full_factor_names)} names for "
                       f"{len(full_factor_sizes)} factor sizes.")
    if images.ndim != 4 or len(images) != int(np.prod(full_factor_sizes)):
      raise ValueError(
          f"images must be [{int(np.prod(full_factor_sizes))}, H, W, C] for "
          f"the grid {full_factor_sizes}, got {list(images.shape)}.")
    if images.dtype not in (np.uint8, np.int16):
      raise ValueError(f"images must be uint8 or int16, got {images.dtype}.")
    latent = tuple(int(i) for i in latent_factor_indices)
    if list(latent) != sorted(set(latent)) or not set(latent) <= set(
        range(len(full_factor_sizes))):
      raise ValueError(f"latent_factor_indices {latent} must be increasing "
                       f"indices of the {len(full_factor_sizes)} factors.")
    self.full_factor_names = tuple(full_factor_names)
    self.full_factor_sizes = full_factor_sizes
    self.latent_factor_indices = latent
    self.nuisance_factor_indices = tuple(
        i for i in range(len(full_factor_sizes)) if i not in latent)
    self.factor_names = tuple(full_factor_names[i] for i in latent)
    self.factors_num_values = tuple(full_factor_sizes[i] for i in latent)
    self.observation_shape = tuple(int(n) for n in images.shape[1:])
    self.source = source
    self._images = images
    self._details = dict(details or {})

  has_observation_index = True

  @property
  def num_observations(self) -> int:
    """Cells of the full grid (nuisances included): one image each."""
    return len(self._images)

  def observation_indices(self, factors: np.ndarray,
                          random_state) -> np.ndarray:
    """Full-grid indices of the factors, drawing the nuisance factors.

    Args:
      factors: int [num, num_factors] classes of the ground-truth factors.
      random_state: ``np.random.RandomState`` or int seed; draws the nuisance
        factors in grid order (as disentanglement_lib), nothing otherwise.

    Returns:
      int64 [num] row-major indices into the full grid.
    """
    factors = np.asarray(factors)
    ground_truth.check_factor_grid(type(self).__name__, factors,
                                   self.factors_num_values)
    full = np.zeros((len(factors), len(self.full_factor_sizes)), np.int64)
    full[:, list(self.latent_factor_indices)] = factors
    if self.nuisance_factor_indices:
      rs = ground_truth.as_random_state(random_state)
      for i in self.nuisance_factor_indices:
        full[:, i] = rs.randint(self.full_factor_sizes[i], size=len(factors))
    return np.asarray(np.ravel_multi_index(tuple(full.T),
                                           self.full_factor_sizes), np.int64)

  def observations_at(self, indices: np.ndarray) -> np.ndarray:
    """float32 [num, *observation_shape] images (stored value / 255)."""
    return self._images[np.asarray(indices)].astype(np.float32) / 255.0

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Images of the factors, drawing the nuisance factors at random (as
    ``observation_indices``): float32 [num, *observation_shape]."""
    return self.observations_at(self.observation_indices(factors,
                                                         random_state))

  def device_arrays(self) -> dict:
    """The stored images (numpy; the caller places them on the device)."""
    return {"images": self._images}

  def sample_device_batch(self, arrays, key: jax.Array,
                          batch_size: int) -> jax.Array:
    """Gathers uniform random images (pure JAX).

    A uniform cell of the full grid is a uniform draw of the ground-truth
    factors with independent uniform nuisances, as on the numpy path.

    Args:
      arrays: ``{"images": [N, H, W, C]}`` on device.
      key: PRNG key.
      batch_size: static batch size.

    Returns:
      float32 [batch_size, *observation_shape], stored value / 255.
    """
    images = arrays["images"]
    index = ground_truth.sample_uniform_indices(key, batch_size,
                                                images.shape[0])
    return jnp.take(images, index, axis=0).astype(jnp.float32) / 255.0

  def describe(self) -> dict:
    """Base description, file details, nuisance factors and memory used."""
    description = super().describe()
    description.update(self._details)
    if self.nuisance_factor_indices:
      description["nuisance_factors"] = {
          self.full_factor_names[i]: self.full_factor_sizes[i]
          for i in self.nuisance_factor_indices}
    description["host_bytes"] = int(self._images.nbytes)
    return description
