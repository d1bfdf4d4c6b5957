"""The procedural dSprites renderer against real dSprites frames.

The real frames ship with the package, in
``factorvae_jax/data/reference_dsprites/`` (see its README). ``benchmarks/dsprites_fidelity.py`` searches the whole
factor grid; here the search is restricted to the outer ring of positions,
where the full search puts every one of these frames (the GIF traverses the
border of the position grid), which gives the same matches in a tenth of the
time.
"""


import numpy as np
import pytest

from factorvae_jax.data import dsprites_procedural as proc
from factorvae_jax.data import dsprites_reference as ref

RING = np.array([(x, y) for x in range(32) for y in range(32)
                 if min(x, y, 31 - x, 31 - y) == 0])


@pytest.fixture(scope="module")
def frames():
  return ref.load_reference_frames(ref.default_reference_dir())[0]


@pytest.fixture(scope="module")
def matches(frames):
  return ref.best_matches(frames, RING)


def test_every_shape_meets_the_iou_targets(matches):
  iou, factors, _ = matches
  summary = ref.summarize(iou, factors)
  # The reference README: 160 frames, hearts, then ellipses, then squares.
  assert {name: s["frames"] for name, s in summary.items()} == {
      "heart": 96, "ellipse": 32, "square": 32}
  np.testing.assert_array_equal(factors[:96, 0], proc.HEART)
  np.testing.assert_array_equal(factors[96:128, 0], proc.ELLIPSE)
  for name, stats in summary.items():
    assert stats["median"] >= 0.97, (name, stats)
    assert stats["p10"] >= 0.90, (name, stats)
  # Squares stay exact (one rotated frame differs by 4 pixels).
  assert summary["square"]["median"] == 1.0
  assert summary["square"]["p10"] == 1.0
  # Measured when the geometry was fitted; a drop means the renderer changed.
  assert summary["heart"]["median"] >= 0.99
  assert summary["ellipse"]["p10"] >= 0.99


def test_matched_factors_follow_the_gif_traversal(matches):
  _, factors, _ = matches
  # Frames 0..9 (GIF 0..18): the heart's scale goes up and down again at
  # orientation 0 in the top-left corner.
  np.testing.assert_array_equal(factors[:10, 1], [0, 2, 4, 5, 3, 1, 0, 2, 4, 5])
  np.testing.assert_array_equal(factors[:10, 2:], 0)
  # Frames 10..28: the largest heart turns by two orientation classes a frame.
  np.testing.assert_array_equal(factors[10:29, 2], np.arange(2, 40, 2))
  # Frames 30..44: it moves down the left edge, two position classes a frame.
  np.testing.assert_array_equal(factors[30:45, 4], np.arange(2, 31, 2))
  np.testing.assert_array_equal(factors[30:45, 3], 0)


def test_mean_pixel_and_mean_image_match_the_real_data(frames, matches):
  _, factors, mean_image = matches
  real = ref.real_mean_pixel_estimate(frames, factors)
  assert 0.042 < real < 0.045  # 0.0436 from these frames
  # The ring's mean equals the grid's (every sprite lies fully inside).
  assert mean_image.mean() == pytest.approx(real, rel=0.05)
  density = ref.load_density_plot(ref.default_reference_dir())
  full_grid_mean = proc.ProceduralDSprites().sample_observations(
      3000, np.random.RandomState(0)).mean(0)[..., 0]
  comparison = ref.compare_mean_image(full_grid_mean, density)
  assert comparison["correlation"] > 0.98, comparison
  assert comparison["mean_abs_diff"] < 0.05, comparison


def test_largest_sprites_at_orientation_0_are_the_real_frames(frames):
  # Frames 3, 99 and 131: the largest heart, ellipse and square at (0, 0).
  ours = np.asarray(proc.render_from_classes(np.array(
      [[proc.HEART, 5, 0, 0, 0], [proc.ELLIPSE, 5, 0, 0, 0],
       [proc.SQUARE, 5, 0, 0, 0]])))[..., 0]
  np.testing.assert_array_equal(ours, frames[[3, 99, 131]])


def test_search_recovers_rendered_factors_exactly():
  truth = np.array([[proc.HEART, 3, 7, 0, 5], [proc.ELLIPSE, 5, 12, 31, 30],
                    [proc.SQUARE, 0, 3, 2, 0]])
  images = np.asarray(proc.render_from_classes(truth))[..., 0]
  positions = np.array([(0, 5), (31, 30), (2, 0), (1, 1)])
  iou, factors, mean_image = ref.best_matches(images, positions,
                                              orientation_chunk=8)
  np.testing.assert_array_equal(iou, 1.0)
  np.testing.assert_array_equal(factors, truth)
  assert mean_image.shape == (64, 64)


def test_summary_and_mean_pixel_estimate_by_hand():
  iou = np.array([1.0, 0.5, 0.9, 0.8])
  factors = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [2, 1, 0, 0, 0],
                      [2, 1, 0, 0, 0]])
  summary = ref.summarize(iou, factors)
  assert summary["square"] == {"frames": 2, "median": 0.75,
                               "p10": pytest.approx(0.55), "min": 0.5}
  assert summary["heart"]["median"] == pytest.approx(0.85)
  assert "ellipse" not in summary
  # Not every (shape, scale) cell is covered: no estimate.
  frames = np.zeros((4, 64, 64), np.uint8)
  assert np.isnan(ref.real_mean_pixel_estimate(frames, factors))
  # 18 cells, cell (s, k) has one frame of area 10 * (s * 6 + k) + 10.
  cells = np.array([[s, k, 0, 0, 0] for s in range(3) for k in range(6)])
  frames = np.zeros((18, 64, 64), np.uint8)
  for n in range(18):
    frames[n].reshape(-1)[:10 * n + 10] = 1
  assert ref.real_mean_pixel_estimate(frames, cells) == pytest.approx(
      95.0 / 4096)


def test_missing_or_malformed_reference_files_name_the_path(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    ref.load_reference_frames(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="density"):
    ref.load_density_plot(str(tmp_path))
  np.savez(tmp_path / ref.FRAMES_FILENAME, frames=np.full((2, 64, 64), 3))
  with pytest.raises(ValueError, match="frame_index"):
    ref.load_reference_frames(str(tmp_path))
  np.savez(tmp_path / ref.FRAMES_FILENAME, frames=np.full((2, 64, 64), 3),
           frame_index=np.arange(2))
  with pytest.raises(ValueError, match="binary"):
    ref.load_reference_frames(str(tmp_path))
