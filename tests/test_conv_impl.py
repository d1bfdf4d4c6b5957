"""config.model.conv_impl: the fast and the standard (Flax) convolutions.

Both forms must declare the same parameter tree (paths, names, shapes) and
compute the same function of it, so that parameters and checkpoints made
under one run under the other; 'standard' must support forward-mode
autodiff; 'auto' must pick 'fast' on CPU and 'standard' on GPU/TPU.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from experiments.configs import factorvae_dsprites
from factorvae_jax import builder
from factorvae_jax.builder import run_config
from factorvae_jax.builder.checkpointing import Checkpointer
from factorvae_jax.models import make_networks, resolve_conv_impl
from factorvae_jax.models import layers
from factorvae_jax.utils import errors

ATOL = 1e-5


def _model_config(architecture, conv_impl):
  return ml_collections.ConfigDict(dict(
      architecture=architecture, latent_dim=10, gamma=35.0,
      conv_impl=conv_impl))


def _inputs(channels):
  rs = np.random.RandomState(0)
  x = jnp.asarray(rs.rand(2, 64, 64, channels), jnp.float32)
  z = jnp.asarray(rs.randn(2, 10), jnp.float32)
  return x, z


def _init(nets, x, z, seed):
  key = jax.random.PRNGKey(seed)
  return {"encoder": jax.jit(nets.encoder.init)(key, x),
          "decoder": jax.jit(nets.decoder.init)(key, z)}


def _apply(nets, params, x, z):
  mean, logvar = jax.jit(nets.encoder.apply)(params["encoder"], x)
  logits = jax.jit(nets.decoder.apply)(params["decoder"], z)
  return {"mean": mean, "logvar": logvar, "logits": logits}


# --------------------------------------------------------------------------
# resolve_conv_impl and the config check.
# --------------------------------------------------------------------------


def test_resolve_conv_impl():
  assert resolve_conv_impl("auto", "cpu") == "fast"
  assert resolve_conv_impl("auto", "gpu") == "standard"
  assert resolve_conv_impl("auto", "tpu") == "standard"
  for platform in ("cpu", "gpu", "tpu"):
    assert resolve_conv_impl("fast", platform) == "fast"
    assert resolve_conv_impl("standard", platform) == "standard"
  # Without a platform: this machine's backend (the tests run on CPU).
  assert resolve_conv_impl("auto") == resolve_conv_impl(
      "auto", jax.default_backend())
  assert layers.CONV_IMPLS == ("auto", "fast", "standard")


def test_bad_conv_impl_is_a_user_error():
  with pytest.raises(errors.InvalidValueError) as info:
    resolve_conv_impl("cudnn", "gpu")
  message = str(info.value)
  for part in ("'cudnn'", "config.model.conv_impl", "'auto'", "'fast'",
               "'standard'"):
    assert part in message
  with pytest.raises(errors.InvalidValueError, match="cudnn"):
    make_networks(_model_config("paper", "cudnn"), (64, 64, 1))
  config = factorvae_dsprites.get_config("test")
  run_config.validate(config, 1)  # The default ('auto') passes.
  config.model.conv_impl = "cudnn"
  with pytest.raises(errors.InvalidValueError, match="conv_impl"):
    run_config.validate(config, 1)


def test_auto_is_fast_on_cpu_and_absent_field_means_auto():
  if jax.default_backend() != "cpu":
    pytest.skip("checks the CPU default")
  nets = make_networks(_model_config("paper", "auto"), (64, 64, 1))
  assert nets.encoder.downsample_impl == layers.DEFAULT_DOWNSAMPLE_IMPL
  assert nets.decoder.upsample_impl == layers.DEFAULT_UPSAMPLE_IMPL
  # A config saved before the field existed builds the same networks.
  old = ml_collections.ConfigDict(dict(architecture="paper", latent_dim=10))
  assert make_networks(old, (64, 64, 1)) == nets
  std = make_networks(_model_config("paper", "standard"), (64, 64, 1))
  assert std.encoder.downsample_impl == layers.STANDARD_IMPL
  assert std.decoder.upsample_impl == layers.STANDARD_IMPL
  # Explicit layer forms still override conv_impl.
  plain = make_networks(_model_config("paper", "standard"), (64, 64, 1),
                        upsample_impl="conv_transpose", downsample_impl="conv")
  assert (plain.decoder.upsample_impl, plain.encoder.downsample_impl) == (
      "conv_transpose", "conv")


# --------------------------------------------------------------------------
# Same parameters, same function.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("architecture,channels", [("paper", 1), ("dlib", 3)])
def test_params_cross_apply(architecture, channels):
  x, z = _inputs(channels)
  fast = make_networks(_model_config(architecture, "fast"), (64, 64, channels))
  std = make_networks(_model_config(architecture, "standard"),
                      (64, 64, channels))
  params_fast = _init(fast, x, z, seed=1)
  params_std = _init(std, x, z, seed=2)
  # Same tree: paths, names, shapes and dtypes ...
  chex.assert_trees_all_equal_shapes_and_dtypes(params_fast, params_std)
  assert (jax.tree_util.tree_structure(params_fast) ==
          jax.tree_util.tree_structure(params_std))
  # ... and the same initialisers under the same names: equal values.
  chex.assert_trees_all_equal(params_std, _init(fast, x, z, seed=2))
  for params in (params_fast, params_std):
    out_fast = _apply(fast, params, x, z)
    out_std = _apply(std, params, x, z)
    assert out_fast["logits"].shape == (2, 64, 64, channels)
    chex.assert_trees_all_close(out_fast, out_std, atol=ATOL, rtol=ATOL)


def test_conv_transpose_same_padding_is_the_plain_form():
  """nn.ConvTranspose(padding='SAME') = lax.conv_transpose, unflipped."""
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  rs = np.random.RandomState(3)
  x = jnp.asarray(rs.randn(2, 8, 8, 6), jnp.float32)
  kernel = jnp.asarray(rs.randn(4, 4, 6, 5), jnp.float32)
  bias = jnp.asarray(rs.randn(5), jnp.float32)
  params = {"params": {"kernel": kernel, "bias": bias}}
  theirs = nn.ConvTranspose(5, (4, 4), strides=(2, 2),
                            padding="SAME").apply(params, x)
  for impl in layers.UPSAMPLE_IMPLS:
    ours = layers.conv_transpose_2x(x, kernel, impl) + bias
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-5)


# --------------------------------------------------------------------------
# A checkpoint written under 'fast' restores and runs under 'standard'.
# --------------------------------------------------------------------------


def test_checkpoint_cross_restore(tmp_path):
  shape = (64, 64, 1)
  config = factorvae_dsprites.get_config("test")
  config.model.conv_impl = "fast"
  step_fast = builder.build_step_config(config, shape, axis_name=None)
  state = builder.init_state(config, step_fast, shape)
  ckpt = Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=1)
  ckpt.save(state)
  ckpt.close()

  config.model.conv_impl = "standard"
  step_std = builder.build_step_config(config, shape, axis_name=None)
  assert step_std.networks.encoder.downsample_impl == layers.STANDARD_IMPL
  # Only the structure (shapes, dtypes) of the template is used.
  template = jax.eval_shape(
      lambda: builder.init_state(config, step_std, shape))
  ckpt = Checkpointer(str(tmp_path / "checkpoints"), max_to_keep=1)
  restored = ckpt.restore(template)
  ckpt.close()
  chex.assert_trees_all_equal(restored, state)

  x, _ = _inputs(1)
  z = jnp.asarray(np.random.RandomState(5).randn(2, 4), jnp.float32)
  outputs = [_apply(step.networks, s.vae_params, x, z)
             for step, s in ((step_fast, state), (step_std, restored))]
  chex.assert_trees_all_close(outputs[0], outputs[1], atol=ATOL, rtol=ATOL)


# --------------------------------------------------------------------------
# Forward-mode autodiff.
# --------------------------------------------------------------------------


def test_jvp_with_standard_matches_fast_vjp():
  """jax.jvp runs with 'standard'; <J t, r> = <t, J^T r> with the fast VJP."""
  x, z = _inputs(1)
  fast = make_networks(_model_config("paper", "fast"), (64, 64, 1))
  std = make_networks(_model_config("paper", "standard"), (64, 64, 1))
  params = _init(std, x, z, seed=0)
  rs = np.random.RandomState(7)

  def check(f_std, f_fast, inp):
    tangent = jnp.asarray(rs.randn(*inp.shape), jnp.float32)
    out, jt = jax.jit(lambda a, t: jax.jvp(f_std, (a,), (t,)))(inp, tangent)
    cot = jnp.asarray(rs.randn(*out.shape), jnp.float32)
    (jtr,) = jax.jit(lambda a, c: jax.vjp(f_fast, a)[1](c))(inp, cot)
    lhs, rhs = float(jnp.vdot(jt, cot)), float(jnp.vdot(tangent, jtr))
    assert np.isfinite(lhs) and abs(lhs) > 0
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)

  check(lambda a: std.encoder.apply(params["encoder"], a)[0],
        lambda a: fast.encoder.apply(params["encoder"], a)[0], x)
  check(lambda a: std.decoder.apply(params["decoder"], a),
        lambda a: fast.decoder.apply(params["decoder"], a), z)


def test_jvp_with_fast_raises():
  """Documents the limitation that 'standard' lifts."""
  x, z = _inputs(1)
  fast = make_networks(_model_config("paper", "fast"), (64, 64, 1))
  params = _init(fast, x, z, seed=0)
  with pytest.raises(TypeError, match="custom_vjp"):
    jax.jvp(lambda a: fast.decoder.apply(params["decoder"], a), (z,),
            (jnp.ones_like(z),))
