"""Throughput of the full FactorVAE train step (and the PyTorch reference).

Times ``train_steps`` (both updates, the second batch, the dimension-wise
permutation; batches sampled on device) after warm-up, for each requested
setting, alternating the settings (and the PyTorch reference with --torch)
round by round so that they share the machine's load; prints the median.

  python benchmarks/train_step.py \
      --config=experiments/configs/factorvae_dsprites.py --steps=50 \
      [--impls=fast/fast,conv_transpose/conv | --conv_impl=fast,standard] \
      [--steps_per_dispatch=10,50] [--rounds=5] [--torch=SCRIPT] \
      [--data=bank|random|config]

``--conv_impl`` times the networks ``config.model.conv_impl`` builds (the
fast custom-VJP forms, Flax's nn.Conv / nn.ConvTranspose, or 'auto' for
this platform's default) instead of the ``--impls`` pairs; one setting per
value.

Output, one line per setting (medians over rounds):

  train_step steps_per_s=<float> batch=<int> [conv_impl=<value>]
      upsample=<impl> downsample=<impl>
      steps_per_dispatch=<int> compile_s=<float> setup_s=<float>
      rounds=<int> runs=<list>
  torch_reference steps_per_s=<float> ... runs=<list>   (with --torch)
  ratio_vs_torch=<float> ...                            (with --torch)
  time_to_first_step_s=<float> peak_rss_mb=<float>

``compile_s`` is the time of the first call of a setting (tracing, XLA
compilation and its first execution); ``setup_s`` the time to build its
dataset, networks and train state (``create_train_state`` jitted, as in the
training loop). ``time_to_first_step_s`` is from process start to the end
of the first setting's first call (imports, dataset, state, compile). ``peak_rss_mb`` is this process's peak resident memory
(``ru_maxrss``, all settings together; the PyTorch subprocess is not
included): measure memory with one setting.

Without --config, the paper architecture (latent_dim 10, gamma 35, batch 64,
the paper's Adam settings) is built directly. By default batches are drawn
by index from a bank of 8192 random binary images held on device, as the
PyTorch reference does; --data=random draws fresh random images every step
and --data=config samples the config's dataset (e.g. the procedural dSprites
renderer, which renders every batch). XLA flags (docs/performance.md) are
read from XLA_FLAGS as usual; this script sets none.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import importlib.util
import os
import re
import resource
import statistics
import subprocess
import sys
import time


def _process_start_time() -> float:
  """Wall-clock time (time.time()) at which this process started."""
  try:
    with open("/proc/self/stat") as f:
      fields = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(fields[19])
    with open("/proc/uptime") as f:
      uptime = float(f.read().split()[0])
    return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):
    return time.time()


_PROCESS_START = _process_start_time()

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
  sys.path.insert(0, _REPO)

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax
import jax.numpy as jnp
import ml_collections

from factorvae_jax import builder
from factorvae_jax import data as data_lib
from factorvae_jax.models import layers
from factorvae_jax.models import make_networks
from factorvae_jax.training.train_step import train_steps
# pylint: enable=g-import-not-at-top,wrong-import-position


def load_config(spec: str | None) -> ml_collections.ConfigDict:
  """The config of ``path[:variant]``, or the paper defaults if None."""
  if not spec:
    config = ml_collections.ConfigDict()
    config.seed = 0
    config.model = ml_collections.ConfigDict(dict(
        name="factor_vae", architecture="paper", latent_dim=10, gamma=35.0,
        second_batch=True))
    config.optim = ml_collections.ConfigDict(dict(
        vae_learning_rate=1e-4, vae_beta1=0.9, vae_beta2=0.999,
        disc_learning_rate=1e-4, disc_beta1=0.5, disc_beta2=0.9,
        adam_eps=1e-8))
    config.batch_size = 64
    return config
  path, _, variant = spec.partition(":")
  module_spec = importlib.util.spec_from_file_location("_bench_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(variant or None)


# Like the PyTorch reference: a bank of random binary images, sampled by index.
BANK_SIZE = 8192


def _random_binary_images(shape, arrays, key, n):
  del arrays
  return (jax.random.uniform(key, (n, *shape)) > 0.9).astype(jnp.float32)


def _bank_images(arrays, key, n):
  index = jax.random.randint(key, (n,), 0, arrays["bank"].shape[0])
  return arrays["bank"][index].astype(jnp.float32)


def build(config, upsample_impl: str | None, downsample_impl: str | None,
          data: str, conv_impl: str | None = None):
  """(step_config, state, sample_fn, data_arrays) for one setting.

  ``conv_impl`` (if given) sets ``config.model.conv_impl``; implementations
  left None come from it (make_networks).
  """
  if conv_impl is not None:
    config = copy.deepcopy(config)
    config.model.conv_impl = conv_impl
  if data == "config":
    dataset = data_lib.make_dataset(config.data)
    shape = tuple(dataset.observation_shape)
    sample_fn, arrays = dataset.sample_device_batch, dataset.device_arrays()
  elif data == "bank":
    shape = (64, 64, 1)
    bank = jax.random.uniform(jax.random.PRNGKey(1), (BANK_SIZE, *shape)) > 0.9
    sample_fn, arrays = _bank_images, {"bank": bank.astype(jnp.uint8)}
  else:
    shape = (64, 64, 1)
    sample_fn = functools.partial(_random_binary_images, shape)
    arrays = {}
  # As the training loop builds it, with the layer implementations swapped.
  step_config = dataclasses.replace(
      builder.build_step_config(config, shape, axis_name=None),
      networks=make_networks(config.model, shape, upsample_impl=upsample_impl,
                             downsample_impl=downsample_impl))
  state = builder.init_state(config, step_config, shape)
  return step_config, state, sample_fn, arrays


class Setting:
  """One (impls, steps per dispatch) setting: compiled step and its state."""

  def __init__(self, config, upsample, downsample, steps_per_dispatch, data,
               conv_impl=None):
    self.spd = steps_per_dispatch
    t = time.perf_counter()
    step_config, self.state, sample_fn, self.arrays = build(
        config, upsample, downsample, data, conv_impl)
    nets = step_config.networks
    self.name = (("" if conv_impl is None else f"conv_impl={conv_impl} ") +
                 f"upsample={nets.decoder.upsample_impl} "
                 f"downsample={nets.encoder.downsample_impl} "
                 f"steps_per_dispatch={steps_per_dispatch}")
    jax.block_until_ready(self.state)
    self.setup_s = time.perf_counter() - t
    self.fn = jax.jit(functools.partial(
        train_steps, step_config, sample_fn, int(config.batch_size),
        steps_per_dispatch))
    t = time.perf_counter()
    self.state, metrics = self.fn(self.state, self.arrays)
    jax.block_until_ready((self.state, metrics))
    self.compile_s = time.perf_counter() - t
    self.first_step_done = time.time()
    self.runs: list[float] = []

  def measure(self, steps: int) -> float:
    dispatches = max(1, -(-steps // self.spd))
    t = time.perf_counter()
    for _ in range(dispatches):
      self.state, metrics = self.fn(self.state, self.arrays)
    jax.block_until_ready((self.state, metrics))
    rate = dispatches * self.spd / (time.perf_counter() - t)
    self.runs.append(rate)
    return rate


def run_torch(script: str, steps: int, batch: int,
              python: str = sys.executable) -> float:
  """Steps/s of the PyTorch reference (default arguments but --steps), run
  by ``python`` (an interpreter with torch)."""
  args = [python, script, "--steps", str(steps)]
  if batch != 64:  # The reference's default.
    args += ["--batch", str(batch)]
  out = subprocess.run(args, check=True, capture_output=True,
                       text=True).stdout
  match = re.search(r"torch_factorvae_step steps_per_s=([0-9.eE+-]+)(.*)",
                    out)
  if not match:
    raise RuntimeError(f"unexpected output of {script}: {out!r}")
  run_torch.info = match.group(2).strip()
  return float(match.group(1))


def _fmt(runs):
  return "[" + ",".join(f"{r:.3f}" for r in runs) + "]"


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", default=None,
                 help="config file[:variant]; default: paper architecture")
  p.add_argument("--steps", type=int, default=50,
                 help="measured steps per setting and round")
  p.add_argument("--rounds", type=int, default=3,
                 help="rounds; each times every setting once")
  p.add_argument("--impls", default=(f"{layers.DEFAULT_UPSAMPLE_IMPL}/"
                                     f"{layers.DEFAULT_DOWNSAMPLE_IMPL}"),
                 help="comma-separated upsample/downsample impl pairs, e.g. "
                      "fast/fast,conv_transpose/conv (the plain form); see "
                      "factorvae_jax/models/layers.py")
  p.add_argument("--conv_impl", default=None,
                 help="comma-separated config.model.conv_impl values to time "
                      "instead of --impls, e.g. fast,standard (one of %s "
                      "each)" % (layers.CONV_IMPLS,))
  p.add_argument("--steps_per_dispatch", default="10",
                 help="comma-separated steps per dispatch (lax.scan length)")
  p.add_argument("--data", choices=("bank", "random", "config"),
                 default="bank",
                 help="bank: %d random binary images sampled by index (as the "
                      "PyTorch reference does); random: fresh random images "
                      "each step; config: the config's dataset" % BANK_SIZE)
  p.add_argument("--torch", metavar="SCRIPT", default=None,
                 help="also time this PyTorch reference of the step (a script "
                      "printing 'torch_factorvae_step steps_per_s=<float>', "
                      "e.g. ../shared/bench/torch_factorvae_step.py for "
                      "developers of this repository)")
  p.add_argument("--torch_steps", type=int, default=None,
                 help="steps per torch run (default: --steps)")
  p.add_argument("--torch_python", default=sys.executable,
                 help="python interpreter with torch installed (default: "
                      "this one)")
  a = p.parse_args(argv)

  config = load_config(a.config)
  if a.data == "config" and "data" not in config:
    p.error("--data=config needs --config")
  batch = int(config.batch_size)
  settings = []
  first_step_done = None
  if a.conv_impl:
    forms = []
    for value in a.conv_impl.split(","):
      if value not in layers.CONV_IMPLS:
        p.error(f"--conv_impl={value}: choose from {layers.CONV_IMPLS}")
      forms.append((None, None, value))
  else:
    forms = [(up, down or layers.DEFAULT_DOWNSAMPLE_IMPL, None)
             for up, _, down in (pair.partition("/")
                                 for pair in a.impls.split(","))]
  for up, down, conv_impl in forms:
    for spd in (int(s) for s in a.steps_per_dispatch.split(",")):
      s = Setting(config, up, down, spd, a.data, conv_impl)
      if first_step_done is None:
        first_step_done = s.first_step_done
      settings.append(s)
  torch_runs = []
  use_torch = a.torch is not None
  if use_torch and not os.path.isfile(a.torch):
    p.error(f"--torch={a.torch}: no such file; give the path of the PyTorch "
            f"reference script")
  if (use_torch and a.torch_python == sys.executable and
      importlib.util.find_spec("torch") is None):
    print("# --torch: torch is not importable; skipping", flush=True)
    use_torch = False
  m = config.model
  if use_torch and (m.architecture != "paper" or m.latent_dim != 10 or
                    any(m.get(f, None) is not None for f in (
                        "encoder_channels", "encoder_kernels", "encoder_hidden",
                        "decoder_hidden", "decoder_channels", "disc_hidden",
                        "disc_layers"))):
    print("# --torch: the reference is the paper architecture with 10 "
          "latents; this config differs, so the ratio compares different "
          "models", flush=True)
  for s in settings:  # One warm-up dispatch after compiling.
    s.measure(s.spd)
    s.runs.clear()
  for r in range(a.rounds):
    line = []
    for s in settings:
      line.append(f"{s.measure(a.steps):.3f}")
    if use_torch:
      torch_runs.append(run_torch(a.torch, a.torch_steps or a.steps,
                                  batch, a.torch_python))
      line.append(f"torch {torch_runs[-1]:.3f}")
    print(f"# round {r}: " + " ".join(line), flush=True)

  for s in settings:
    med = statistics.median(s.runs)
    print(f"train_step steps_per_s={med:.3f} batch={batch} {s.name} "
          f"compile_s={s.compile_s:.1f} setup_s={s.setup_s:.1f} "
          f"rounds={len(s.runs)} "
          f"runs={_fmt(s.runs)}", flush=True)
  if use_torch:
    tmed = statistics.median(torch_runs)
    print(f"torch_reference steps_per_s={tmed:.3f} batch={batch} "
          f"{run_torch.info} rounds={len(torch_runs)} runs={_fmt(torch_runs)}")
    for s in settings:
      ratios = [x / t for x, t in zip(s.runs, torch_runs)]
      print(f"ratio_vs_torch={statistics.median(s.runs) / tmed:.3f} "
            f"{s.name} per_round_median={statistics.median(ratios):.3f}")
  peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  print(f"time_to_first_step_s={first_step_done - _PROCESS_START:.1f} "
        f"peak_rss_mb={peak_mb:.0f} jax={jax.__version__} "
        f"devices={jax.device_count()} "
        f"xla_flags={os.environ.get('XLA_FLAGS', '')!r}", flush=True)


if __name__ == "__main__":
  main()
