"""Training monitoring: metric writers, a progress bar, discriminator checks."""

from factorvae_jax.monitoring.discriminator_watch import DiscriminatorWatch
from factorvae_jax.monitoring.progress import ProgressBar
from factorvae_jax.monitoring.writers import MetricWriter

__all__ = [
    "DiscriminatorWatch",
    "MetricWriter",
    "ProgressBar",
]
