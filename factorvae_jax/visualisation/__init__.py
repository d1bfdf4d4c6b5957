"""Image grids (samples, reconstructions, latent traversals) and PNG output."""

from factorvae_jax.visualisation.grids import DEFAULT_TRAVERSAL_VALUES
from factorvae_jax.visualisation.grids import make_image_grid
from factorvae_jax.visualisation.grids import make_reconstruction_grid
from factorvae_jax.visualisation.grids import make_traversal_grid
from factorvae_jax.visualisation.grids import save_png

__all__ = [
    "DEFAULT_TRAVERSAL_VALUES",
    "make_image_grid",
    "make_reconstruction_grid",
    "make_traversal_grid",
    "save_png",
]
