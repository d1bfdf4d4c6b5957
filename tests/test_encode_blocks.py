"""Evaluation's encoder in blocks: the same codes as one call per chunk."""

import jax
import jax.numpy as jnp
import numpy as np

from experiments.configs import factorvae_dsprites
from factorvae_jax.evaluation import evaluate
from factorvae_jax.models import make_networks


def _paper_encoder():
  config = factorvae_dsprites.get_config()
  networks = make_networks(config.model, (64, 64, 1))
  params = networks.encoder.init(jax.random.PRNGKey(3),
                                 jnp.zeros((1, 64, 64, 1)))
  return networks.encoder, params


def test_blocks_give_the_codes_of_whole_chunks():
  encoder, params = _paper_encoder()
  # 730 images: one full chunk of 500 and one padded one.
  images = (np.random.RandomState(0).rand(730, 64, 64, 1) > 0.8).astype(
      np.float32)
  whole = evaluate.make_representation_fn(encoder, params, block=None)
  blocked = evaluate.make_representation_fn(encoder, params, block=100)
  expected = whole(images)
  assert expected.shape == (730, 10)
  # Bitwise on the machine it was measured on; float rounding is allowed
  # elsewhere (another CPU may tile the convolutions differently).
  np.testing.assert_allclose(blocked(images), expected, rtol=0, atol=1e-6)
  assert evaluate.encode_block_size("cpu") == evaluate.CPU_ENCODE_BLOCK
  assert evaluate.encode_block_size("gpu") is None


def test_many_models_in_blocks_equal_each_model_alone():
  encoder, params = _paper_encoder()
  other = jax.tree.map(lambda a: a * 0.5, params)
  stacked = jax.tree.map(lambda *a: np.stack(a), params, other)
  images = (np.random.RandomState(1).rand(500, 64, 64, 1) > 0.8).astype(
      np.float32)
  together = evaluate.make_many_models_encode_fn(encoder, stacked,
                                                 "map")(images)
  assert together.shape == (500, 2, 10)
  for k, p in enumerate((params, other)):
    alone = evaluate.make_representation_fn(encoder, p)(images)
    np.testing.assert_array_equal(together[:, k], alone)
