"""Named architecture presets and the function that builds the networks."""

from __future__ import annotations

import dataclasses
from typing import Optional

from factorvae_jax.models.discriminator import Discriminator
from factorvae_jax.models.layers import (DEFAULT_CONV_IMPL,
                                         DEFAULT_DOWNSAMPLE_IMPL,
                                         DEFAULT_UPSAMPLE_IMPL, STANDARD_IMPL,
                                         resolve_conv_impl)
from factorvae_jax.models.vae_nets import Decoder, Encoder
from factorvae_jax.utils import errors

# Each preset fills the config fields the user left unset (None).
PRESETS = {
    # Kim & Mnih (2018), Appendix, 64x64 images.
    "paper": dict(
        encoder_channels=(32, 32, 64, 64), encoder_kernels=(4, 4, 4, 4),
        encoder_hidden=128, decoder_hidden=128, decoder_channels=(64, 32, 32),
        disc_hidden=1000, disc_layers=6),
    # disentanglement_lib's conv_encoder / deconv_decoder / fc_discriminator:
    # 2x2 kernels in the encoder's last two convolutions and FC 256.
    "dlib": dict(
        encoder_channels=(32, 32, 64, 64), encoder_kernels=(4, 4, 2, 2),
        encoder_hidden=256, decoder_hidden=256, decoder_channels=(64, 32, 32),
        disc_hidden=1000, disc_layers=6),
}


@dataclasses.dataclass(frozen=True)
class Networks:
  """The VAE's Flax modules (auxiliary networks belong to the objective)."""
  encoder: Encoder
  decoder: Decoder


def resolve_architecture(model_config) -> dict:
  """Returns the preset's values overridden by any field the config sets.

  Raises:
    ValueError: if ``model_config.architecture`` names no preset.
  """
  name = model_config.architecture
  if name not in PRESETS:
    raise errors.InvalidValueError(
        f"config.model.architecture={name!r} is unknown; choose one of "
        f"{sorted(PRESETS)}.")
  resolved = dict(PRESETS[name])
  for field in resolved:
    value = model_config.get(field, None)
    if value is not None:
      resolved[field] = tuple(value) if isinstance(value, (list, tuple)) else value
  return resolved


def make_networks(model_config, observation_shape,
                  upsample_impl: Optional[str] = None,
                  downsample_impl: Optional[str] = None) -> Networks:
  """Builds the encoder and the decoder.

  Args:
    model_config: ``config.model`` (architecture, latent_dim, widths and
      ``conv_impl``: 'auto' (default, also when the field is absent, as in
      configs saved before it existed), 'fast' or 'standard'; 'auto' is
      resolved here by ``layers.resolve_conv_impl`` from
      ``jax.default_backend()``).
    observation_shape: (H, W, C) of the data; C sets the decoder's output.
    upsample_impl: overrides ``conv_impl`` for the decoder's upconvolutions
      (one of ``layers.UPSAMPLE_IMPLS``, 'conv_transpose' is the plain form,
      or 'standard' for ``nn.ConvTranspose``).
    downsample_impl: overrides ``conv_impl`` for the encoder's stride-2
      convolutions (one of ``layers.DOWNSAMPLE_IMPLS``, 'conv' is the plain
      form, or 'standard' for ``nn.Conv``).
    All implementations compute the same function with the same parameter
    tree, so checkpoints are interchangeable (docs/performance.md).

  Returns:
    A ``Networks``.

  Raises:
    InvalidValueError: if ``model_config.conv_impl`` or the architecture is
      unknown.
  """
  arch = resolve_architecture(model_config)
  conv_impl = resolve_conv_impl(
      model_config.get("conv_impl", DEFAULT_CONV_IMPL))
  if conv_impl == "standard":
    default_up = default_down = STANDARD_IMPL
  else:
    default_up, default_down = DEFAULT_UPSAMPLE_IMPL, DEFAULT_DOWNSAMPLE_IMPL
  upsample_impl = default_up if upsample_impl is None else upsample_impl
  downsample_impl = default_down if downsample_impl is None else downsample_impl
  encoder = Encoder(latent_dim=model_config.latent_dim,
                    channels=arch["encoder_channels"],
                    kernel_sizes=arch["encoder_kernels"],
                    hidden=arch["encoder_hidden"],
                    downsample_impl=downsample_impl)
  decoder = Decoder(output_shape=tuple(observation_shape),
                    channels=arch["decoder_channels"],
                    hidden=arch["decoder_hidden"],
                    upsample_impl=upsample_impl)
  return Networks(encoder, decoder)


def make_discriminator(model_config) -> Discriminator:
  """The TC discriminator of ``model_config``'s architecture preset.

  Raises:
    ValueError: if ``model_config.architecture`` names no preset.
  """
  arch = resolve_architecture(model_config)
  return Discriminator(hidden=arch["disc_hidden"],
                       num_layers=arch["disc_layers"])
