"""Convolutional encoder and decoder for 64x64 images.

Defaults are FactorVAE's (Kim & Mnih 2018, Appendix, dSprites):
  encoder: 4x4 conv 32, 32, 64, 64 (stride 2, ReLU) -> FC 128 -> FC 2*D
  decoder: FC 128 -> FC 4*4*64 -> 4x4 upconv 64, 32, 32 (stride 2, ReLU)
           -> 4x4 upconv C (Bernoulli logits)
``architectures.py`` holds the named presets (the paper's and
disentanglement_lib's).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from factorvae_jax.models.layers import (DEFAULT_DOWNSAMPLE_IMPL,
                                         DEFAULT_UPSAMPLE_IMPL, STANDARD_IMPL,
                                         Conv2x, ConvTranspose2x)


class Encoder(nn.Module):
  """Maps images to the mean and log-variance of a diagonal Gaussian q(z|x).

  Attributes:
    latent_dim: D, the number of latent dimensions.
    channels: output channels of the stride-2 convolutions.
    kernel_sizes: square kernel side of each convolution.
    hidden: width of the fully connected layer before the output.
    downsample_impl: implementation of the stride-2 convolutions (same
      function, same parameters): one of ``layers.DOWNSAMPLE_IMPLS`` (a
      ``Conv2x`` form) or ``layers.STANDARD_IMPL`` ('standard': Flax's
      ``nn.Conv``). Their parameters are named ``Conv_<i>`` either way.
  """
  latent_dim: int = 10
  channels: Sequence[int] = (32, 32, 64, 64)
  kernel_sizes: Sequence[int] = (4, 4, 4, 4)
  hidden: int = 128
  downsample_impl: str = DEFAULT_DOWNSAMPLE_IMPL

  def setup(self):
    if len(self.channels) != len(self.kernel_sizes):
      raise ValueError(
          f"encoder channels {tuple(self.channels)} and kernel sizes "
          f"{tuple(self.kernel_sizes)} must have the same length.")
    # Flax names the modules of a list attribute '<attribute>_<index>', so
    # the parameters are Conv_0.., Dense_0 and Dense_1: the names the
    # encoder has always had (checkpoints of every version restore).
    self.Conv = [  # pylint: disable=invalid-name
        nn.Conv(c, (k, k), strides=(2, 2), padding="SAME")
        if self.downsample_impl == STANDARD_IMPL else
        Conv2x(c, k, impl=self.downsample_impl)
        for c, k in zip(self.channels, self.kernel_sizes)]
    self.Dense = [nn.Dense(self.hidden), nn.Dense(2 * self.latent_dim)]  # pylint: disable=invalid-name

  def extract_features(self, x: jax.Array) -> jax.Array:
    """The convolutions, per image.

    Args:
      x: float [B, H, W, C] in [0, 1].

    Returns:
      The last convolution's activations, flattened: [B, F].
    """
    for conv in self.Conv:
      x = nn.relu(conv(x))
    return x.reshape(x.shape[0], -1)

  def compute_moments(self, features: jax.Array
                      ) -> tuple[jax.Array, jax.Array]:
    """The fully connected layers, from ``extract_features``'s output.

    Args:
      features: [B, F].

    Returns:
      (mean, logvar), each [B, D].
    """
    x = nn.relu(self.Dense[0](features))
    out = self.Dense[1](x)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]

  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Args: x float [B, H, W, C] in [0, 1]. Returns: (mean, logvar), [B, D]."""
    return self.compute_moments(self.extract_features(x))


class Decoder(nn.Module):
  """Maps latents to Bernoulli logits of p(x|z).

  Attributes:
    output_shape: (H, W, C) of the images; H and W must equal
      ``base_size * 2 ** (len(channels) + 1)``.
    channels: channels of the hidden stride-2 upconvolutions; a final one
      produces C logits.
    hidden: width of the first fully connected layer.
    base_size: spatial side of the feature map the FC layers reshape into.
    base_channels: channels of that feature map.
    kernel_size: square kernel side of the upconvolutions.
    upsample_impl: implementation of the upconvolutions (same function, same
      parameters): one of ``layers.UPSAMPLE_IMPLS`` (a ``ConvTranspose2x``
      form) or ``layers.STANDARD_IMPL`` ('standard': Flax's
      ``nn.ConvTranspose``, whose 'SAME' padding is ``lax.conv_transpose``'s
      with the unflipped kernel, the plain form). Their parameters are named
      ``ConvTranspose2x_<i>`` either way (the name the fast form always had).
  """
  output_shape: tuple[int, int, int] = (64, 64, 1)
  channels: Sequence[int] = (64, 32, 32)
  hidden: int = 128
  base_size: int = 4
  base_channels: int = 64
  kernel_size: int = 4
  upsample_impl: str = DEFAULT_UPSAMPLE_IMPL

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Args: z [B, D]. Returns: logits [B, H, W, C]."""
    h, w, c_out = self.output_shape
    side = self.base_size * 2 ** (len(self.channels) + 1)
    if (h, w) != (side, side):
      raise ValueError(
          f"decoder produces {side}x{side} images but the data are {h}x{w}; "
          f"change model.decoder_channels (one stride-2 layer per doubling).")
    x = nn.relu(nn.Dense(self.hidden)(z))
    x = nn.relu(nn.Dense(self.base_size ** 2 * self.base_channels)(x))
    x = x.reshape(x.shape[0], self.base_size, self.base_size,
                  self.base_channels)
    features = (*self.channels, c_out)
    for i, c in enumerate(features):
      name = f"ConvTranspose2x_{i}"
      if self.upsample_impl == STANDARD_IMPL:
        conv = nn.ConvTranspose(c, (self.kernel_size, self.kernel_size),
                                strides=(2, 2), padding="SAME", name=name)
      else:
        conv = ConvTranspose2x(c, self.kernel_size, impl=self.upsample_impl,
                               name=name)
      x = conv(x)
      if i < len(features) - 1:
        x = nn.relu(x)
    return x
