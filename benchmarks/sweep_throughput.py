"""Throughput of packed training (N models per program) against sequential.

Trains N copies of the full FactorVAE (the config's architecture and data;
model i has seed ``config.seed + i`` and its hyperparameters scaled by
``1 + i / N``, so the models really differ) in two ways, after warm-up:
  * packed: ``packed_train_steps`` (factorvae_jax/training/packed.py), the N
    states stacked on a model axis, ``--steps_per_dispatch`` steps of every
    model per dispatch;
  * sequential: the same N models one after another, each with the jitted
    ``train_steps`` of the training loop (same steps per dispatch).
Settings (every N, every packed mode, and the sequential runs) alternate
round by round so that they share the machine's load; prints medians.

  python benchmarks/sweep_throughput.py \
      --config=experiments/configs/factorvae_dsprites.py \
      --models=1,2,4,8 [--modes=auto|map|vmap|unroll,...] [--steps=20] \
      [--rounds=2] [--steps_per_dispatch=10]
  # accelerator: --models=1,2,4,8,16,32,64 --steps=200 --steps_per_dispatch=50

Output, one line per setting (medians over rounds; model-steps/s counts
one step of one model):

  packed models=<N> mode=<mode> model_steps_per_s=<float> compile_s=<float>
      rounds=<int> runs=<list>
  sequential models=<N> model_steps_per_s=<float> runs=<list>
  sweep_throughput models=<N> model_steps_per_s=<float> mode=<mode>
      sequential_model_steps_per_s=<float> speedup=<float>
  sweep_throughput_sequential models=<N> model_steps_per_s=<float>
  peak_rss_mb=<float> platform=<name> devices=<int> ...

``compile_s`` is the first call's time (tracing, compilation and one
execution). Everything runs on one device (``jax.jit``); the packed function
is used the same way under ``jax.pmap`` by the training loop.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import os
import resource
import statistics
import sys
import time

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import ml_collections

from factorvae_jax import builder
from factorvae_jax import data as data_lib
from factorvae_jax.builder.state import create_train_state, read_hparams
from factorvae_jax.training import packed
from factorvae_jax.training.train_step import train_steps
# pylint: enable=g-import-not-at-top,wrong-import-position

DEFAULT_CONFIG = os.path.join(_REPO, "experiments", "configs",
                              "factorvae_dsprites.py")


def load_config(spec: str) -> ml_collections.ConfigDict:
  """The config of ``path[:variant]``."""
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_bench_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)


def make_states(config, step_config, shape, n: int) -> list:
  """N step-0 states: seeds ``config.seed + i``, hparams scaled 1 + i/N."""
  # Jitted as builder.init_state does; seed and hparams are arguments, so
  # this compiles once for all N models.
  init = jax.jit(create_train_state, static_argnums=(0, 2))
  base = read_hparams(step_config.objective, config.model)
  return [init(step_config, jax.random.PRNGKey(config.seed + i), shape,
               {k: v * (1.0 + i / n) for k, v in base.items()})
          for i in range(n)]


class Packed:
  """N models in one compiled program."""

  def __init__(self, step_config, sample_fn, batch, spd, states, arrays,
               mode):
    self.n, self.spd, self.arrays = len(states), spd, arrays
    self.mode = packed.resolve_mode(mode)
    self.name = f"packed models={self.n} mode={self.mode}"
    self.state = packed.stack_states(states)
    self.fn = jax.jit(functools.partial(
        packed.packed_train_steps, step_config, sample_fn, batch, spd,
        mode=self.mode), donate_argnums=(0,))
    t = time.perf_counter()
    self.state, metrics = self.fn(self.state, arrays)
    jax.block_until_ready((self.state, metrics))
    self.compile_s = time.perf_counter() - t
    self.runs: list[float] = []

  def measure(self, steps: int) -> float:
    dispatches = max(1, -(-steps // self.spd))
    t = time.perf_counter()
    for _ in range(dispatches):
      self.state, metrics = self.fn(self.state, self.arrays)
    jax.block_until_ready((self.state, metrics))
    rate = self.n * dispatches * self.spd / (time.perf_counter() - t)
    self.runs.append(rate)
    return rate


class Sequential:
  """The same N models, one after another, with the solo ``train_steps``."""

  def __init__(self, fn, spd, states, arrays):
    self.fn, self.spd, self.arrays = fn, spd, arrays
    self.n = len(states)
    self.name = f"sequential models={self.n}"
    self.states = list(states)
    self.runs: list[float] = []

  def measure(self, steps: int) -> float:
    dispatches = max(1, -(-steps // self.spd))
    t = time.perf_counter()
    for i in range(self.n):
      state = self.states[i]
      for _ in range(dispatches):
        state, metrics = self.fn(state, self.arrays)
      self.states[i] = state
    jax.block_until_ready((self.states, metrics))
    rate = self.n * dispatches * self.spd / (time.perf_counter() - t)
    self.runs.append(rate)
    return rate


def _fmt(runs):
  return "[" + ",".join(f"{r:.3f}" for r in runs) + "]"


def _ints(text):
  return [int(s) for s in text.split(",") if s]


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default=DEFAULT_CONFIG,
                 help="config file[:variant] (default: FactorVAE on "
                      "procedural dSprites, the paper architecture)")
  p.add_argument("--models", default="1,2,4,8",
                 help="comma-separated pack sizes N")
  p.add_argument("--modes", default="auto",
                 help="comma-separated packed forms: " +
                      ", ".join(packed.PACKED_MODES) +
                      " (auto: %s here)" % packed.resolve_mode("auto"))
  p.add_argument("--steps", type=int, default=20,
                 help="measured steps per model, setting and round")
  p.add_argument("--rounds", type=int, default=2,
                 help="rounds; each times every setting once")
  p.add_argument("--steps_per_dispatch", type=int, default=10,
                 help="steps per model per dispatch (lax.scan length)")
  p.add_argument("--no_sequential", action="store_true",
                 help="time only the packed settings")
  a = p.parse_args(argv)

  modes = []
  for m in (m for m in a.modes.split(",") if m):
    if m not in packed.PACKED_MODES:
      p.error(f"--modes: unknown mode {m!r}; use {packed.PACKED_MODES}")
    if packed.resolve_mode(m) not in modes:  # 'auto' is one of the others.
      modes.append(packed.resolve_mode(m))
  sizes = _ints(a.models)
  if not sizes or min(sizes) < 1:
    p.error(f"--models must be positive integers; got {a.models!r}")

  config = load_config(a.config)
  dataset = data_lib.make_dataset(config.data)
  shape = tuple(dataset.observation_shape)
  arrays = dataset.device_arrays()
  sample_fn = dataset.sample_device_batch
  batch = int(config.batch_size)
  spd = a.steps_per_dispatch
  # One device: no pmap axis, as a single-device jit of the loop's step.
  step_config = builder.build_step_config(config, shape, axis_name=None)

  settings = []  # Per N: the packed settings, then the sequential one.
  solo = jax.jit(functools.partial(train_steps, step_config, sample_fn,
                                   batch, spd), donate_argnums=(0,))
  for n in sizes:
    for m in modes:
      s = Packed(step_config, sample_fn, batch, spd,
                 make_states(config, step_config, shape, n), arrays, m)
      print(f"# {s.name} compile_s={s.compile_s:.1f}", flush=True)
      settings.append(s)
    if not a.no_sequential:
      s = Sequential(solo, spd, make_states(config, step_config, shape, n),
                     arrays)
      s.measure(spd)  # Compiles once (shared by every N); warms the states.
      settings.append(s)
  for s in settings:  # One warm-up dispatch each.
    s.measure(spd)
    s.runs.clear()

  for r in range(a.rounds):
    line = [f"{s.measure(a.steps):.3f}" for s in settings]
    print(f"# round {r}: " + " ".join(line), flush=True)

  medians = {}
  for s in settings:
    med = statistics.median(s.runs)
    medians[s.name] = med
    extra = (f" compile_s={s.compile_s:.1f}" if isinstance(s, Packed) else "")
    print(f"{s.name} model_steps_per_s={med:.3f}{extra} "
          f"steps_per_dispatch={spd} batch={batch} rounds={len(s.runs)} "
          f"runs={_fmt(s.runs)}", flush=True)
  for s in settings:
    if isinstance(s, Packed):
      seq = medians.get(f"sequential models={s.n}")
      tail = ("" if seq is None else
              f" sequential_model_steps_per_s={seq:.3f} "
              f"speedup={medians[s.name] / seq:.3f}")
      print(f"sweep_throughput models={s.n} "
            f"model_steps_per_s={medians[s.name]:.3f} mode={s.mode}{tail}",
            flush=True)
    else:
      print(f"sweep_throughput_sequential models={s.n} "
            f"model_steps_per_s={medians[s.name]:.3f}", flush=True)
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  print(f"peak_rss_mb={peak_mb:.0f} platform={jax.default_backend()} "
        f"devices={jax.device_count()} jax={jax.__version__} "
        f"xla_flags={os.environ.get('XLA_FLAGS', '')!r}", flush=True)


if __name__ == "__main__":
  main()
