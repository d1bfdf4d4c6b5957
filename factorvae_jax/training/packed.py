"""Packed training: N models of one architecture and objective in one program.

Runs that differ only in values -- the seed (through ``TrainState.rng`` and
the initial parameters) and the objective's hyperparameters (``hparams``,
e.g. FactorVAE's gamma or beta-VAE's beta) -- share a ``StepConfig`` and so
one compiled program. Their train states are stacked on a leading model axis
(``stack_states``) and ``packed_train_steps`` advances all of them by
``num_steps`` steps in one dispatch. Hyperparameters and seeds are array
values, so a new sweep point is new data, never a recompilation.

Model ``i`` of the pack computes exactly what ``train_steps`` computes for
it alone: step ``s`` uses ``fold_in(rng_i, s)``, and under ``jax.pmap``
(``step_config.axis_name`` set) each device holds every model and its own
shard of each model's global batch, as in ``train_steps``.

Forms (``mode``):
  'vmap': ``jax.vmap`` of ``train_steps`` over the model axis. One batched
      program: the matmuls and elementwise work of the N models fuse, which
      is what GPUs and TPUs want. But JAX batches each model's convolution
      kernel into a *grouped* convolution (``feature_group_count`` = N), and
      XLA:CPU hands grouped convolutions inside a ``while`` loop (the
      ``lax.scan`` over steps) to its slow generic path, not to its fast
      library; see models/layers.py and docs/performance.md.
  'map': ``lax.map`` (a loop inside the program) over the models, each
      running ``train_steps``. Every convolution stays the per-model,
      canonical one the fast layers emit, and the program has the size of
      one model's, whatever N.
  'unroll': a Python loop over the models inside the traced function: N
      copies of ``train_steps`` in one program. Same ungrouped convolutions
      as 'map', no loop over models at run time, but the program (and its
      compile time) grows with N.
  'auto': 'map' on CPU, 'vmap' elsewhere (``resolve_mode``).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from factorvae_jax.builder.state import StepConfig, TrainState
from factorvae_jax.training.train_step import train_steps

PACKED_MODES = ("auto", "vmap", "map", "unroll")


def resolve_mode(mode: str, platform: Optional[str] = None) -> str:
  """The concrete form ``mode`` stands for on ``platform``.

  Args:
    mode: one of ``PACKED_MODES``.
    platform: 'cpu', 'gpu', 'tpu', ...; default: ``jax.default_backend()``.

  Returns:
    'vmap', 'map' or 'unroll'.

  Raises:
    ValueError: if ``mode`` is not one of ``PACKED_MODES``.
  """
  if mode not in PACKED_MODES:
    raise ValueError(f"unknown packed training mode {mode!r}; use one of "
                     f"{PACKED_MODES}.")
  if mode != "auto":
    return mode
  platform = platform or jax.default_backend()
  # CPU: vmap turns every convolution into a grouped one, which XLA:CPU runs
  # on its slow generic path inside lax.scan (slower per model-step than
  # training the models one after another); 'map' keeps the canonical
  # per-model convolutions and costs one program of one model's size.
  # GPU/TPU: one batched program fills the accelerator and grouped
  # convolutions are native there (cuDNN / the TPU convolution units).
  return "map" if platform == "cpu" else "vmap"


#: Runs packed per program by default, per platform. CPU: 'map' at N = 4
#: was the fastest per model-step measured (1.19x one after another,
#: docs/performance.md); GPU/TPU: one 64x64, batch-64 model uses a small
#: part of the chip, 16 in one 'vmap' program fill it better (not yet
#: measured on a device; see docs/sweeps.md).
DEFAULT_RUNS_PER_GROUP = {"cpu": 4, "gpu": 16, "tpu": 16}


def default_runs_per_group(platform: Optional[str] = None) -> int:
  """How many runs a sweep packs into one program on ``platform``.

  Args:
    platform: 'cpu', 'gpu', 'tpu', ...; default: ``jax.default_backend()``.

  Returns:
    ``DEFAULT_RUNS_PER_GROUP``'s value, 4 for platforms it does not name.
  """
  platform = platform or jax.default_backend()
  return DEFAULT_RUNS_PER_GROUP.get(platform, 4)


def num_models(states: TrainState) -> int:
  """The size of the leading model axis of stacked ``states``.

  Raises:
    ValueError: if ``states`` has no model axis (an unstacked state).
  """
  step = jnp.shape(states.step)
  if len(step) != 1:
    raise ValueError(
        f"expected train states stacked on a leading model axis (step of "
        f"shape [N]); got step of shape {step}. Stack the per-model states "
        f"with stack_states([...]).")
  return step[0]


def _hparam_names(state: TrainState) -> list:
  return sorted(state.hparams) if isinstance(state.hparams, dict) else []


def stack_states(states: Sequence[TrainState]) -> TrainState:
  """Stacks per-model train states on a new leading model axis.

  Args:
    states: one ``TrainState`` per model, all built from the same
      ``StepConfig`` (same architecture, objective and optimisers); they may
      differ in seed, hyperparameter values and step.

  Returns:
    A ``TrainState`` whose every leaf has a leading axis of ``len(states)``.

  Raises:
    ValueError: if ``states`` is empty or the states' trees or leaf shapes
      differ (models that cannot share one compiled program).
  """
  states = list(states)
  if not states:
    raise ValueError("stack_states needs at least one train state; got [].")
  first = jax.tree.structure(states[0])
  for i, s in enumerate(states[1:], 1):
    if jax.tree.structure(s) != first:
      raise ValueError(
          f"train state {i} has a different structure from state 0 "
          f"(hparams {_hparam_names(s)} vs {_hparam_names(states[0])}); only "
          f"runs of one architecture, objective and optimiser can be packed: "
          f"put the others in a separate pack.")
  shapes = [jax.tree.map(jnp.shape, s) for s in states]
  for i, shp in enumerate(shapes[1:], 1):
    if shp != shapes[0]:
      raise ValueError(
          f"train state {i} has parameter shapes different from state 0 "
          f"(e.g. another latent_dim or channel count); only runs of one "
          f"architecture can be packed: put it in a separate pack.")
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def unstack_states(states: TrainState) -> list[TrainState]:
  """Splits stacked ``states`` into one ``TrainState`` per model.

  Args:
    states: states stacked on a leading model axis (under ``pmap``, take one
      device's copy first, e.g. ``jax.tree.map(lambda a: a[0], states)``).

  Returns:
    ``[state_0, ..., state_{N-1}]``, e.g. for one checkpoint per run.
  """
  n = num_models(states)
  return [jax.tree.map(lambda a, i=i: a[i], states) for i in range(n)]


def packed_train_steps(step_config: StepConfig, sample_fn: Callable,
                       local_batch_size: int, num_steps: int,
                       states: TrainState, data_arrays: Any, *,
                       mode: str = "auto") -> tuple[TrainState, dict]:
  """Runs ``num_steps`` steps of each of N packed models in one dispatch.

  A drop-in for ``train_steps`` with a model axis: wrap it exactly as that
  is wrapped (``jax.jit``, or ``jax.pmap`` with ``axis_name`` =
  ``step_config.axis_name``), with ``step_config`` .. ``num_steps`` and
  ``mode`` bound by ``functools.partial``. Model ``i``'s result equals
  ``train_steps`` run on ``unstack_states(states)[i]`` alone (to float
  tolerance; 'map' and 'unroll' run the very same per-model operations).

  Args:
    step_config: static configuration shared by all models.
    sample_fn: ``dataset.sample_device_batch``.
    local_batch_size: per-device batch size of every model (static).
    num_steps: steps per model in this dispatch (static).
    states: the models' train states stacked on a leading axis of N
      (``stack_states``); per-model seeds and ``hparams`` are values in it.
    data_arrays: the dataset's device arrays, shared by all models.
    mode: 'auto', 'vmap', 'map' or 'unroll' (module docstring; static).

  Returns:
    ``(states, metrics)``: the stacked new states and every metric with
    shape [N, num_steps, ...] (model first, then step).

  Raises:
    ValueError: if ``mode`` is unknown or ``states`` has no model axis.
  """
  mode = resolve_mode(mode)
  n = num_models(states)
  run = functools.partial(train_steps, step_config, sample_fn,
                          local_batch_size, num_steps)
  if mode == "vmap":
    return jax.vmap(run, in_axes=(0, None))(states, data_arrays)
  if mode == "map":
    return jax.lax.map(lambda state: run(state, data_arrays), states)
  # 'unroll': N independent copies in one program, restacked.
  outs = [run(jax.tree.map(lambda a, i=i: a[i], states), data_arrays)
          for i in range(n)]
  return jax.tree.map(lambda *leaves: jnp.stack(leaves), *outs)
