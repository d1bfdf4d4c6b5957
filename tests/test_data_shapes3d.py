"""Tests of the 3D Shapes loaders (h5 file and tfds).

The h5 file here has the official dataset names, dtypes and label layout
(factor *values*, not classes) on a reduced grid with shuffled rows.
"""

import functools
import os

import h5py
import jax
import numpy as np
import pytest

from factorvae_jax.data import ground_truth
from factorvae_jax.data import shapes3d

SIZES = (2, 3, 2, 2, 2, 2)  # floor, wall, object hue, scale, shape, orient.
NUM = int(np.prod(SIZES))
# The official value grids, truncated to SIZES.
VALUE_GRIDS = (np.linspace(0, 0.9, 10), np.linspace(0, 0.9, 10),
               np.linspace(0, 0.9, 10), np.linspace(0.75, 1.25, 8),
               np.arange(4.0), np.linspace(-30, 30, 15))


def make_rows():
  """Shuffled classes [N, 6], labels [N, 6] float64, images uint8."""
  classes = np.stack(np.unravel_index(np.arange(NUM), SIZES), axis=1)
  classes = classes[np.random.RandomState(0).permutation(NUM)]
  labels = np.stack([VALUE_GRIDS[i][classes[:, i]] for i in range(6)], 1)
  images = np.random.RandomState(1).randint(
      0, 256, (NUM, 64, 64, 3)).astype(np.uint8)
  return classes, labels, images


def write_h5(path, labels, images, **extra):
  with h5py.File(path, "w") as f:
    if images is not None:
      f.create_dataset("images", data=images)
    if labels is not None:
      f.create_dataset("labels", data=labels)
    for key, value in extra.items():
      f.create_dataset(key, data=value)
  return str(path)


@pytest.fixture(scope="module")
def rows():
  return make_rows()


@pytest.fixture(scope="module")
def h5_path(tmp_path_factory, rows):
  _, labels, images = rows
  return write_h5(tmp_path_factory.mktemp("shapes3d") / "3dshapes.h5", labels,
                  images)


@pytest.fixture(scope="module")
def dataset(h5_path):
  with pytest.warns(UserWarning, match="differ from the official"):
    return shapes3d.Shapes3D.from_h5(h5_path)


def test_h5_loads_in_grid_order_as_uint8(dataset, rows):
  classes, _, images = rows
  assert dataset.factors_num_values == SIZES
  assert dataset.factor_names == ("floor_hue", "wall_hue", "object_hue",
                                  "scale", "shape", "orientation")
  assert dataset.observation_shape == (64, 64, 3)
  stored = dataset.device_arrays()["images"]
  assert stored.dtype == np.uint8 and stored.shape == (NUM, 64, 64, 3)
  observed = dataset.sample_observations_from_factors(classes, 0)
  assert observed.dtype == np.float32
  np.testing.assert_allclose(observed, images / 255.0, rtol=0, atol=1e-7)
  np.testing.assert_allclose(dataset.factor_values[5], VALUE_GRIDS[5][:2])


def test_describe_names_the_file(dataset, h5_path):
  description = dataset.describe()
  assert h5_path in dataset.source
  assert description["path"] == os.path.abspath(h5_path)
  assert description["file_size_bytes"] == os.path.getsize(h5_path)
  assert description["official_grid"] is False
  assert description["host_bytes"] == NUM * 64 * 64 * 3


def test_device_batches_are_images_of_their_factors(dataset):
  key = jax.random.PRNGKey(5)
  sample = jax.jit(functools.partial(dataset.sample_device_batch,
                                     batch_size=16))
  batch = np.asarray(sample(jax.device_put(dataset.device_arrays()), key))
  assert batch.shape == (16, 64, 64, 3) and batch.dtype == np.float32
  index = np.asarray(ground_truth.sample_uniform_indices(key, 16, NUM))
  np.testing.assert_allclose(
      batch, dataset.sample_observations_from_factors(
          dataset.index_to_factors(index), 0), atol=1e-6)
  jaxpr = jax.make_jaxpr(functools.partial(dataset.sample_device_batch,
                                           batch_size=4))(
                                               dataset.device_arrays(), key)
  assert all(np.size(c) < NUM for c in jaxpr.consts)


def test_missing_file_says_where_to_get_it(tmp_path):
  with pytest.raises(FileNotFoundError) as err:
    shapes3d.Shapes3D.from_h5(str(tmp_path))  # directory without the file
  assert os.path.join(str(tmp_path), "3dshapes.h5") in str(err.value)
  assert "deepmind/3d-shapes" in str(err.value)


@pytest.mark.filterwarnings("ignore:.*differ from the official")
@pytest.mark.parametrize("change, message", [
    ("no_images", "'images' is missing"),
    ("no_labels", "'labels' is missing"),
    ("float_images", "'images' must be uint8"),
    ("int_labels", "'labels' must be a non-empty float"),
    ("drop_row", "not complete"),
    ("not_h5", "not a readable HDF5"),
])
def test_malformed_files_are_rejected_with_the_path_and_origin(
    tmp_path, rows, change, message):
  _, labels, images = rows
  path = str(tmp_path / "bad.h5")
  if change == "no_images":
    write_h5(path, labels, None)
  elif change == "no_labels":
    write_h5(path, None, images)
  elif change == "float_images":
    write_h5(path, labels, images[:, :8].astype(np.float32))
  elif change == "int_labels":
    write_h5(path, labels.astype(np.int64), images)
  elif change == "drop_row":
    write_h5(path, labels[:-1], images[:-1])
  else:
    with open(path, "w") as f:
      f.write("plain text")
  with pytest.raises(ValueError, match=message) as err:
    shapes3d.Shapes3D.from_h5(path)
  assert path in str(err.value)
  assert "deepmind/3d-shapes" in str(err.value)


# --- tfds ---------------------------------------------------------------------
@pytest.fixture(name="tfds")
def fixture_tfds():
  return pytest.importorskip("tensorflow_datasets")


def test_installed_tfds_builder_has_the_features_the_loader_reads(tfds):
  with tfds.testing.mock_data(num_examples=2):
    example = tfds.data_source(shapes3d.TFDS_NAME, split="train")[0]
  assert set(shapes3d.TFDS_LABEL_KEYS + shapes3d.TFDS_VALUE_KEYS) <= set(
      example)
  assert example["image"].shape == (64, 64, 3)
  assert example["image"].dtype == np.uint8


def test_tfds_records_in_shuffled_order_load_in_grid_order(tfds, rows):
  classes, labels, images = rows
  records = [
      dict(image=images[i],
           **{k: classes[i, j] for j, k in enumerate(shapes3d.TFDS_LABEL_KEYS)},
           **{k: np.float32(labels[i, j])
              for j, k in enumerate(shapes3d.TFDS_VALUE_KEYS)})
      for i in range(NUM)]
  with tfds.testing.mock_data(as_data_source_fn=lambda *a, **k: records):
    with pytest.warns(UserWarning, match="differ from the official"):
      dataset = shapes3d.Shapes3D.from_tfds()
  assert dataset.factors_num_values == SIZES
  assert "tfds 'shapes3d'" in dataset.source
  np.testing.assert_array_equal(
      dataset.device_arrays()["images"][dataset.factors_to_index(classes)],
      images)


def test_unprepared_tfds_data_explains_how_to_prepare_it(tfds, tmp_path):
  del tfds  # only needs it installed
  with pytest.raises(FileNotFoundError, match="tfds build shapes3d"):
    shapes3d.Shapes3D.from_tfds(str(tmp_path))
