"""Layers shared by the encoders and decoders."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# Upsampling implementations of ``ConvTranspose2x`` (same parameters, same
# function; see docs/performance.md for why there is more than one).
UPSAMPLE_IMPLS = ("conv_transpose",)


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
  impl: str = "conv_transpose"
  kernel_init: Any = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k = self.kernel_size
    kernel = self.param("kernel", self.kernel_init,
                        (k, k, x.shape[-1], self.features), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,),
                      jnp.float32)
    if self.impl == "conv_transpose":
      y = jax.lax.conv_transpose(
          x, kernel, strides=(2, 2), padding="SAME",
          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    else:
      raise ValueError(
          f"upsample impl {self.impl!r} is unknown; choose one of "
          f"{UPSAMPLE_IMPLS}.")
    return y + bias
