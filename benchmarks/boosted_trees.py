"""DCI's boosted trees: time of each backend, and equality with sklearn.

Two parts, each optional:

* ``--time``: fits DCI's classifiers (one ``GradientBoostingClassifier()``
  per factor, sklearn's defaults) at disentanglement_lib's sizes (10,000
  training and 5,000 test points, ``--codes`` Gaussian codes, dSprites'
  factors of 3, 6, 40, 32 and 32 classes, each a noisy function of the
  codes) with every backend in ``--backends``, one after the other,
  ``--rounds`` times, and prints per fit

      boosted_trees backend=<name> round=<r> seconds=<float> load=<float>

  (the numba backend's first fit in a fresh environment includes its
  compilation; ``--warmup`` runs a small fit first so it does not). sklearn
  runs its per-factor fits in ``--n_jobs`` processes, as DCI does.

* ``--seeds=N``: on ``--equality_shape`` data (default issue 24's case: 2000
  Gaussian points, 10 codes, factors of 3/5/2/4 classes; at stage 0 each
  class has two gradient values, so equally good splits are common), fits
  sklearn and the numba backend (and ``--jax`` the JAX port) for seeds
  0..N-1 (data seed = ``random_state``), and prints per seed the largest
  importance difference and whether the accuracies are equal, then

      equality backend=<name> seeds=<N> max_importance_gap=<float>
        max_accuracy_gap=<float> seeds_all_equal=<int>

  and, for scale, sklearn's own spread: the largest importance difference
  between ``random_state=seed`` and ``random_state=seed + 1000`` on the same
  data.

Usage: python benchmarks/boosted_trees.py [--time] [--seeds=20]
  [--backends=numba,sklearn] [--rounds=1] [--n_jobs=-1] [--jax]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from factorvae_jax.metrics import supervised  # noqa: E402

DSPRITES_CLASSES = (3, 6, 40, 32, 32)


def make_problem(seed, num_train, num_test, num_codes, classes):
  """Gaussian codes; each factor a quantised noisy projection of them."""
  rs = np.random.RandomState(seed)
  x = rs.randn(num_train + num_test, num_codes).astype(np.float32)
  factors = []
  for k in classes:
    z = x @ rs.randn(num_codes) + 0.5 * rs.randn(len(x))
    edges = np.quantile(z[:num_train], np.linspace(0, 1, k + 1)[1:-1])
    factors.append(np.digitize(z, edges))
  y = np.stack(factors, axis=1)
  return x[:num_train], y[:num_train], x[num_train:], y[num_train:]


def time_backends(args):
  problem = make_problem(0, 10000, 5000, args.codes, DSPRITES_CLASSES)
  backends = [b for b in args.backends.split(",") if b]
  if args.warmup and "numba" in backends:
    small = make_problem(1, 200, 50, args.codes, (3, 2))
    supervised.dci_importance_matrix(*small, backend="numba", random_state=0)
  results = {}
  for r in range(args.rounds):
    for backend in backends:
      start = time.perf_counter()
      results[backend] = supervised.dci_importance_matrix(
          *problem, n_jobs=args.n_jobs, random_state=0, backend=backend)
      seconds = time.perf_counter() - start
      print(f"boosted_trees backend={backend} round={r} seconds={seconds:.2f} "
            f"load={os.getloadavg()[0]:.1f}", flush=True)
  if "sklearn" in results:
    for backend, result in results.items():
      if backend != "sklearn":
        ref = results["sklearn"]
        print(f"# {backend} vs sklearn at dlib's sizes: importance gap "
              f"{np.abs(result[0] - ref[0]).max():.3g}, train accuracy gap "
              f"{np.abs(result[1] - ref[1]).max():.3g}, test accuracy gap "
              f"{np.abs(result[2] - ref[2]).max():.3g}")


def check_equality(args):
  num_train, num_codes, *classes = (
      int(v) for v in args.equality_shape.split(","))
  backends = ["numba"] + (["jax"] if args.jax else [])
  gaps = {b: [] for b in backends}
  acc_gaps = {b: [] for b in backends}
  spread = []
  for seed in range(args.seeds):
    problem = make_problem(seed, num_train, 500, num_codes, classes)
    ref = supervised.dci_importance_matrix(*problem, n_jobs=args.n_jobs,
                                           random_state=seed,
                                           backend="sklearn")
    other = supervised.dci_importance_matrix(*problem, n_jobs=args.n_jobs,
                                             random_state=seed + 1000,
                                             backend="sklearn")
    spread.append(np.abs(other[0] - ref[0]).max())
    line = [f"seed={seed} sklearn_spread={spread[-1]:.3g}"]
    for backend in backends:
      ours = supervised.dci_importance_matrix(*problem, random_state=seed,
                                              backend=backend)
      gaps[backend].append(np.abs(ours[0] - ref[0]).max())
      acc_gaps[backend].append(max(np.abs(ours[1] - ref[1]).max(),
                                   np.abs(ours[2] - ref[2]).max()))
      line.append(f"{backend}_importance_gap={gaps[backend][-1]:.3g} "
                  f"{backend}_accuracy_gap={acc_gaps[backend][-1]:.3g}")
    print(" ".join(line), flush=True)
  for backend in backends:
    equal = sum(g == 0 and a == 0
                for g, a in zip(gaps[backend], acc_gaps[backend]))
    print(f"equality backend={backend} seeds={args.seeds} "
          f"max_importance_gap={max(gaps[backend]):.3g} "
          f"max_accuracy_gap={max(acc_gaps[backend]):.3g} "
          f"seeds_all_equal={equal}")
  print(f"equality sklearn_random_state_spread seeds={args.seeds} "
        f"max_importance_gap={max(spread):.3g} "
        f"median_importance_gap={np.median(spread):.3g}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--time", action="store_true")
  parser.add_argument("--backends", default="numba,sklearn")
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--codes", type=int, default=10)
  parser.add_argument("--n_jobs", type=int, default=-1)
  parser.add_argument("--warmup", type=int, choices=(0, 1), default=1)
  parser.add_argument("--seeds", type=int, default=0)
  parser.add_argument("--equality_shape", default="2000,10,3,5,2,4",
                      help="num_train,num_codes,classes...")
  parser.add_argument("--jax", action="store_true",
                      help="also compare the JAX port in --seeds")
  args = parser.parse_args()
  print(f"# cpus: {os.cpu_count()}; load average: "
        f"{os.getloadavg()[0]:.1f}", flush=True)
  if args.time:
    time_backends(args)
  if args.seeds:
    check_equality(args)


if __name__ == "__main__":
  main()
