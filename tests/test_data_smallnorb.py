"""Tests of the SmallNORB loader on tiny files in the official NORB format.

Reduced grid: 2 categories x 2 instances x 2 elevations x 2 azimuths x 2
lightings; instance 0 is in the training part, instance 1 in the testing part
(as the official parts split the instances). Every left image is constant, so
its 64 x 64 resize is the same constant, which encodes the image's factors.
"""

import gzip
import os

import numpy as np
import pytest

from factorvae_jax.data import smallnorb

SIZES = (2, 2, 2, 2, 2)  # category, instance, elevation, azimuth, lighting


def value(category, instance, elevation, azimuth, lighting):
  return 100 + 64 * category + 32 * instance + 8 * elevation + 2 * azimuth + (
      lighting)


def write_matrix(path, array, magic=None, gz=False):
  """NORB format: int32 magic, int32 ndim, max(3, ndim) int32 sizes, data."""
  array = np.asarray(array)
  if magic is None:
    magic = 507333717 if array.dtype == np.uint8 else 507333716
  dims = list(array.shape) + [1] * (3 - array.ndim)
  header = np.array([magic, array.ndim] + dims, "<i4").tobytes()
  data = header + array.astype("<i4" if array.dtype != np.uint8 else
                               np.uint8).tobytes()
  opener = gzip.open if gz else open
  with opener(str(path) + (".gz" if gz else ""), "wb") as f:
    f.write(data)


def part_rows(instance):
  """The rows of one part (its instance), in a scrambled order."""
  rows = np.array([(c, instance, e, a, l) for c in range(2) for e in range(2)
                   for a in range(2) for l in range(2)])
  return rows[np.random.RandomState(instance).permutation(len(rows))]


def write_files(directory, gz_part=None):
  for part, instance in zip(smallnorb.PARTS, (0, 1)):
    rows = part_rows(instance)
    dat = np.zeros((len(rows), 2, 96, 96), np.uint8)
    for i, row in enumerate(rows):
      dat[i, 0] = value(*row)
      dat[i, 1] = 7  # the right camera, never used
    info = np.stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]], 1)
    gz = part == gz_part
    write_matrix(directory / smallnorb.file_name(part, "dat"), dat, gz=gz)
    write_matrix(directory / smallnorb.file_name(part, "cat"),
                 rows[:, 0].astype(np.int32), gz=gz)
    write_matrix(directory / smallnorb.file_name(part, "info"),
                 info.astype(np.int32), gz=gz)
  return str(directory)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
  directory = write_files(tmp_path_factory.mktemp("norb"),
                          gz_part=smallnorb.PARTS[1])
  with pytest.warns(UserWarning, match="differ from the official"):
    return smallnorb.SmallNORB.from_mat(directory)


def test_factors_are_dlibs_with_the_instance_as_nuisance(dataset):
  assert dataset.factor_names == ("category", "elevation", "azimuth",
                                  "lighting")
  assert dataset.factors_num_values == (2, 2, 2, 2)
  assert dataset.observation_shape == (64, 64, 1)
  assert dataset.describe()["nuisance_factors"] == {"instance": 2}
  assert dataset.describe()["official_grid"] is False
  assert smallnorb.FULL_FACTOR_SIZES == (5, 10, 9, 18, 6)


def test_observations_are_the_left_image_and_a_random_instance(dataset):
  factors = np.array([[0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0], [0, 1, 0, 1],
                      [1, 1, 0, 0]])
  images = dataset.sample_observations_from_factors(factors,
                                                    np.random.RandomState(3))
  instances = np.random.RandomState(3).randint(2, size=5)
  assert images.shape == (5, 64, 64, 1) and images.dtype == np.float32
  for image, row, instance in zip(images, factors, instances):
    c, e, a, l = row
    np.testing.assert_allclose(image, value(c, instance, e, a, l) / 255,
                               rtol=1e-6)


def test_resize_keeps_dlibs_unclipped_lanczos_overshoot():
  stripes = np.zeros((1, 96, 96), np.uint8)
  stripes[0, :, ::2] = 255
  stripes[0, :, :48] = 0
  resized = smallnorb.resize_like_dlib(stripes)
  assert resized.shape == (1, 64, 64) and resized.dtype == np.int16
  # An 8-bit resize would clip to [0, 255]; disentanglement_lib's does not.
  assert resized.min() < 0 or resized.max() > 255
  flat = smallnorb.resize_like_dlib(np.full((1, 96, 96), 77, np.uint8))
  np.testing.assert_array_equal(flat, 77)


def test_device_sampler_draws_stored_images(dataset):
  import jax  # pylint: disable=g-import-not-at-top
  arrays = dataset.device_arrays()
  assert arrays["images"].dtype == np.int16
  assert arrays["images"].shape == (32, 64, 64, 1)
  batch = np.asarray(jax.jit(dataset.sample_device_batch,
                             static_argnums=2)(arrays, jax.random.PRNGKey(0),
                                               6))
  assert batch.shape == (6, 64, 64, 1)
  np.testing.assert_allclose(batch * 255, np.round(batch * 255), atol=1e-4)
  assert set(np.round(batch[:, 0, 0, 0] * 255).astype(int)) <= {
      value(*row) for row in np.ndindex(*SIZES)}


@pytest.mark.parametrize("problem, message", [
    ("missing", "no file"), ("magic", "not a NORB"), ("truncated", "truncated"),
    ("shape", r"\[N, 2, 96, 96\]"), ("duplicate", "not complete"),
])
def test_malformed_files_name_the_path_and_the_source(tmp_path, problem,
                                                      message):
  write_files(tmp_path)
  part = smallnorb.PARTS[0]
  dat = tmp_path / smallnorb.file_name(part, "dat")
  if problem == "missing":
    os.remove(dat)
  elif problem == "magic":
    write_matrix(dat, np.zeros((16, 2, 96, 96), np.uint8), magic=123)
  elif problem == "truncated":
    dat.write_bytes(dat.read_bytes()[:-10])
  elif problem == "shape":
    write_matrix(dat, np.zeros((16, 2, 32, 32), np.uint8))
  else:
    info = tmp_path / smallnorb.file_name(part, "info")
    write_matrix(info, np.zeros((16, 4), np.int32))
  with pytest.raises((ValueError, FileNotFoundError), match=message) as err:
    smallnorb.SmallNORB.from_mat(str(tmp_path))
  assert "cs.nyu.edu/~ylclab/data/norb-v1.0-small" in str(err.value)
  assert str(tmp_path) in str(err.value)


def test_tfds_splits_are_joined_into_the_grid():
  tfds = pytest.importorskip("tensorflow_datasets")

  def records(instance):
    return [dict(image=np.full((96, 96, 1), value(*row), np.uint8),
                 image2=np.zeros((96, 96, 1), np.uint8),
                 label_category=row[0], instance=row[1],
                 label_elevation=row[2], label_azimuth=row[3],
                 label_lighting=row[4]) for row in part_rows(instance)]

  def source(*args, **kwargs):
    split = kwargs.get("split", args[1] if len(args) > 1 else "")
    return records(0 if split == "train" else 1)

  with tfds.testing.mock_data(as_data_source_fn=source):
    with pytest.warns(UserWarning, match="differ from the official"):
      dataset = smallnorb.SmallNORB.from_tfds()
  assert dataset.factors_num_values == (2, 2, 2, 2)
  stored = dataset.device_arrays()["images"][:, 0, 0, 0]
  np.testing.assert_array_equal(
      stored, [value(*row) for row in np.ndindex(*SIZES)])
