"""Flax networks: encoder, decoder, discriminator and architecture presets."""

from factorvae_jax.models.architectures import PRESETS, Networks, make_discriminator, make_networks, resolve_architecture
from factorvae_jax.models.discriminator import Discriminator
from factorvae_jax.models.layers import CONV_IMPLS, resolve_conv_impl
from factorvae_jax.models.vae_nets import Decoder, Encoder
