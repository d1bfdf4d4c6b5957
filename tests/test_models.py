"""Models: the fast layer forms equal the plain ones; presets build right.

Every implementation of the stride-2 layers must compute the same function of
the same parameters as the plain form (``lax.conv_transpose`` /
``nn.Conv``-style strided convolution), forward and gradients, and the
parameter trees must be the ones ``flax.linen.Conv`` / ``ConvTranspose``
modules produce, so checkpoints load into either form.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from factorvae_jax.models import make_discriminator, make_networks
from factorvae_jax.models import layers

RTOL = 2e-5  # Relative to the largest magnitude of the compared array.


def assert_close(actual, expected, rtol=RTOL, what=""):
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, what
  scale = max(float(np.max(np.abs(expected))), 1e-30)
  err = float(np.max(np.abs(actual - expected))) / scale
  assert err <= rtol, f"{what}: max error {err:.2e} x max|expected|"


def assert_trees_close(actual, expected, rtol=RTOL):
  flat_a = jax.tree_util.tree_leaves_with_path(actual)
  flat_e = jax.tree_util.tree_leaves_with_path(expected)
  assert [p for p, _ in flat_a] == [p for p, _ in flat_e]
  for (path, a), (_, e) in zip(flat_a, flat_e):
    assert_close(a, e, rtol, jax.tree_util.keystr(path))


def _normal(shape, seed):
  # numpy, not jax.random: threefry inside a jitted test function costs about
  # a second of compilation.
  return jnp.asarray(np.random.RandomState(seed).randn(*shape), jnp.float32)


def _random_params(init_fn, *args, seed=0):
  """Parameters with init_fn's tree and shapes, drawn with numpy (no jit of
  the initialisers, which costs seconds of compilation)."""
  shapes = jax.eval_shape(init_fn, jax.random.PRNGKey(0), *args)
  leaves, treedef = jax.tree_util.tree_flatten(shapes)
  rs = np.random.RandomState(seed)
  values = []
  for leaf in leaves:  # Fan-in scaling keeps activations O(1).
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 100
    values.append(jnp.asarray(rs.randn(*leaf.shape) / np.sqrt(fan_in),
                              jnp.float32))
  return jax.tree_util.tree_unflatten(treedef, values)


def value_and_grads(fn, x, kernel, seed=7):
  """f(x, kernel) and d<f, r>/d(x, kernel) for a fixed random r (jitted)."""
  y_shape = jax.eval_shape(fn, x, kernel).shape
  r = _normal(y_shape, seed)

  @jax.jit
  def run(x, kernel, r):
    y, vjp = jax.vjp(fn, x, kernel)
    return y, vjp(r)

  return run(x, kernel, r)


# ---------------------------------------------------------------- layers ----

UP_CASES = [  # (B, H, W, C_in, C_out): C_out <= 4 takes other code paths.
    (2, 4, 4, 64, 64), (2, 5, 3, 3, 7), (3, 8, 8, 32, 1), (2, 4, 6, 5, 3)]
DOWN_CASES = [  # (B, H, W, C_in, C_out): patch and shifted-cotangent paths.
    (2, 32, 32, 1, 32), (2, 8, 8, 64, 64), (2, 6, 10, 3, 5)]


@pytest.mark.parametrize("impl", [i for i in layers.UPSAMPLE_IMPLS
                                  if i != layers.PLAIN_UPSAMPLE_IMPL])
@pytest.mark.parametrize("case", UP_CASES)
def test_upsample_forms_equal_conv_transpose(impl, case):
  b, h, w, ci, co = case
  x = _normal((b, h, w, ci), 0)
  kernel = _normal((4, 4, ci, co), 1)
  plain = lambda x, k: jax.lax.conv_transpose(  # What nn.ConvTranspose does.
      x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  fast = lambda x, k: layers.conv_transpose_2x(x, k, impl)
  y, (dx, dk) = value_and_grads(fast, x, kernel)
  y0, (dx0, dk0) = value_and_grads(plain, x, kernel)
  assert y.shape == (b, 2 * h, 2 * w, co)
  assert_close(y, y0, what="forward")
  assert_close(dx, dx0, what="input gradient")
  assert_close(dk, dk0, what="kernel gradient")


@pytest.mark.parametrize("impl", [i for i in layers.DOWNSAMPLE_IMPLS
                                  if i != layers.PLAIN_DOWNSAMPLE_IMPL])
@pytest.mark.parametrize("k", [4, 2])
@pytest.mark.parametrize("case", DOWN_CASES)
def test_downsample_forms_equal_strided_conv(impl, k, case):
  b, h, w, ci, co = case
  x = _normal((b, h, w, ci), 0)
  kernel = _normal((k, k, ci, co), 1)
  plain = lambda x, k: jax.lax.conv_general_dilated(  # What nn.Conv does.
      x, k, (2, 2), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  fast = lambda x, k: layers.conv_2x(x, k, impl)
  y, (dx, dk) = value_and_grads(fast, x, kernel)
  y0, (dx0, dk0) = value_and_grads(plain, x, kernel)
  assert y.shape == (b, h // 2, w // 2, co)
  assert_close(y, y0, what="forward")
  assert_close(dx, dx0, what="input gradient")
  assert_close(dk, dk0, what="kernel gradient")


def test_fallbacks_to_plain_form():
  # Odd kernel / odd input (down) and k != 4 (up) use the plain form.
  x = _normal((2, 7, 9, 3), 0)
  k3 = _normal((3, 3, 3, 4), 1)
  k4 = _normal((4, 4, 3, 4), 2)
  for kernel in (k3, k4):
    assert_close(layers.conv_2x(x, kernel, "fast"),
                 layers.conv_2x(x, kernel, "conv"))
  assert_close(layers.conv_transpose_2x(x, k3, "fast"),
               layers.conv_transpose_2x(x, k3, "conv_transpose"))


def test_unknown_impl_raises():
  x = jnp.zeros((1, 4, 4, 2))
  with pytest.raises(ValueError, match="upsample impl"):
    layers.conv_transpose_2x(x, jnp.zeros((4, 4, 2, 2)), "nope")
  with pytest.raises(ValueError, match="downsample impl"):
    layers.conv_2x(x, jnp.zeros((4, 4, 2, 2)), "nope")


def test_fast_forms_under_scan_and_vmap():
  """The custom-VJP ops are differentiated inside lax.scan and under vmap."""
  x = _normal((2, 8, 8, 4), 0)
  kd = _normal((3, 4, 4, 4, 6), 1)
  ku = _normal((3, 4, 4, 6, 5), 2)

  def loss(kd, ku, down, up):
    h = jax.nn.relu(layers.conv_2x(x, kd, down))
    return jnp.sum(jnp.sin(layers.conv_transpose_2x(h, ku, up)))

  def scanned(kd, ku, down, up):
    g = jax.grad(loss, (0, 1))
    def body(carry, _):
      a, b = carry
      ga, gb = g(a, b, down, up)
      return (a - 1e-3 * ga, b - 1e-3 * gb), None
    return jax.lax.scan(body, (kd, ku), None, length=2)[0]

  # vmap over a leading model axis of the kernels, scan inside.
  fast = jax.jit(jax.vmap(lambda a, b: scanned(a, b, "fast", "fast")))
  plain = jax.jit(jax.vmap(lambda a, b: scanned(a, b, "conv",
                                                "conv_transpose")))
  assert_trees_close(fast(kd, ku), plain(kd, ku), rtol=1e-5)


# -------------------------------------------------------------- networks ----


class PlainEncoder(nn.Module):
  """The encoder written with flax's own modules (the checkpoint format)."""
  latent_dim: int
  channels: tuple
  kernel_sizes: tuple
  hidden: int

  @nn.compact
  def __call__(self, x):
    for c, k in zip(self.channels, self.kernel_sizes):
      x = nn.relu(nn.Conv(c, (k, k), strides=(2, 2), padding="SAME")(x))
    x = nn.relu(nn.Dense(self.hidden)(x.reshape(x.shape[0], -1)))
    out = nn.Dense(2 * self.latent_dim)(x)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class PlainConvTranspose2x(nn.Module):
  """Named like ConvTranspose2x; computes with nn.ConvTranspose."""
  features: int

  @nn.compact
  def __call__(self, x):
    return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2),
                            padding="SAME", name="ct")(x)


def _model_config(architecture, **overrides):
  return ml_collections.ConfigDict(dict(architecture=architecture,
                                        latent_dim=10, gamma=35.0,
                                        **overrides))


def _shapes(tree):
  return jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)


@pytest.mark.parametrize("architecture,channels", [("paper", 1),
                                                   ("dlib", 3)])
def test_networks_fast_equal_plain(architecture, channels):
  obs = (64, 64, channels)
  fast = make_networks(_model_config(architecture), obs)
  plain = make_networks(_model_config(architecture), obs,
                        upsample_impl="conv_transpose",
                        downsample_impl="conv")
  assert fast.decoder.upsample_impl == layers.DEFAULT_UPSAMPLE_IMPL == "fast"
  assert fast.encoder.downsample_impl == layers.DEFAULT_DOWNSAMPLE_IMPL
  x = jnp.asarray(np.random.RandomState(0).rand(2, *obs), jnp.float32)
  z = _normal((2, 10), 1)
  r = _normal((2, *obs), 4)

  def init(nets):
    return lambda key, x, z: {"encoder": nets.encoder.init(key, x),
                              "decoder": nets.decoder.init(key, z)}

  # Same parameter tree (names, shapes): checkpoints are interchangeable.
  assert (jax.eval_shape(init(fast), jax.random.PRNGKey(0), x, z) ==
          jax.eval_shape(init(plain), jax.random.PRNGKey(0), x, z))
  params = _random_params(init(fast), x, z)

  def outputs_and_grads(nets):
    def loss(p, x, z):
      mean, logvar = nets.encoder.apply(p["encoder"], x)
      logits = nets.decoder.apply(p["decoder"], z + mean)
      return (jnp.sum(logits * r) + jnp.sum(jnp.cos(logvar)),
              (mean, logvar, logits))
    return jax.jit(jax.grad(loss, (0, 1, 2), has_aux=True))(params, x, z)

  g_fast, out_fast = outputs_and_grads(fast)
  g_plain, out_plain = outputs_and_grads(plain)
  assert out_fast[2].shape == (2, *obs)
  for a, b, what in zip(out_fast, out_plain, ("mean", "logvar", "logits")):
    assert_close(a, b, what=what)
  assert_trees_close(g_fast, g_plain)


@pytest.mark.parametrize("architecture", ["paper", "dlib"])
def test_params_load_into_flax_modules(architecture):
  """The fast networks' parameters are nn.Conv / nn.ConvTranspose params."""
  nets = make_networks(_model_config(architecture), (64, 64, 1))
  x = jnp.asarray(np.random.RandomState(0).rand(2, 64, 64, 1), jnp.float32)
  ref = PlainEncoder(10, nets.encoder.channels, nets.encoder.kernel_sizes,
                     nets.encoder.hidden)
  key = jax.random.PRNGKey(1)
  assert (jax.eval_shape(ref.init, key, x) ==
          jax.eval_shape(nets.encoder.init, key, x))
  enc_params = _random_params(nets.encoder.init, x)
  ours = jax.jit(nets.encoder.apply)(enc_params, x)
  theirs = jax.jit(ref.apply)(enc_params, x)
  for a, b in zip(ours, theirs):
    assert_close(a, b)
  # One decoder layer against nn.ConvTranspose with the same kernel/bias.
  h = _normal((2, 8, 8, 64), 3)
  layer = _random_params(layers.ConvTranspose2x(32).init, h)["params"]
  ours = jax.jit(layers.ConvTranspose2x(32).apply)({"params": layer}, h)
  theirs = jax.jit(PlainConvTranspose2x(32).apply)(
      {"params": {"ct": layer}}, h)
  assert_close(ours, theirs)


def test_preset_shapes():
  def build(architecture, channels):
    nets = make_networks(_model_config(architecture), (64, 64, channels))
    disc = make_discriminator(_model_config(architecture))
    x = jnp.zeros((1, 64, 64, channels))
    z = jnp.zeros((1, 10))
    key = jax.random.PRNGKey(0)
    return tuple(
        _shapes(jax.eval_shape(module.init, key, inp))["params"]
        for module, inp in ((nets.encoder, x), (nets.decoder, z),
                            (disc, z)))

  enc, dec, disc = build("paper", 1)
  assert [enc[f"Conv_{i}"]["kernel"] for i in range(4)] == [
      (4, 4, 1, 32), (4, 4, 32, 32), (4, 4, 32, 64), (4, 4, 64, 64)]
  assert enc["Dense_0"]["kernel"] == (1024, 128)
  assert enc["Dense_1"]["kernel"] == (128, 20)
  assert dec["Dense_0"]["kernel"] == (10, 128)
  assert dec["Dense_1"]["kernel"] == (128, 1024)
  assert [dec[f"ConvTranspose2x_{i}"]["kernel"] for i in range(4)] == [
      (4, 4, 64, 64), (4, 4, 64, 32), (4, 4, 32, 32), (4, 4, 32, 1)]
  assert dec["ConvTranspose2x_3"]["bias"] == (1,)
  assert len(disc) == 7
  assert disc["Dense_0"]["kernel"] == (10, 1000)
  assert disc["Dense_5"]["kernel"] == (1000, 1000)
  assert disc["Dense_6"]["kernel"] == (1000, 2)

  enc, dec, _ = build("dlib", 3)
  assert [enc[f"Conv_{i}"]["kernel"] for i in range(4)] == [
      (4, 4, 3, 32), (4, 4, 32, 32), (2, 2, 32, 64), (2, 2, 64, 64)]
  assert enc["Dense_0"]["kernel"] == (1024, 256)
  assert dec["Dense_0"]["kernel"] == (10, 256)
  assert dec["ConvTranspose2x_3"]["kernel"] == (4, 4, 32, 3)
