"""Moving a train state onto the devices and back, as the loop does."""

import logging

from absl.testing import absltest
import chex
import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.training import loop

AXIS = "devices"


def _tree():
  return {"params": {"w": np.arange(12, dtype=np.float32).reshape(3, 4),
                     "b": np.float32(0.5)},
          "step": np.int32(7), "rng": np.array([1, 2], np.uint32)}


class ReplicationTest(absltest.TestCase):

  def setUp(self):
    super().setUp()
    self.n = jax.local_device_count()
    self.assertGreater(self.n, 1, "conftest gives the suite 4 CPU devices")

  def test_round_trip_is_exact(self):
    host = loop.unreplicate(loop.replicate(_tree()))
    chex.assert_trees_all_equal(host, _tree())
    for leaf in jax.tree.leaves(host):
      self.assertIsInstance(leaf, np.ndarray)

  def test_reads_the_first_devices_copy(self):
    # Rows that differ per device: the result is device 0's.
    per_device = jax.pmap(lambda x: x * (1 + jax.lax.axis_index(AXIS)),
                          axis_name=AXIS)(
                              np.ones((self.n, 2, 3), np.float32))
    np.testing.assert_array_equal(loop.unreplicate(per_device),
                                  np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(
        loop.unreplicate({"x": per_device})["x"], np.asarray(per_device)[0])

  def test_result_outlives_a_donated_state(self):
    # The checkpoint of a step is written while the next steps run on the
    # donated state: what was read must not change under it.
    step = jax.pmap(lambda s: jax.tree.map(lambda x: x + 1, s),
                    axis_name=AXIS, donate_argnums=(0,))
    state = loop.replicate({"w": np.zeros((64, 64), np.float32)})
    state = step(state)
    saved = loop.unreplicate(state)
    for _ in range(3):
      state = step(state)
    jax.block_until_ready(state)
    np.testing.assert_array_equal(saved["w"], np.ones((64, 64), np.float32))
    np.testing.assert_array_equal(loop.unreplicate(state)["w"],
                                  np.full((64, 64), 4, np.float32))

  def test_unreplicate_runs_no_program(self):
    # Indexing a replicated array compiles and runs an all-reduce per leaf
    # shape; reading device 0's buffers needs neither.
    state = loop.replicate({"a": np.zeros((5, 7), np.float32),
                            "b": np.zeros((11,), jnp.int32)})
    jax.block_until_ready(state)
    with self.assertNoLogs("jax", level=logging.WARNING):
      with jax.log_compiles(True):
        loop.unreplicate(state)


if __name__ == "__main__":
  absltest.main()
