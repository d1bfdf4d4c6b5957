"""FactorVAE on mpi3d_toy, otherwise as factorvae_dsprites.py.

MPI3D toy (Gondal et al. 2019), 64x64x3, 7 factors.

  python -m experiments.run \
      --config=experiments/configs/factorvae_mpi3d_toy.py \
      --workdir=runs/fvae_mpi3d_toy
  # needs: --config.data.path=/data/mpi3d_toy.npz
  # variants: ...factorvae_mpi3d_toy.py:test (seconds), :quick (minutes)

Everything but ``config.data`` is ``factorvae_dsprites.py``'s (gamma 35; the
disentanglement_lib study sweeps gamma over the same values on every
dataset). docs/data.md describes the dataset, its files and its memory.
"""

import ml_collections

from experiments.configs import factorvae_dsprites


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Returns the config; ``arg`` is the variant ('test', 'quick' or None)."""
  config = factorvae_dsprites.get_config(arg)
  with config.unlocked():
    config.data.name = "mpi3d_toy"
    config.data.source = "npz"
  return config
