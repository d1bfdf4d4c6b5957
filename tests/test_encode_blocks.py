"""The encoder's convolutions in blocks: the same codes as one call per chunk."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax.builder import trained_model
from factorvae_jax.evaluation import evaluate
from factorvae_jax.models import make_networks
from factorvae_jax.models.vae_nets import Encoder


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
  expected = whole(images)
  assert expected.shape == (730, 10)
  for block in (25, 100):
    blocked = evaluate.make_representation_fn(encoder, params, block=block)
    # Bitwise on the machines it was measured on; float rounding is allowed
    # elsewhere (another CPU may tile the convolutions differently).
    np.testing.assert_allclose(blocked(images), expected, rtol=0, atol=1e-6)
  assert (trained_model.encode_block_size("cpu")
          == trained_model.CPU_ENCODE_BLOCK)
  assert trained_model.encode_block_size("gpu") is None


@pytest.mark.parametrize("kernels,hidden,channels", [((4, 4, 4, 4), 128, 1),
                                                     ((4, 4, 2, 2), 256, 3)])
def test_gaussian_encoder_in_blocks_equals_the_module(kernels, hidden,
                                                      channels):
  # The paper's and dlib's encoders: mean and log-variance of the blocked
  # program equal one encoder.apply over the batch; a batch the block does
  # not divide runs whole.
  encoder = Encoder(kernel_sizes=kernels, hidden=hidden)
  params = encoder.init(jax.random.PRNGKey(0),
                        jnp.zeros((1, 64, 64, channels)))
  images = jnp.asarray((np.random.RandomState(2).rand(
      100, 64, 64, channels) > 0.7).astype(np.float32))
  mean, logvar = encoder.apply(params, images)
  for block, n in ((25, 100), (20, 100), (30, 100), (25, 10)):
    got_mean, got_logvar = jax.jit(
        trained_model.make_gaussian_encoder(encoder, block))(params,
                                                             images[:n])
    np.testing.assert_allclose(got_mean, mean[:n], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got_logvar, logvar[:n], rtol=0, atol=1e-6)


def test_features_then_moments_is_the_encoder():
  encoder = Encoder(latent_dim=6)
  params = encoder.init(jax.random.PRNGKey(1), jnp.zeros((1, 64, 64, 1)))
  images = jnp.asarray(np.random.RandomState(3).rand(4, 64, 64, 1),
                       jnp.float32)
  features = encoder.apply(params, images, method="extract_features")
  assert features.shape == (4, 4 * 4 * 64)
  mean, logvar = encoder.apply(params, features, method="compute_moments")
  expected_mean, expected_logvar = encoder.apply(params, images)
  assert mean.shape == logvar.shape == (4, 6)
  np.testing.assert_array_equal(mean, expected_mean)
  np.testing.assert_array_equal(logvar, expected_logvar)


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
