"""Tests of the procedural dSprites renderer and its dataset class."""

import functools

import jax
import numpy as np
import pytest

from factorvae_jax.data import dsprites_procedural as proc
from factorvae_jax.data import ground_truth

SQUARE, ELLIPSE, HEART = proc.SQUARE, proc.ELLIPSE, proc.HEART
MAX_SCALE = 5  # class of scale 1.0


@pytest.fixture(scope="module")
def dataset():
  return proc.ProceduralDSprites()


def draw(dataset, factors):
  """Renders factor classes given as a list of 5-tuples -> [N, 64, 64]."""
  return dataset.sample_observations_from_factors(np.array(factors), 0)[..., 0]


def centroid(image):
  """(x, y) centre of mass in pixel units (pixel j covers [j, j+1])."""
  rows, cols = np.nonzero(image)
  return cols.mean() + 0.5, rows.mean() + 0.5


def test_images_are_binary_float32_with_the_official_grid(dataset):
  factors = dataset.sample_factors(50, np.random.RandomState(0))
  images = dataset.sample_observations_from_factors(factors, 0)
  assert images.shape == (50, 64, 64, 1)
  assert images.dtype == np.float32
  assert set(np.unique(images)) <= {0.0, 1.0}
  assert images.reshape(50, -1).sum(1).min() > 0  # every sprite is visible
  assert dataset.factors_num_values == (3, 6, 40, 32, 32)
  assert dataset.num_images == 737280
  assert "procedural" in dataset.source and "not the official" in dataset.source
  assert dataset.describe()["source"] == dataset.source


def test_rendering_is_deterministic_and_chunking_does_not_matter(dataset):
  factors = dataset.sample_factors(37, np.random.RandomState(1))
  small_chunks = proc.ProceduralDSprites(chunk_size=8)
  first = dataset.sample_observations_from_factors(factors, 0)
  np.testing.assert_array_equal(
      first, dataset.sample_observations_from_factors(factors, 123))
  np.testing.assert_array_equal(
      first, small_chunks.sample_observations_from_factors(factors, 0))


def test_render_of_values_is_jittable_and_matches_the_class_api(dataset):
  factors = np.array([[HEART, 3, 7, 5, 20], [ELLIPSE, 0, 30, 31, 0]])
  values = [np.asarray(v) for v in proc.factor_classes_to_values(factors)]
  direct = jax.jit(proc.render)(*values)
  assert direct.shape == (2, 64, 64, 1) and direct.dtype == np.float32
  np.testing.assert_array_equal(
      np.asarray(direct), dataset.sample_observations_from_factors(factors, 0))


def test_moving_position_x_moves_the_centroid_right_monotonically(dataset):
  xs = [centroid(im)[0] for im in draw(
      dataset, [(SQUARE, 2, 0, px, 10) for px in range(32)])]
  assert np.all(np.diff(xs) > 0)


def test_moving_position_y_moves_the_centroid_down_monotonically(dataset):
  ys = [centroid(im)[1] for im in draw(
      dataset, [(HEART, 2, 0, 10, py) for py in range(32)])]
  assert np.all(np.diff(ys) > 0)


@pytest.mark.parametrize("shape", [SQUARE, ELLIPSE, HEART])
def test_area_grows_strictly_with_scale(dataset, shape):
  areas = draw(dataset, [(shape, s, 4, 16, 16) for s in range(6)]).sum((1, 2))
  assert np.all(np.diff(areas) > 0)


def test_the_three_shapes_differ_and_have_their_symmetries(dataset):
  square, ellipse, heart = draw(
      dataset, [(shape, MAX_SCALE, 0, 16, 16) for shape in range(3)])
  assert not np.array_equal(square, ellipse)
  assert not np.array_equal(square, heart)
  assert not np.array_equal(ellipse, heart)
  # Ellipse: major axis horizontal at orientation 0, aspect ratio ~2.
  rows, cols = np.nonzero(ellipse)
  width, height = np.ptp(cols) + 1, np.ptp(rows) + 1
  assert 1.6 < width / height < 2.4
  # Heart: left-right symmetric, tip at the bottom (more mass above centre).
  rows, cols = np.nonzero(heart)
  top_half = np.sum(rows < rows.mean())
  assert top_half > np.sum(rows > rows.mean())
  per_row_width = [np.ptp(cols[rows == r]) for r in np.unique(rows)]
  assert np.argmax(per_row_width) < len(per_row_width) / 2  # widest near top
  assert per_row_width[-1] <= 2  # pointed tip


def test_heart_is_mirror_symmetric_when_centred_on_the_pixel_grid():
  # x = 32 exactly: pixel centres are symmetric about the sprite centre.
  image = np.asarray(proc.render(HEART, 1.0, 0.0, 0.5, 0.5))[0, ..., 0]
  np.testing.assert_array_equal(image, image[:, ::-1])
  assert not np.array_equal(image, image[::-1, :])


def test_rotation_by_two_pi_equals_no_rotation(dataset):
  for shape in range(3):
    first, last = draw(dataset, [(shape, 4, 0, 9, 21), (shape, 4, 39, 9, 21)])
    np.testing.assert_array_equal(first, last)


def test_square_rotated_by_quarter_turn_equals_itself():
  pos = np.float32(0.5)
  upright, quarter = np.asarray(
      proc.render(SQUARE, 0.8, np.array([0.0, np.pi / 2]), pos, pos))
  np.testing.assert_array_equal(upright, quarter)
  tilted = np.asarray(proc.render(SQUARE, 0.8, np.pi / 4, pos, pos))[0]
  assert not np.array_equal(upright, tilted)


def test_rotation_is_counter_clockwise_about_the_sprite_centre(dataset):
  # Orientation class 5 is ~0.81 rad: the ellipse's major axis must point
  # up-right as displayed, i.e. columns right of centre have smaller rows.
  ellipse = draw(dataset, [(ELLIPSE, MAX_SCALE, 5, 16, 16)])[0]
  rows, cols = np.nonzero(ellipse)
  assert np.mean((cols - cols.mean()) * (rows.mean() - rows)) > 0
  # Centrally symmetric sprites keep their centroid while rotating.
  for shape in (SQUARE, ELLIPSE):
    centres = np.array([centroid(im) for im in draw(
        dataset, [(shape, MAX_SCALE, o, 7, 23) for o in range(0, 40, 3)])])
    assert np.ptp(centres, axis=0).max() < 0.5


def test_geometry_matches_the_real_dsprites_layout(dataset):
  # Scale-1 square: about 0.3 of the image wide (1/4..1/3 in the real set).
  square = draw(dataset, [(SQUARE, MAX_SCALE, 0, 0, 0)])[0]
  cols = np.nonzero(square.any(0))[0]
  assert 16 <= len(cols) <= 22
  # The centre sweeps the central half of the canvas.
  left, right = draw(dataset, [(SQUARE, MAX_SCALE, 0, 0, 0),
                               (SQUARE, MAX_SCALE, 0, 31, 31)])
  assert centroid(left) == pytest.approx((16.0, 16.0), abs=0.6)
  assert centroid(right) == pytest.approx((48.0, 48.0), abs=0.6)


def test_largest_sprites_stay_inside_with_a_margin(dataset):
  corners = [(0, 0), (0, 31), (31, 0), (31, 31)]
  factors = [(shape, MAX_SCALE, o, px, py) for shape in range(3)
             for o in range(40) for px, py in corners]
  images = draw(dataset, factors)
  border = np.ones((64, 64), bool)
  border[2:-2, 2:-2] = False
  assert not images[:, border].any()


def test_device_sampler_matches_the_numpy_api(dataset):
  key = jax.random.PRNGKey(3)
  assert dataset.device_arrays() == {}
  sample = jax.jit(functools.partial(dataset.sample_device_batch,
                                     batch_size=16))
  batch = np.asarray(sample({}, key))
  assert batch.shape == (16, 64, 64, 1) and batch.dtype == np.float32
  index = np.asarray(ground_truth.sample_uniform_indices(key, 16,
                                                         dataset.num_images))
  factors = dataset.index_to_factors(index)
  np.testing.assert_array_equal(
      batch, dataset.sample_observations_from_factors(factors, 0))
  np.testing.assert_array_equal(batch, np.asarray(sample({}, key)))


def test_bad_factors_are_rejected(dataset):
  with pytest.raises(ValueError, match="outside"):
    dataset.sample_observations_from_factors(np.array([[3, 0, 0, 0, 0]]), 0)


@pytest.mark.parametrize("shape, area, rows, cols", [
    # Read off the real frames (factorvae_jax/data/reference_dsprites): the
    # largest sprites at orientation 0, position (0, 0), centre (16, 16).
    (SQUARE, 400, (6, 25), (6, 25)),
    (ELLIPSE, 288, (9, 22), (3, 28)),
    (HEART, 222, (7, 23), (6, 25)),
])
def test_largest_sprites_have_the_real_size(dataset, shape, area, rows,
                                            cols):
  image = draw(dataset, [(shape, MAX_SCALE, 0, 0, 0)])[0]
  found_rows, found_cols = np.nonzero(image)
  assert image.sum() == area
  assert (found_rows.min(), found_rows.max()) == rows
  assert (found_cols.min(), found_cols.max()) == cols


def test_heart_has_the_real_notch_and_tip(dataset):
  heart = draw(dataset, [(HEART, MAX_SCALE, 0, 0, 0)])[0]
  # Top row: two lobes of 5 pixels with a 4-pixel notch (cols 14..17).
  np.testing.assert_array_equal(np.nonzero(heart[7])[0],
                                [9, 10, 11, 12, 13, 18, 19, 20, 21, 22])
  # Rows 17..23 narrow by one pixel a side per row down to a 2-pixel tip.
  widths = heart[17:24].sum(1)
  np.testing.assert_array_equal(widths, [14, 12, 10, 8, 6, 4, 2])
