"""Seed and hyperparameter sweeps: definitions, sharded preemption-safe
training of many runs, and aggregation into the papers' figures.

See docs/sweeps.md. Modules:

* ``definition``: ``Sweep``/``Grid`` (what sweep files return), expansion
  into named ``Run`` objects.
* ``snapshot``: the sweep dir's record of its definition.
* ``status``: a run's state from its workdir (new / partial / done / failed).
* ``claims``: atomic claims, so no run trains in two processes.
* ``sharding``: a task's share; task index from Slurm / Kubernetes.
* ``runner``: trains a share (``run_share``).
* ``aggregate`` and ``figures``: ``results.csv`` and the PNG figures.
"""

from factorvae_jax.sweeps.definition import Grid
from factorvae_jax.sweeps.definition import Run
from factorvae_jax.sweeps.definition import Sweep
from factorvae_jax.sweeps.definition import expand
from factorvae_jax.sweeps.definition import load_sweep
from factorvae_jax.sweeps.definition import parse_arg
from factorvae_jax.sweeps.definition import parse_options
from factorvae_jax.sweeps.definition import product
