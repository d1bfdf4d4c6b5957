"""Images per second of evaluation's encoder, against its FLOP count.

Encodes procedural dSprites images with a config's encoder (random weights:
the cost does not depend on them) the way ``experiments.evaluate`` does,
and prints one line per chunk size and path:

    encode path=<host|device> chunk=<n> images_per_s=<float>
      mflop_per_image=<float> gflop_per_s=<float>

* ``host``: the evaluation's path. Images are rendered on the host (the
  procedural renderer's jitted program, copied out) and passed to the jitted
  mean encoder in zero-padded chunks (``encode_in_chunks``).
* ``device``: grid indices go in, and one jitted program renders and encodes
  them, so no image crosses between host and device.

FLOPs per image come from XLA's cost analysis of the compiled encoder.

Usage: python benchmarks/encode.py [--config=experiments/configs/factorvae_dsprites.py]
  [--chunks=500,2000] [--images=6000] [--rounds=2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from factorvae_jax.builder.trained_model import encode_in_chunks  # noqa: E402
from factorvae_jax.data import dsprites_procedural  # noqa: E402
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


def time_best(fn, rounds: int) -> float:
  fn()  # Compiles.
  best = float("inf")
  for _ in range(rounds):
    start = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - start)
  return best


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--config",
                      default="experiments/configs/factorvae_dsprites.py")
  parser.add_argument("--chunks", default="500,2000")
  parser.add_argument("--images", type=int, default=6000)
  parser.add_argument("--rounds", type=int, default=2)
  args = parser.parse_args()

  config = load_config(args.config)
  data = dsprites_procedural.ProceduralDSprites()
  networks = make_networks(config.model, data.observation_shape)
  params = networks.encoder.init(jax.random.PRNGKey(0),
                                 jnp.zeros((1, *data.observation_shape)))
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

  for chunk in [int(c) for c in args.chunks.split(",") if c]:
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

    for path, fn in (("host", host), ("device", device)):
      seconds = time_best(fn, args.rounds)
      rate = len(indices) / seconds
      print(f"encode path={path} chunk={chunk} images_per_s={rate:.0f} "
            f"mflop_per_image={flop / 1e6:.2f} "
            f"gflop_per_s={rate * flop / 1e9:.1f}", flush=True)


if __name__ == "__main__":
  main()
