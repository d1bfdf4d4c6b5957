"""Data-parallel helpers shared by the train step and the objectives.

Under ``pmap`` each device holds a shard of the global batch. Random draws that
span the batch are made for the *global* batch and sliced, so results do not
depend on how many devices share it. Outside ``pmap`` (``axis_name=None``)
every helper is the identity.
"""

from __future__ import annotations

from typing import Any, Optional

import jax


def device_position(axis_name: Optional[str]) -> tuple[Any, int]:
  """(index of this device, number of devices) along ``axis_name``."""
  if axis_name is None:
    return 0, 1
  return jax.lax.axis_index(axis_name), jax.lax.axis_size(axis_name)


def local_slice(x: jax.Array, index, local_size: int) -> jax.Array:
  """Rows [index * local_size, (index + 1) * local_size) of ``x``."""
  return jax.lax.dynamic_slice_in_dim(x, index * local_size, local_size, 0)


def gather_batch(x: jax.Array, axis_name: Optional[str]) -> jax.Array:
  """Returns the global batch of ``x`` (concatenated in device order).

  Args:
    x: local shard, [B_local, ...].
    axis_name: the pmap axis name, or None outside pmap.

  Returns:
    [B_global, ...]; ``x`` itself when ``axis_name`` is None.
  """
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, tiled=True)


def draw_global_normal(key: jax.Array, local_shape: tuple[int, int],
                       axis_name: Optional[str]) -> jax.Array:
  """Standard normal noise drawn for the global batch, this device's rows."""
  index, count = device_position(axis_name)
  full = jax.random.normal(key, (local_shape[0] * count, local_shape[1]))
  return local_slice(full, index, local_shape[0])
