"""Wall time of the full metric suite on a 10-code representation of dSprites.

Runs ``factorvae_jax.metrics.evaluate_representation`` at disentanglement_lib's
study sizes (``--sizes=default``, ~2.9M observations rendered and encoded) or
at ``CHEAP_SIZES``, once per DCI backend (``--dci_backends=numba,sklearn``), and
prints one line per stage, ``dci_backend=<b> metric=<name> seconds=<float>``
(``sample_pool`` is drawing and encoding the samples the array-level metrics
share), the scores on lines starting with ``#``, the largest difference
between each backend's DCI scores and sklearn's (when sklearn runs too), and
last one line per backend:

    metrics_suite dci_backend=<numba|jax|sklearn|auto> total_s=<float>
      dci_s=<float>

The JAX backend's time includes compiling its program (once per process and
input shape); the numba backend's includes loading its compiled kernel from
numba's disk cache (``--warmup=1``, the default, fits a tiny DCI first so a
fresh environment's one-off compilation is not counted).

The dataset is the procedural dSprites renderer when it imports; otherwise a
stand-in with dSprites' factor sizes whose observations are the factor
classes. The representation is cheap on purpose, so the timing is the
metrics' own cost plus rendering: ten image statistics (mass, centroid,
second moments and four fixed random projections) for dSprites, or a fixed
random linear map of the factors plus noise for the stand-in.

With ``--cache_codes=1`` (the default, as ``experiments.evaluate`` runs)
every distinct dSprites image is rendered and encoded once
(``metrics.CodeCache``); ``--cache_codes=0`` renders and encodes every draw,
as disentanglement_lib does. A line per backend gives the number of
observations the representation encoded.

Usage: python benchmarks/metrics.py [--sizes=default|cheap] [--n_jobs=-1]
  [--dci_backends=numba,sklearn] [--cache_codes=1|0] [--warmup=1|0]
  [--metrics=mig,dci,...]  (default: every metric of the suite)
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from factorvae_jax import metrics  # noqa: E402

DSPRITES_FACTOR_SIZES = (3, 6, 40, 32, 32)


def make_procedural_dsprites():
  """Returns (dataset, representation_fn, description) for dSprites images."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  # Imported here so that a missing or broken renderer falls back cleanly.
  from factorvae_jax.data.dsprites_procedural import ProceduralDSprites
  data = ProceduralDSprites()
  height, width, _ = data.observation_shape
  # Integer pixel coordinates and integer projection weights: the images are
  # 0/1, so every sum below is an integer under 2**24 and exact in float32
  # whatever order the matmul adds in. The codes then do not depend on how
  # the observations are batched, and the scores with and without
  # --cache_codes are identical.
  ys, xs = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  xs, ys = xs.reshape(-1), ys.reshape(-1)
  projections = np.random.RandomState(0).randint(-8, 9, (height * width, 4))
  weights = np.concatenate(
      [np.stack([np.ones_like(xs), xs, ys, xs * xs, ys * ys, xs * ys], 1),
       projections], axis=1).astype(np.float32)
  scale = np.array([1, width - 1, height - 1, (width - 1) ** 2,
                    (height - 1) ** 2, (width - 1) * (height - 1), 8 * height,
                    8 * height, 8 * height, 8 * height], np.float32)

  def representation_fn(observations):
    raw = (observations.reshape(len(observations), -1) @ weights) / scale
    mass = np.maximum(raw[:, :1], 1.0)
    cx, cy = raw[:, 1] / mass[:, 0], raw[:, 2] / mass[:, 0]
    moments = raw[:, 3:6] / mass - np.stack([cx * cx, cy * cy, cx * cy], 1)
    return np.concatenate(
        [raw[:, :1] / (height * width), cx[:, None], cy[:, None], moments,
         raw[:, 6:]], axis=1)

  return data, representation_fn, data.source


def make_stand_in():
  """Returns (dataset, representation_fn, description) without images."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  from factorvae_jax.data.ground_truth import GroundTruthData

  class FactorsAsObservations(GroundTruthData):
    factor_names = ("shape", "scale", "orientation", "position_x",
                    "position_y")
    factors_num_values = DSPRITES_FACTOR_SIZES
    observation_shape = (1, 1, len(DSPRITES_FACTOR_SIZES))
    source = "stand-in: dSprites factor sizes, observations = factors"

    def sample_observations_from_factors(self, factors, random_state):
      values = np.asarray(factors, np.float32) / (
          np.array(self.factors_num_values, np.float32) - 1)
      return values.reshape(len(values), *self.observation_shape)

    def sample_device_batch(self, arrays, key, batch_size):
      raise NotImplementedError("the benchmark stand-in samples on the host")

  data = FactorsAsObservations()
  mixing = np.random.RandomState(0).randn(len(DSPRITES_FACTOR_SIZES), 10)
  noise = np.random.RandomState(1)

  def representation_fn(observations):
    values = observations.reshape(len(observations), -1)
    return values @ mixing + 0.05 * noise.randn(len(values), 10)

  return data, representation_fn, data.source


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", choices=("default", "cheap"),
                      default="default")
  parser.add_argument("--n_jobs", type=int, default=-1)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--dci_backends", default="numba,sklearn",
                      help="comma-separated DCI backends to time, in order")
  parser.add_argument("--cache_codes", type=int, choices=(0, 1), default=1,
                      help="encode each distinct image once (1) or every "
                      "draw (0)")
  parser.add_argument("--warmup", type=int, choices=(0, 1), default=1,
                      help="fit a tiny DCI with each backend first (numba "
                      "compiles once per environment, JAX once per process)")
  parser.add_argument("--metrics", default="",
                      help="comma-separated subset of the suite's metrics "
                      "(default: all of metrics.ALL_METRICS)")
  parser.add_argument("--stand_in", action="store_true",
                      help="skip the dSprites renderer even if it imports")
  args = parser.parse_args()
  backends = [b for b in args.dci_backends.split(",") if b]
  for backend in backends:
    metrics.check_dci_backend(backend)

  try:
    if args.stand_in:
      raise RuntimeError("--stand_in given")
    data, representation_fn, description = make_procedural_dsprites()
  except Exception as error:  # noqa: BLE001  Any renderer failure: fall back.
    print(f"# procedural dSprites unavailable ({error!r}); using the stand-in")
    data, representation_fn, description = make_stand_in()
  print(f"# data: {description}; sizes: {args.sizes}; n_jobs: {args.n_jobs}; "
        f"cpus: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}; "
        f"cache_codes: {bool(args.cache_codes)}")

  if args.warmup:
    rs = np.random.RandomState(0)
    codes = rs.randn(60, 3)
    factors = np.stack([np.arange(60) % 3, np.arange(60) % 2], axis=1)
    for backend in backends:
      metrics.dci(codes[:40], factors[:40], codes[40:], factors[40:],
                  backend=backend, random_state=0)

  summaries, dci_scores = [], {}
  for backend in backends:
    stages = {}

    def on_progress(stage, seconds, backend=backend, stages=stages):
      stages[stage] = seconds
      print(f"dci_backend={backend} metric={stage} seconds={seconds:.2f}",
            flush=True)

    encoded = [0]

    def counted(observations, encoded=encoded):
      encoded[0] += len(observations)
      return representation_fn(observations)

    start = time.perf_counter()
    results = metrics.evaluate_representation(
        data, counted, random_state=args.seed,
        sizes=metrics.CHEAP_SIZES if args.sizes == "cheap" else None,
        on_progress=on_progress, n_jobs=args.n_jobs, dci_backend=backend,
        cache_codes=bool(args.cache_codes),
        metrics=[m for m in args.metrics.split(",") if m] or None)
    total = time.perf_counter() - start
    print(f"dci_backend={backend} metric=total seconds={total:.2f}")
    print(f"dci_backend={backend} observations_encoded={encoded[0]} "
          f"cache_codes={results['settings/cache_codes']}")
    for key, value in results.items():
      if not key.startswith("settings/") and not isinstance(value, bool):
        print(f"# dci_backend={backend} {key} = {value:.4f}")
    dci_scores[backend] = {k: v for k, v in results.items()
                           if k.startswith("dci/")}
    summaries.append(f"metrics_suite dci_backend={backend} "
                     f"total_s={total:.2f} dci_s={stages.get('dci', 0.0):.2f}")
  if "sklearn" in dci_scores:
    reference = dci_scores["sklearn"]
    for backend, scores in dci_scores.items():
      if backend != "sklearn":
        print(f"# largest difference between {backend}'s and sklearn's DCI "
              f"scores: "
              f"{max(abs(scores[k] - reference[k]) for k in reference):.2e}")
  for line in summaries:
    print(line)


if __name__ == "__main__":
  main()
