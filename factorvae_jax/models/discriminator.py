"""The FactorVAE total-correlation discriminator."""

from __future__ import annotations

import flax.linen as nn
import jax


class Discriminator(nn.Module):
  """MLP classifying latent samples: logit 0 = joint q(z), 1 = permuted.

  Kim & Mnih (2018): 6 x [FC 1000, LeakyReLU(0.2)] -> FC 2.

  Attributes:
    hidden: width of each hidden layer.
    num_layers: number of hidden layers.
    negative_slope: LeakyReLU slope.
  """
  hidden: int = 1000
  num_layers: int = 6
  negative_slope: float = 0.2

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """Args: z [B, D]. Returns: logits [B, 2]."""
    x = z
    for _ in range(self.num_layers):
      x = nn.leaky_relu(nn.Dense(self.hidden)(x), self.negative_slope)
    return nn.Dense(2)(x)
