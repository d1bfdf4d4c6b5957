"""Coercion of the seeds that numpy-side code accepts."""

from __future__ import annotations

import numpy as np


def as_random_state(random_state) -> np.random.RandomState:
  """Returns ``random_state`` if it is a RandomState, else one seeded with it."""
  if isinstance(random_state, np.random.RandomState):
    return random_state
  return np.random.RandomState(random_state)
