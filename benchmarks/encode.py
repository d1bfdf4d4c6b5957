"""Images per second of evaluation's encoder, against its FLOP count.

Encodes procedural dSprites images with a config's encoder (random weights:
the cost does not depend on them) the way ``experiments.evaluate`` does,
and prints one line per round, chunk size and path, then the best round of
each:

    encode path=<host|device> chunk=<n> round=<r> images_per_s=<float>
      mflop_per_image=<float> gflop_per_s=<float>
    encode path=<host|device> chunk=<n> best_images_per_s=<float> ...

* ``evaluation``: exactly what ``experiments.evaluate`` runs
  (``evaluation.make_representation_fn``: numpy images in, numpy codes out,
  chunks of 500 whose convolutions run in blocks of
  ``trained_model.encode_block_size()`` images inside one program on a
  CPU), on images rendered on the host beforehand (as the PyTorch anchor
  encodes a batch already in memory; rendering is the dataset's cost, not
  the encoder's). Its rate is what ``--torch`` compares.
* ``host``: images rendered on the host (the procedural renderer's jitted
  program, copied out) and passed to the jitted mean encoder, whole chunks
  at once, in zero-padded chunks (``encode_in_chunks``).
* ``device``: grid indices go in, and one jitted program renders and encodes
  them, so no image crosses between host and device.

FLOPs per image come from XLA's cost analysis of the compiled encoder.

``--torch=PATH`` runs a PyTorch anchor script (the repository does not ship
one; ``../shared/bench/torch_encoder_throughput.py`` in our workspace times
the same paper encoder in PyTorch eager) in a subprocess after each of our
rounds, with ``--batch`` = 500 (the evaluation's chunk) and ``--images``,
so both see the same background load, and prints its line

    torch path=<PATH> round=<r> images_per_s=<float> ...

and at the end the median of the per-round ratios of our evaluation path
to it.
``--torch_python`` is the interpreter that has torch (default: this one).

``--blocks=10,25,0`` also times the evaluation path with each block size
(0: the whole chunk at once), round by round beside the others, and says
whether its codes are bitwise those of the whole chunk:

    encode path=evaluation chunk=500 round=<r> images_per_s=<float>
      block=<n|whole> bitwise_equal_to_whole=<bool>

``--architecture=dlib --channels=3 --chunks=`` builds another encoder on
3-channel images (dSprites repeated; only the evaluation path runs).

Usage: python benchmarks/encode.py [--config=experiments/configs/factorvae_dsprites.py]
  [--chunks=500,2000] [--images=6000] [--rounds=2]
  [--torch=PATH [--torch_python=python]] [--blocks=10,25,0]
  [--architecture=dlib] [--channels=3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from factorvae_jax.builder import trained_model  # noqa: E402
from factorvae_jax.builder.trained_model import encode_in_chunks  # noqa: E402
from factorvae_jax.data import dsprites_procedural  # noqa: E402
from factorvae_jax.evaluation import evaluate  # noqa: E402
from factorvae_jax.models import make_networks  # noqa: E402


def load_config(path: str):
  spec = importlib.util.spec_from_file_location("benchmark_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def flops_of(compiled) -> float:
  """Total FLOPs XLA counts for one call of a compiled function."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # Older JAX: one dict per device.
    analysis = analysis[0]
  return float(analysis.get("flops", float("nan")))


def run_torch(python: str, script: str, batch: int, images: int) -> tuple:
  """Runs the PyTorch anchor; returns (its images/s, its output line)."""
  result = subprocess.run(
      [python, script, "--batch", str(batch), "--images", str(images)],
      capture_output=True, text=True, check=True)
  line = result.stdout.strip().splitlines()[-1]
  match = re.search(r"images_per_s=([0-9.]+)", line)
  if not match:
    raise RuntimeError(f"the PyTorch script printed no images_per_s: {line!r}")
  return float(match.group(1)), line


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config",
                      default="experiments/configs/factorvae_dsprites.py")
  parser.add_argument("--chunks", default="500,2000")
  parser.add_argument("--images", type=int, default=6000)
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--torch", default="",
                      help="path of a PyTorch encoder-throughput script to "
                      "time beside ours (round by round)")
  parser.add_argument("--torch_python", default=sys.executable,
                      help="python interpreter with torch installed")
  parser.add_argument("--blocks", default="",
                      help="comma-separated block sizes (0: the whole chunk) "
                      "to time the evaluation path with, each checked "
                      "bitwise against the whole chunk")
  parser.add_argument("--architecture", default="",
                      help="config.model.architecture to build (e.g. dlib)")
  parser.add_argument("--channels", type=int, default=1,
                      help="image channels (dSprites repeated); more than 1 "
                      "needs --chunks= (the evaluation path only)")
  args = parser.parse_args()
  if args.channels != 1 and args.chunks:
    parser.error("--channels needs --chunks= (the host and device paths "
                 "render 1-channel dSprites)")

  config = load_config(args.config)
  if args.architecture:
    config.model.architecture = args.architecture
  data = dsprites_procedural.ProceduralDSprites()
  shape = (*data.observation_shape[:2], args.channels)
  networks = make_networks(config.model, shape)
  params = networks.encoder.init(jax.random.PRNGKey(0),
                                 jnp.zeros((1, *shape)))
  indices = np.random.RandomState(0).randint(data.num_observations,
                                             size=args.images)
  print(f"# device: {jax.devices()[0].device_kind} ({jax.default_backend()}); "
        f"images: {args.images}; cpus: {os.cpu_count()}; load average: "
        f"{os.getloadavg()[0]:.1f}")

  encode = jax.jit(lambda p, x: networks.encoder.apply(p, x)[0])

  @jax.jit
  def render_and_encode(p, flat):
    factors = jnp.stack(jnp.unravel_index(flat, tuple(
        int(n) for n in data.factors_num_values)), axis=1)
    images = dsprites_procedural.render_from_classes(factors)
    return networks.encoder.apply(p, images)[0]

  chunks = [int(c) for c in args.chunks.split(",") if c]
  paths = {}
  represent = evaluate.make_representation_fn(networks.encoder, params)

  observations = np.repeat(data.observations_at(indices), args.channels, -1)
  blocks = {int(b): evaluate.make_representation_fn(
      networks.encoder, params, block=int(b) or None)
            for b in args.blocks.split(",") if b}
  if blocks:
    whole = evaluate.make_representation_fn(networks.encoder, params,
                                            block=None)(observations)
    same = {b: bool(np.array_equal(fn(observations), whole))
            for b, fn in blocks.items()}

  def evaluation_path():
    represent(observations)

  evaluation_path()  # Compiles.
  evaluation_flop = flops_of(encode.lower(
      params, jnp.zeros((500, *shape))).compile()) / 500
  for chunk in chunks:
    x = jnp.zeros((chunk, *data.observation_shape))
    flop = flops_of(encode.lower(params, x).compile()) / chunk

    def host(chunk=chunk):
      encode_in_chunks(encode, params, data.observations_at(indices), chunk)

    padded = np.zeros(-(-len(indices) // chunk) * chunk, np.int64)
    padded[:len(indices)] = indices

    def device(chunk=chunk, padded=padded):
      for start in range(0, len(padded), chunk):
        out = render_and_encode(params, padded[start:start + chunk])
      jax.block_until_ready(out)

    paths[chunk] = (flop, (("host", host), ("device", device)))
    host()  # Compiles.
    device()

  ratios = []
  best = {}
  for r in range(args.rounds):
    start = time.perf_counter()
    evaluation_path()
    ours = len(indices) / (time.perf_counter() - start)
    best[("evaluation", 500)] = max(best.get(("evaluation", 500), 0.0), ours)
    print(f"encode path=evaluation chunk=500 round={r} images_per_s={ours:.0f} "
          f"block={trained_model.encode_block_size()} "
          f"gflop_per_s={ours * evaluation_flop / 1e9:.1f}", flush=True)
    for b, fn in blocks.items():
      start = time.perf_counter()
      fn(observations)
      rate = len(indices) / (time.perf_counter() - start)
      best[("evaluation", 500, b)] = max(
          best.get(("evaluation", 500, b), 0.0), rate)
      print(f"encode path=evaluation chunk=500 round={r} "
            f"images_per_s={rate:.0f} block={b or 'whole'} "
            f"bitwise_equal_to_whole={same[b]}", flush=True)
    for chunk in chunks:
      flop, fns = paths[chunk]
      for path, fn in fns:
        start = time.perf_counter()
        fn()
        rate = len(indices) / (time.perf_counter() - start)
        best[(path, chunk)] = max(best.get((path, chunk), 0.0), rate)
        print(f"encode path={path} chunk={chunk} round={r} "
              f"images_per_s={rate:.0f} mflop_per_image={flop / 1e6:.2f} "
              f"gflop_per_s={rate * flop / 1e9:.1f}", flush=True)
    if args.torch:
      torch_rate, line = run_torch(args.torch_python, args.torch, 500,
                                   args.images)
      ratios.append(ours / torch_rate)
      print(f"torch path={args.torch} round={r} {line}", flush=True)
  for key, rate in best.items():
    path, chunk = key[:2]
    flop = evaluation_flop if path == "evaluation" else paths[chunk][0]
    block = f" block={key[2] or 'whole'}" if len(key) > 2 else ""
    print(f"encode path={path} chunk={chunk}{block} "
          f"best_images_per_s={rate:.0f} "
          f"gflop_per_s={rate * flop / 1e9:.1f}")
  if ratios:
    print(f"encode_vs_torch chunk=500 median_ratio="
          f"{float(np.median(ratios)):.2f} ratios="
          + ",".join(f"{v:.2f}" for v in ratios)
          + f" load={os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
  main()
