"""Stride-2 convolution layers shared by the encoders and decoders.

``Conv2x`` (k x k, stride 2, 'SAME': halves H and W) and ``ConvTranspose2x``
(4 x 4 transposed, stride 2, 'SAME': doubles H and W) each have several
implementations that compute the same function of the same parameters
(``kernel`` [k, k, C_in, C_out] and ``bias`` [C_out], the names and shapes of
``flax.linen.Conv`` / ``flax.linen.ConvTranspose``), so a checkpoint written
with one loads into any other.

Which modules the networks use is ``config.model.conv_impl`` (``CONV_IMPLS``,
resolved by ``resolve_conv_impl`` when the networks are built):
  'fast': ``Conv2x`` / ``ConvTranspose2x`` below with their 'fast' forms.
  'standard': Flax's own ``nn.Conv`` / ``nn.ConvTranspose`` (cuDNN's or the
      TPU's convolutions, and forward-mode autodiff works), with the same
      parameter names and shapes, so either restores the other's checkpoints.
  'auto' (default): 'fast' on CPU, 'standard' on GPU and TPU. The fast forms
      were written for XLA:CPU and measured only there; elsewhere the
      platform's own convolutions are the trusted choice until
      ``benchmarks/device_check.sh`` (which times both) says otherwise.
On CPU, 'auto' is therefore exactly the computation of the 'fast' forms.

Why (docs/performance.md has the measurements): XLA:CPU hands a convolution
to its fast library (YNNPACK) only when it is in canonical form -- NHWC input,
HWIO kernel, NHWC output, no input dilation. In the entry computation XLA
rewrites other convolutions into that form, but inside a ``while`` loop (the
``lax.scan`` of ``train_steps``) it does not, and the convolutions that plain
autodiff produces (input gradients, kernel gradients, and the input-dilated
transposed convolution itself) fall back to a naive loop 10-30x slower. The
'fast' forms are ``jax.custom_vjp`` ops whose forward pass and both gradients
are written out as canonical convolutions or matmuls.

Upsampling (``ConvTranspose2x.impl``, ``UPSAMPLE_IMPLS``):
  'fast' (the modules' default): forward: sub-pixel form (below; for C_out <= 4 a matmul
      to all 16 taps plus overlap-add); input gradient: a canonical stride-2
      convolution with the flipped kernel (the exact adjoint); kernel
      gradient: one matmul, of the 2x2 patches of x with the phase-split
      cotangent (C_out > 4) or of x with the 16 tap-shifted cotangents
      (C_out <= 4).
  'subpixel': the sub-pixel form with plain autodiff.
  'conv_transpose': ``lax.conv_transpose`` (the plain form, what
      ``nn.ConvTranspose(strides=(2, 2), padding='SAME')`` computes).

Downsampling (``Conv2x.impl``, ``DOWNSAMPLE_IMPLS``):
  'fast' (the modules' default): forward: the canonical strided convolution; input
      gradient: the adjoint of the space-to-depth form (a canonical stride-1
      convolution followed by depth-to-space); kernel gradient: one matmul of
      the space-to-depth input with (k/2)^2 shifted copies of the cotangent,
      or (when the input is the smaller operand, e.g. C_in = 1) of its
      (k/2)^2 shifted windows with the cotangent.
  'space_to_depth': the space-to-depth form with plain autodiff.
  'conv': ``lax.conv_general_dilated`` with stride 2 (the plain form, what
      ``nn.Conv(strides=(2, 2), padding='SAME')`` computes).

Derivations (1-D; 2-D is separable). ``lax.conv_transpose`` with stride 2,
kernel 4, 'SAME' pads the 2x-dilated input by 2 on both sides and correlates
with the unflipped kernel w, so
    y[2m]     = w[0] x[m-1] + w[2] x[m]
    y[2m + 1] = w[1] x[m]   + w[3] x[m+1].
With xp = x padded by one zero on each side, y[2m + p] = sum_a w[2a + p]
xp[m + p + a] (a in {0, 1}): a 2x2 stride-1 convolution of xp to 4 * C_out
channels (one group per output phase (py, px)), read at offset (py, px)
(sub-pixel form). Its input gradient is dx[i] = sum_t w[3 - t] g[2i - 1 + t]:
a stride-2 convolution of g (padding 1) with the flipped, in/out-swapped
kernel. A stride-2, kernel-k 'SAME' convolution pads lo = (k-2)//2 before and
k-2-lo after, so y[m] = sum_t w[t] xp[2m + t] = sum_{a, r} w[2a + r]
s2d(xp)[m + a, r]: a (k/2)-tap stride-1 convolution of the space-to-depth of
xp (space-to-depth form). tests/test_models.py checks every form against the
plain one, forward and gradients.

The 'fast' ops support reverse-mode autodiff (``jax.grad``, ``jax.vjp``),
``jit``, ``vmap``, ``pmap`` and ``lax.scan``, but not forward-mode
(``jax.jvp``, ``jax.hessian``): use ``conv_impl='standard'`` (or the plain
forms) for those. ``init`` always
runs the plain form (same output; it runs eagerly, where fewer ops means
fewer compilations).
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

from factorvae_jax.utils import errors

_DN = ("NHWC", "HWIO", "NHWC")

UPSAMPLE_IMPLS = ("fast", "subpixel", "conv_transpose")
DOWNSAMPLE_IMPLS = ("fast", "space_to_depth", "conv")
DEFAULT_UPSAMPLE_IMPL = "fast"
DEFAULT_DOWNSAMPLE_IMPL = "fast"
# The plain forms (what flax.linen.ConvTranspose / Conv compute).
PLAIN_UPSAMPLE_IMPL = "conv_transpose"
PLAIN_DOWNSAMPLE_IMPL = "conv"

# config.model.conv_impl values (see the module docstring).
CONV_IMPLS = ("auto", "fast", "standard")
DEFAULT_CONV_IMPL = "auto"
# The value of Encoder.downsample_impl / Decoder.upsample_impl that selects
# Flax's own nn.Conv / nn.ConvTranspose modules instead of Conv2x /
# ConvTranspose2x.
STANDARD_IMPL = "standard"


def resolve_conv_impl(conv_impl: str = DEFAULT_CONV_IMPL,
                      platform: Optional[str] = None) -> str:
  """'fast' or 'standard': the convolution modules for ``conv_impl``.

  'auto' picks 'fast' on CPU and 'standard' on every other platform (GPU,
  TPU): the fast forms are custom VJPs tuned for XLA:CPU's convolution
  library and measured only there, while on accelerators cuDNN's and the
  TPU's own convolutions are the tested, trusted path. Both compute the same
  function of the same parameters, so the choice never changes what a
  checkpoint means.

  Args:
    conv_impl: one of ``CONV_IMPLS`` (``config.model.conv_impl``).
    platform: 'cpu', 'gpu', 'tpu', ...; default ``jax.default_backend()``
      (read when the networks are built).

  Returns:
    'fast' or 'standard'.

  Raises:
    InvalidValueError: if ``conv_impl`` is not one of ``CONV_IMPLS``.
  """
  if conv_impl not in CONV_IMPLS:
    raise errors.InvalidValueError(
        f"config.model.conv_impl={conv_impl!r} is unknown; choose one of "
        f"{CONV_IMPLS}: 'auto' (the default: 'fast' on CPU, 'standard' on "
        f"GPU/TPU), 'fast' (custom-gradient convolutions for XLA:CPU) or "
        f"'standard' (Flax's nn.Conv / nn.ConvTranspose), e.g. "
        f"--config.model.conv_impl=auto.")
  if conv_impl != "auto":
    return conv_impl
  platform = jax.default_backend() if platform is None else platform
  return "fast" if platform == "cpu" else "standard"

# Output channels at or below which the fast upsampling uses its matmul +
# overlap-add forward and dilated-convolution kernel gradient.
_FEW_CHANNELS = 4


def _conv(x, kernel, strides=(1, 1), padding="VALID"):
  """A canonical (NHWC, HWIO -> NHWC) convolution."""
  return jax.lax.conv_general_dilated(x, kernel, strides, padding,
                                      dimension_numbers=_DN)


def _pad_hw(x, lo, hi):
  return jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)))


def _pad_hw_asym(x, py, px):
  """[B, h, w, C] -> [B, h+1, w+1, C] placed at offset (py, px)."""
  return jnp.pad(x, ((0, 0), (py, 1 - py), (px, 1 - px), (0, 0)))


def _space_to_depth(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, H/2, W/2, 4C], channel index (r, s, c)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h // 2, w // 2, 4 * c)


def _depth_to_space(x: jax.Array) -> jax.Array:
  """Inverse of ``_space_to_depth``."""
  b, h, w, c4 = x.shape
  c = c4 // 4
  x = x.reshape(b, h, w, 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, 2 * h, 2 * w, c)


# --------------------------------------------------------------------------
# Upsampling: stride-2 transposed convolution, kernel 4, 'SAME'.
# --------------------------------------------------------------------------


def _up_plain(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return jax.lax.conv_transpose(x, kernel, strides=(2, 2), padding="SAME",
                                dimension_numbers=_DN)


def _phase_kernel(kernel: jax.Array) -> jax.Array:
  """[4, 4, Ci, Co] -> [2, 2, Ci, 4 Co] with K[a, b, ci, (py, px, co)] =
  W[2a + py, 2b + px, ci, co]."""
  ci, co = kernel.shape[2:]
  k = kernel.reshape(2, 2, 2, 2, ci, co).transpose(0, 2, 4, 1, 3, 5)
  return k.reshape(2, 2, ci, 4 * co)


def _interleave_phases(z: jax.Array, h: int, w: int) -> jax.Array:
  """z [B, h+1, w+1, 4C] -> y [B, 2h, 2w, C] with
  y[b, 2m + py, 2n + px, c] = z[b, m + py, n + px, (py, px, c)]."""
  b, c = z.shape[0], z.shape[-1] // 4
  z = z.reshape(b, h + 1, w + 1, 2, 2, c)
  rows = [jnp.stack([z[:, py:py + h, px:px + w, py, px] for px in range(2)],
                    axis=3) for py in range(2)]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, c)


def _up_subpixel(x: jax.Array, kernel: jax.Array) -> jax.Array:
  _, h, w, _ = x.shape
  z = _conv(_pad_hw(x, 1, 1), _phase_kernel(kernel))
  return _interleave_phases(z, h, w)


# Output phase p of one axis sums x[m + s] w[t] over these (t, s).
_UP_TAPS = {0: ((0, -1), (2, 0)), 1: ((1, 0), (3, 1))}
# Tap t -> (output phase p, input offset s) (the inverse of _UP_TAPS).
_TAP_PHASE = {t: (p, s) for p, taps in _UP_TAPS.items() for t, s in taps}


def _shift_hw(a: jax.Array, sy: int, sx: int) -> jax.Array:
  """out[:, i, j] = a[:, i - sy, j - sx], zero outside (sy, sx in -1..1)."""
  h, w = a.shape[1:3]
  a = a[:, max(-sy, 0):h - max(sy, 0), max(-sx, 0):w - max(sx, 0)]
  return jnp.pad(a, ((0, 0), (max(sy, 0), max(-sy, 0)),
                     (max(sx, 0), max(-sx, 0)), (0, 0)))


def _up_col2im(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Matmul to all 16 taps, then overlap-add (for few output channels)."""
  b, h, w, ci = x.shape
  co = kernel.shape[-1]
  cols = jnp.dot(x.reshape(-1, ci),
                 kernel.transpose(2, 0, 1, 3).reshape(ci, 16 * co))
  cols = jnp.pad(cols.reshape(b, h, w, 4, 4, co),
                 ((0, 0), (1, 1), (1, 1), (0, 0), (0, 0), (0, 0)))
  rows = []
  for py in range(2):
    phases = []
    for px in range(2):
      terms = [cols[:, 1 + sy:1 + sy + h, 1 + sx:1 + sx + w, t, u]
               for t, sy in _UP_TAPS[py] for u, sx in _UP_TAPS[px]]
      phases.append(sum(terms[1:], terms[0]))
    rows.append(jnp.stack(phases, axis=3))
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, co)


def _up_forward(x, kernel):
  if kernel.shape[-1] <= _FEW_CHANNELS:
    return _up_col2im(x, kernel)
  return _up_subpixel(x, kernel)


def _up_input_grad(g, kernel, x):
  """dx = a stride-2 convolution of g with the flipped, io-swapped kernel."""
  del x
  return _conv(g, kernel[::-1, ::-1].transpose(0, 1, 3, 2), (2, 2),
               ((1, 1), (1, 1)))


def _up_kernel_grad(g, kernel, x):
  """dW as one matmul (see the two cases below)."""
  b, h, w, ci = x.shape
  co = kernel.shape[-1]
  if co <= _FEW_CHANNELS:
    # The adjoint of _up_col2im: dcols[i, j, t, u] = g at the output pixel
    # that tap (t, u) of input (i, j) feeds (zero off the image), then
    # dW[t, u] = x^T dcols: one matmul, no patches of x.
    g6 = g.reshape(b, h, 2, w, 2, co)
    cols = []
    for t in range(4):
      py, sy = _TAP_PHASE[t]
      for u in range(4):
        px, sx = _TAP_PHASE[u]
        cols.append(_shift_hw(g6[:, :, py, :, px], sy, sx))
    dcols = jnp.concatenate(cols, axis=-1)  # [B, h, w, (t, u, co)]
    dk = jnp.dot(x.reshape(-1, ci).T, dcols.reshape(-1, 16 * co))
    return dk.reshape(ci, 4, 4, co).transpose(1, 2, 0, 3)
  xp = _pad_hw(x, 1, 1)
  patches = jnp.concatenate(
      [xp[:, a:a + h + 1, c:c + w + 1] for a in range(2) for c in range(2)],
      axis=-1).reshape(-1, 4 * ci)
  # The adjoint of _interleave_phases: scatter g into [B, h+1, w+1, 2, 2, Co].
  g6 = g.reshape(b, h, 2, w, 2, co)
  dz = jnp.stack([jnp.stack(
      [_pad_hw_asym(g6[:, :, py, :, px], py, px) for px in range(2)], axis=3)
                  for py in range(2)], axis=3)
  dk = jnp.dot(patches.T, dz.reshape(-1, 4 * co))  # [(a, c, ci), (py, px, co)]
  dk = dk.reshape(2, 2, ci, 2, 2, co).transpose(0, 3, 1, 4, 2, 5)
  return dk.reshape(4, 4, ci, co)


# --------------------------------------------------------------------------
# Downsampling: stride-2 convolution, even kernel, 'SAME', even H and W.
# --------------------------------------------------------------------------


def _same_pads(k: int) -> tuple[int, int]:
  lo = (k - 2) // 2
  return lo, k - 2 - lo


def _down_plain(x: jax.Array, kernel: jax.Array) -> jax.Array:
  return _conv(x, kernel, (2, 2), "SAME")


def _s2d_kernel(kernel: jax.Array) -> jax.Array:
  """[k, k, Ci, Co] -> [k/2, k/2, 4 Ci, Co]: K[a, b, (r, s, ci), co] =
  W[2a + r, 2b + s, ci, co]."""
  k, _, ci, co = kernel.shape
  half = k // 2
  k2 = kernel.reshape(half, 2, half, 2, ci, co).transpose(0, 2, 1, 3, 4, 5)
  return k2.reshape(half, half, 4 * ci, co)


def _down_s2d(x: jax.Array, kernel: jax.Array) -> jax.Array:
  lo, hi = _same_pads(kernel.shape[0])
  return _conv(_space_to_depth(_pad_hw(x, lo, hi)), _s2d_kernel(kernel))


def _down_input_grad(g, kernel, x):
  """dx: the adjoint of the space-to-depth form, all canonical."""
  k = kernel.shape[0]
  half = k // 2
  lo, _ = _same_pads(k)
  _, h, w, _ = x.shape
  k2t = _s2d_kernel(kernel)[::-1, ::-1].transpose(0, 1, 3, 2)
  ds = _conv(_pad_hw(g, half - 1, half - 1), k2t)
  return _depth_to_space(ds)[:, lo:lo + h, lo:lo + w]


def _down_kernel_grad(g, kernel, x):
  """dW as one matmul, materialising the smaller of two operands.

  With s = s2d(xp) (the space-to-depth form's input) and half = k/2,
  dK2[a, b] = sum_{m, n} s[m + a, n + b] g[m, n]
            = sum_{i, j} s[i, j] g[i - a, j - b].
  The first form needs the half^2 shifted windows of s (the patch matrix,
  im2col); the second the half^2 zero-padded shifts of g. Which is smaller
  depends on C_in vs C_out (the first encoder layer has C_in = 1).
  """
  k, _, ci, co = kernel.shape
  half = k // 2
  lo, hi = _same_pads(k)
  s = _space_to_depth(_pad_hw(x, lo, hi))  # [B, Ho + half - 1, ..., 4 Ci]
  b, hs, ws, _ = s.shape
  ho, wo = hs - half + 1, ws - half + 1
  if half * half * 4 * ci * ho * wo <= half * half * co * hs * ws:
    patches = jnp.concatenate(
        [s[:, a:a + ho, c:c + wo] for a in range(half) for c in range(half)],
        axis=-1)  # [B, Ho, Wo, (a, b, r, s, ci)]
    dk = jnp.dot(patches.reshape(-1, half * half * 4 * ci).T,
                 g.reshape(-1, co))
    dk = dk.reshape(half, half, 2, 2, ci, co).transpose(0, 2, 1, 3, 4, 5)
    return dk.reshape(k, k, ci, co)
  shifts = jnp.concatenate(
      [jnp.pad(g, ((0, 0), (a, half - 1 - a), (c, half - 1 - c), (0, 0)))
       for a in range(half) for c in range(half)], axis=-1)
  dk = jnp.dot(s.reshape(-1, 4 * ci).T, shifts.reshape(-1, half * half * co))
  # [(r, s, ci), (a, b, co)] -> W[2a + r, 2b + s, ci, co]
  dk = dk.reshape(2, 2, ci, half, half, co).transpose(3, 0, 4, 1, 2, 5)
  return dk.reshape(k, k, ci, co)


# --------------------------------------------------------------------------
# Custom VJP: forward and both gradients written out.
# --------------------------------------------------------------------------


def _custom_linear(forward: Callable, input_grad: Callable,
                   kernel_grad: Callable) -> Callable:
  """A bilinear op f(x, kernel) with explicit gradients
  ``input_grad(g, kernel, x)`` and ``kernel_grad(g, kernel, x)``."""

  @jax.custom_vjp
  def op(x, kernel):
    return forward(x, kernel)

  def op_fwd(x, kernel):
    return forward(x, kernel), (x, kernel)

  def op_bwd(residuals, g):
    x, kernel = residuals
    return input_grad(g, kernel, x), kernel_grad(g, kernel, x)

  op.defvjp(op_fwd, op_bwd)
  return op


_up_fast = _custom_linear(_up_forward, _up_input_grad, _up_kernel_grad)
_down_fast = _custom_linear(_down_plain, _down_input_grad, _down_kernel_grad)

_UPSAMPLE = {
    "fast": _up_fast,
    "subpixel": _up_subpixel,
    "conv_transpose": _up_plain,
}
_DOWNSAMPLE = {
    "fast": _down_fast,
    "space_to_depth": _down_s2d,
    "conv": _down_plain,
}


def conv_transpose_2x(x: jax.Array, kernel: jax.Array,
                      impl: str = DEFAULT_UPSAMPLE_IMPL) -> jax.Array:
  """Stride-2 'SAME' transposed convolution (no bias) = ``lax.conv_transpose``.

  Args:
    x: [B, H, W, C_in] (NHWC).
    kernel: [k, k, C_in, C_out] (HWIO, unflipped, as ``nn.ConvTranspose``).
    impl: one of ``UPSAMPLE_IMPLS``; the non-plain forms need k = 4 and fall
      back to the plain form otherwise.

  Returns:
    [B, 2H, 2W, C_out].
  """
  if impl not in _UPSAMPLE:
    raise ValueError(f"upsample impl {impl!r} is unknown; choose one of "
                     f"{UPSAMPLE_IMPLS}.")
  if kernel.shape[:2] != (4, 4):
    impl = PLAIN_UPSAMPLE_IMPL
  return _UPSAMPLE[impl](x, kernel)


def conv_2x(x: jax.Array, kernel: jax.Array,
            impl: str = DEFAULT_DOWNSAMPLE_IMPL) -> jax.Array:
  """Stride-2 'SAME' convolution (no bias) = ``nn.Conv(strides=(2, 2))``.

  Args:
    x: [B, H, W, C_in] (NHWC).
    kernel: [k, k, C_in, C_out] (HWIO).
    impl: one of ``DOWNSAMPLE_IMPLS``; the non-plain forms need an even
      square kernel and even H and W, and fall back to the plain form
      otherwise.

  Returns:
    [B, ceil(H/2), ceil(W/2), C_out].
  """
  if impl not in _DOWNSAMPLE:
    raise ValueError(f"downsample impl {impl!r} is unknown; choose one of "
                     f"{DOWNSAMPLE_IMPLS}.")
  k0, k1 = kernel.shape[:2]
  if k0 != k1 or k0 % 2 or x.shape[1] % 2 or x.shape[2] % 2:
    impl = PLAIN_DOWNSAMPLE_IMPL
  return _DOWNSAMPLE[impl](x, kernel)


def _declare_kernel_and_bias(module: nn.Module, in_features: int):
  """Declares the flax.linen.Conv-named ``kernel`` and ``bias`` of ``module``."""
  k = module.kernel_size
  kernel = module.param("kernel", module.kernel_init,
                        (k, k, in_features, module.features), jnp.float32)
  bias = module.param("bias", nn.initializers.zeros, (module.features,),
                      jnp.float32)
  return kernel, bias


class ConvTranspose2x(nn.Module):
  """Stride-2 transposed convolution with 'SAME' padding (doubles H and W).

  Parameters are ``kernel`` [k, k, C_in, C_out] and ``bias`` [C_out], the names
  and shapes of ``flax.linen.ConvTranspose``, so every implementation loads the
  same checkpoints.

  Attributes:
    features: output channels.
    kernel_size: square kernel side.
    impl: which implementation computes it (one of ``UPSAMPLE_IMPLS``).
  """
  features: int
  kernel_size: int = 4
  impl: str = DEFAULT_UPSAMPLE_IMPL
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = _declare_kernel_and_bias(self, x.shape[-1])
    # init runs eagerly (one compilation per op); the plain form is one op
    # and computes the same output.
    impl = PLAIN_UPSAMPLE_IMPL if self.is_initializing() else self.impl
    return conv_transpose_2x(x, kernel, impl) + bias


class Conv2x(nn.Module):
  """Stride-2 convolution with 'SAME' padding (halves H and W).

  Computes what ``flax.linen.Conv(features, (k, k), strides=(2, 2),
  padding='SAME')`` computes, with the same parameters (``kernel``
  [k, k, C_in, C_out], ``bias`` [C_out]) and initialisers.

  Attributes:
    features: output channels.
    kernel_size: square kernel side.
    impl: which implementation computes it (one of ``DOWNSAMPLE_IMPLS``).
  """
  features: int
  kernel_size: int = 4
  impl: str = DEFAULT_DOWNSAMPLE_IMPL
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel, bias = _declare_kernel_and_bias(self, x.shape[-1])
    impl = PLAIN_DOWNSAMPLE_IMPL if self.is_initializing() else self.impl
    return conv_2x(x, kernel, impl) + bias
