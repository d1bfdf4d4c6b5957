"""Reconstruction and traversal pictures of a model on a fixed set of images.

Written into the run's image folder during training (kinds
``reconstructions`` and ``traversals``, one PNG per kind and step;
``utils.run_dir.image_path``) so a run can be judged by eye as it goes.
"""

from __future__ import annotations

import numpy as np

from factorvae_jax.utils import run_dir
from factorvae_jax.visualisation import grids


class SnapshotWriter:
  """Draws the same images' reconstructions and traversals at each call.

  Args:
    images: the fixed inputs, float [N, H, W, C] in [0, 1].
    workdir: the run whose image folder the PNGs go to (created if
      missing).
    num_traversed: how many of the images get a traversal grid.
  """

  def __init__(self, images: np.ndarray, workdir: str,
               num_traversed: int = 3):
    self._images = np.asarray(images, np.float32)
    self._workdir = workdir
    self._num_traversed = num_traversed

  def write(self, model, step: int) -> dict[str, np.ndarray]:
    """Writes the two PNGs of ``model`` at ``step``.

    Args:
      model: has ``encode(images) -> (mean, logvar)``, ``decode(z)`` and
        ``kl_per_dim(images)`` (``factorvae_jax.builder.TrainedModel``).
      step: the training step, used in the file names.

    Returns:
      ``{'reconstructions': grid, 'traversals': grid}`` (uint8 images).
    """
    mean, _ = model.encode(self._images)
    recon_grid = grids.make_reconstruction_grid(self._images,
                                                model.decode(mean))
    traversal_grid = grids.make_traversal_grid(
        model.decode, mean[:self._num_traversed],
        kl_per_dim=model.kl_per_dim(self._images))
    pictures = {"reconstructions": recon_grid, "traversals": traversal_grid}
    for name, grid in pictures.items():
      grids.save_png(run_dir.image_path(self._workdir, name, step), grid)
    return pictures
