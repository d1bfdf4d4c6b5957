"""How close procedural dSprites is to the real images.

For every real frame in ``factorvae_jax/data/reference_dsprites/`` (see its
README), or in ``--reference_dir``, finds the procedural image of highest IoU over the whole factor grid
(737,280 images) and prints

* one line per frame: ``frame=<GIF frame> iou=<float> shape=<name>
  scale=<class> orientation=<class> position_x=<class> position_y=<class>``;
* one line per shape of the best match: ``shape=<name> frames=<int>
  median_iou=<float> p10_iou=<float> min_iou=<float>``;
* the procedural dataset's mean pixel (the mean over the full grid), the real
  dataset's mean pixel as estimated from the frames' sprite areas, and how the
  procedural mean image compares with the release notebook's density plot
  (both min-max scaled).

Takes about a minute on two CPU cores (the search renders the grid once).

Usage: python benchmarks/dsprites_fidelity.py [--reference_dir=DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from factorvae_jax.data import dsprites_reference as ref  # noqa: E402


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--reference_dir", default=ref.default_reference_dir(),
                      help="folder with the dSprites reference files")
  args = parser.parse_args()

  frames, frame_index = ref.load_reference_frames(args.reference_dir)
  start = time.time()
  iou, factors, mean_image = ref.best_matches(frames)
  seconds = time.time() - start
  names = ref.shape_names(factors)
  for k in range(len(frames)):
    print(f"frame={int(frame_index[k])} iou={iou[k]:.4f} shape={names[k]} "
          f"scale={factors[k, 1]} orientation={factors[k, 2]} "
          f"position_x={factors[k, 3]} position_y={factors[k, 4]}")
  for name, stats in ref.summarize(iou, factors).items():
    print(f"shape={name} frames={stats['frames']} "
          f"median_iou={stats['median']:.4f} p10_iou={stats['p10']:.4f} "
          f"min_iou={stats['min']:.4f}")
  print(f"procedural_mean_pixel={mean_image.mean():.5f} "
        f"real_mean_pixel_estimate="
        f"{ref.real_mean_pixel_estimate(frames, factors):.5f}")
  density = ref.compare_mean_image(mean_image,
                                   ref.load_density_plot(args.reference_dir))
  print(" ".join(f"density_{key}={value:.4f}"
                 for key, value in density.items()))
  print(f"search_seconds={seconds:.1f}")


if __name__ == "__main__":
  main()
