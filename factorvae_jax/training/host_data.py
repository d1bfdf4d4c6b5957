"""The host-side data path, for datasets that do not fit on the device.

By default the dataset's arrays are copied to every device and each step
draws its batch there (``train_step.sample_train_batch``): no host work per
step. With ``config.data.on_device = False`` the arrays stay in host memory
and :class:`HostBatches` draws each chunk's batches on the host CPU with the
very same function and keys -- ``sample_global_batch`` with the data key of
``fold_in(state.rng, step)`` -- then splits them into the devices' shards.
The batches, and so the trained parameters, are the same as on the device
path; only where the draw runs differs. The next chunk is drawn in a
background thread while the device trains on the current one.
"""

from __future__ import annotations

import concurrent.futures
import functools
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.builder.state import StepConfig
from factorvae_jax.training.train_step import sample_global_batch


def _draw_chunk(step_config: StepConfig, sample_fn, global_batch: int,
                num_steps: int, rng: jax.Array, first_step: jax.Array,
                arrays: Any) -> dict:
  """Every step's global batch(es) of a chunk: [num_steps, global, ...]."""

  def one(step):
    key = jax.random.fold_in(rng, step)
    data_key, _ = jax.random.split(key)
    return sample_global_batch(step_config, sample_fn, arrays, data_key,
                               global_batch)

  # lax.map, not vmap: each step's draw is the same program as on the device.
  steps = first_step + jnp.arange(num_steps, dtype=jnp.int32)
  return jax.lax.map(one, steps)


class HostBatches:
  """Draws chunks of training batches on the host, one chunk ahead.

  Example:
    host = HostBatches(dataset, step_config, batch_size, num_devices, rng)
    batches = host.get(step, chunk)   # {'x': [devices, chunk, local, ...]}
    host.prefetch(step + chunk, next_chunk)
  """

  def __init__(self, dataset, step_config: StepConfig, global_batch: int,
               num_devices: int, rng: jax.Array):
    """Places the dataset's arrays on the host CPU.

    Args:
      dataset: a ``GroundTruthData``.
      step_config: the train step's configuration (whether the objective
        wants a second batch).
      global_batch: ``config.batch_size``.
      num_devices: the local devices the batches are split over.
      rng: the train state's ``rng`` (one run's; constant during training).
    """
    if global_batch % num_devices:
      raise ValueError(f"batch size {global_batch} is not divisible by the "
                       f"{num_devices} local devices.")
    cpu = jax.devices("cpu")[0]
    self._arrays = jax.device_put(dataset.device_arrays(), cpu)
    self._rng = jax.device_put(jnp.asarray(rng), cpu)
    self._cpu = cpu
    self._num_devices = num_devices
    self._draw = jax.jit(
        functools.partial(_draw_chunk, step_config,
                          dataset.sample_device_batch, global_batch),
        static_argnums=(0,))
    self._pool = concurrent.futures.ThreadPoolExecutor(1)
    self._pending: Optional[tuple[int, int, concurrent.futures.Future]] = None

  def _compute(self, first_step: int, num_steps: int) -> dict:
    first = jax.device_put(np.int32(first_step), self._cpu)
    chunk = self._draw(num_steps, self._rng, first, self._arrays)
    out = {}
    for name, value in chunk.items():
      value = np.asarray(value)  # [steps, global, ...]
      steps, global_batch = value.shape[:2]
      local = global_batch // self._num_devices
      # Device d gets rows [d * local, (d + 1) * local) of every step's
      # global batch, as local_slice takes them on the device path.
      value = value.reshape(steps, self._num_devices, local, *value.shape[2:])
      out[name] = np.ascontiguousarray(np.swapaxes(value, 0, 1))
    return out

  def prefetch(self, first_step: int, num_steps: int) -> None:
    """Starts drawing the chunk of ``num_steps`` steps from ``first_step``."""
    if num_steps > 0:
      self._pending = (first_step, num_steps,
                       self._pool.submit(self._compute, first_step, num_steps))

  def get(self, first_step: int, num_steps: int) -> dict:
    """The devices' shards of the chunk's batches.

    Args:
      first_step: the state's step at the start of the chunk.
      num_steps: the chunk's length.

    Returns:
      ``{'x': [num_devices, num_steps, local_batch, ...]}`` (and ``'x2'``
      when the objective wants it), numpy, for a pmapped step.
    """
    pending, self._pending = self._pending, None
    if pending is not None and pending[:2] == (first_step, num_steps):
      return pending[2].result()
    return self._compute(first_step, num_steps)

  def close(self) -> None:
    """Stops the background thread (after the chunk it is drawing)."""
    self._pool.shutdown(wait=True, cancel_futures=True)
