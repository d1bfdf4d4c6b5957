"""Tests of the official-format dSprites loaders (npz file and tfds).

The files here are tiny but in the exact official format (same arrays, dtypes,
column layout, pickled ``metadata``) on a reduced factor grid, with the rows
shuffled so the loader must use ``latents_classes`` rather than row order. Their
images are procedural renders, so every image is distinct and checkable.
"""

import functools
import os

import jax
import numpy as np
import pytest

from factorvae_jax.data import dsprites
from factorvae_jax.data import dsprites_procedural as proc
from factorvae_jax.data import ground_truth

SIZES = (3, 2, 3, 2, 2)  # shape, scale, orientation, posX, posY
NUM = int(np.prod(SIZES))


def make_rows(shuffle=True):
  """Classes [N, 5], official-style values [N, 5], images [N, 64, 64] uint8."""
  classes = np.stack(np.unravel_index(np.arange(NUM), SIZES), axis=1)
  if shuffle:
    classes = classes[np.random.RandomState(0).permutation(NUM)]
  values = np.stack([classes[:, 0] + 1.0,  # shapes are 1, 2, 3 in the file
                     proc.SCALE_VALUES[classes[:, 1]],
                     proc.ORIENTATION_VALUES[classes[:, 2]],
                     proc.POSITION_VALUES[classes[:, 3]],
                     proc.POSITION_VALUES[classes[:, 4]]], axis=1)
  images = np.asarray(proc.render_from_classes(classes))[..., 0]
  return classes, values, images.astype(np.uint8)


def write_npz(path, classes, values, images, **overrides):
  """Writes the official layout; ``overrides`` replace (or drop, if None)."""
  arrays = {
      "imgs": images,
      "latents_classes": np.concatenate(
          [np.zeros((len(classes), 1), np.int64), classes], 1),
      "latents_values": np.concatenate(
          [np.ones((len(values), 1)), values], 1),
      "metadata": np.array({"description": "test"}, dtype=object),
  }
  arrays.update(overrides)
  np.savez_compressed(path, **{k: v for k, v in arrays.items()
                               if v is not None})
  return str(path)


@pytest.fixture(scope="module")
def rows():
  return make_rows()


@pytest.fixture(scope="module")
def npz_path(tmp_path_factory, rows):
  return write_npz(tmp_path_factory.mktemp("dsprites") /
                   dsprites.OFFICIAL_FILENAME, *rows)


@pytest.fixture(scope="module")
def dataset(npz_path):
  with pytest.warns(UserWarning, match="differ from the official"):
    return dsprites.DSprites.from_npz(npz_path)


def test_npz_loads_in_grid_order(dataset, rows):
  classes, values, images = rows
  assert dataset.factors_num_values == SIZES
  assert dataset.factor_names == ("shape", "scale", "orientation",
                                  "position_x", "position_y")
  assert dataset.observation_shape == (64, 64, 1)
  observed = dataset.sample_observations_from_factors(classes, 0)
  assert observed.dtype == np.float32 and observed.shape == (NUM, 64, 64, 1)
  np.testing.assert_array_equal(observed[..., 0], images)
  np.testing.assert_allclose(dataset.factor_values[1],
                             proc.SCALE_VALUES[:SIZES[1]])
  np.testing.assert_allclose(dataset.factor_values[0], [1.0, 2.0, 3.0])


def test_images_are_held_bit_packed(dataset):
  packed = dataset.device_arrays()["images"]
  assert packed.dtype == np.uint8 and packed.shape == (NUM, 512)
  assert dataset.describe()["host_bytes"] == NUM * 512


def test_describe_names_the_file(dataset, npz_path):
  description = dataset.describe()
  assert npz_path in dataset.source and "official npz" in dataset.source
  assert description["path"] == os.path.abspath(npz_path)
  assert description["file_size_bytes"] == os.path.getsize(npz_path)
  assert len(description["sha256_first_mib"]) == 16
  assert description["official_grid"] is False


def test_a_row_major_file_and_a_directory_path_load_too(tmp_path):
  write_npz(tmp_path / dsprites.OFFICIAL_FILENAME, *make_rows(shuffle=False))
  with pytest.warns(UserWarning):
    dataset = dsprites.DSprites.from_npz(str(tmp_path))
  factors = np.array([[2, 1, 2, 1, 0]])
  np.testing.assert_array_equal(
      dataset.sample_observations_from_factors(factors, 0),
      np.asarray(proc.render_from_classes(factors)))


def test_device_batches_are_images_of_their_factors(dataset):
  arrays = jax.device_put(dataset.device_arrays())
  key = jax.random.PRNGKey(7)
  sample = jax.jit(functools.partial(dataset.sample_device_batch,
                                     batch_size=32))
  batch = np.asarray(sample(arrays, key))
  assert batch.shape == (32, 64, 64, 1) and batch.dtype == np.float32
  index = np.asarray(ground_truth.sample_uniform_indices(key, 32, NUM))
  np.testing.assert_array_equal(
      batch, dataset.sample_observations_from_factors(
          dataset.index_to_factors(index), 0))


def test_device_sampler_does_not_bake_in_the_images(dataset):
  arrays = dataset.device_arrays()
  jaxpr = jax.make_jaxpr(functools.partial(dataset.sample_device_batch,
                                           batch_size=4))(
                                               arrays, jax.random.PRNGKey(0))
  assert all(np.size(c) < arrays["images"].size for c in jaxpr.consts)


def test_missing_file_says_where_to_get_it(tmp_path):
  missing = str(tmp_path / "nope.npz")
  with pytest.raises(FileNotFoundError) as err:
    dsprites.DSprites.from_npz(missing)
  assert missing in str(err.value)
  assert "deepmind/dsprites-dataset" in str(err.value)
  with pytest.raises(FileNotFoundError, match="data.path is empty"):
    dsprites.DSprites.from_npz("")


def _drop_last_row(rows):
  classes, values, images = rows
  return classes[:-1], values[:-1], images[:-1]


@pytest.mark.filterwarnings("ignore:.*differ from the official")
@pytest.mark.parametrize("overrides, rows_fn, message", [
    ({"latents_classes": None}, None, "'latents_classes' is missing"),
    ({"imgs": np.zeros((NUM, 64, 64), np.float32)}, None, "must be C-ordered"),
    ({"imgs": np.zeros((NUM, 32, 32), np.uint8)}, None, "must be C-ordered"),
    ({"latents_values": np.zeros((NUM, 6), np.int64)}, None,
     "'latents_values' must be a float"),
    ({"latents_classes": np.zeros((NUM, 5), np.int64)}, None,
     "'latents_classes' must be an integer"),
    ({}, _drop_last_row, "not complete"),
    ({"imgs": np.full((NUM, 64, 64), 255, np.uint8)}, None, "0 or 1"),
])
def test_malformed_files_are_rejected_with_the_path_and_origin(
    tmp_path, rows, overrides, rows_fn, message):
  path = write_npz(tmp_path / "bad.npz",
                   *(rows_fn(rows) if rows_fn else rows), **overrides)
  with pytest.raises(ValueError, match=message) as err:
    dsprites.DSprites.from_npz(path)
  assert path in str(err.value)
  assert "deepmind/dsprites-dataset" in str(err.value)


def test_duplicate_rows_and_class_gaps_are_reported(tmp_path, rows):
  classes, values, images = rows
  repeated = classes.copy()
  repeated[1] = repeated[0]
  path = write_npz(tmp_path / "dup.npz", repeated, values, images)
  with pytest.raises(ValueError, match="more than once"):
    dsprites.DSprites.from_npz(path)
  gapped = classes.copy()
  gapped[:, 1] *= 2  # scale classes 0, 2: a gap
  path = write_npz(tmp_path / "gap.npz", gapped, values, images)
  with pytest.raises(ValueError, match="without gaps"):
    dsprites.DSprites.from_npz(path)


def test_a_file_that_is_not_a_zip_is_rejected(tmp_path):
  path = tmp_path / "text.npz"
  path.write_text("not an archive")
  with pytest.raises(ValueError, match="not an npz"):
    dsprites.DSprites.from_npz(str(path))


# --- tfds ---------------------------------------------------------------------
@pytest.fixture(name="tfds")
def fixture_tfds():
  return pytest.importorskip("tensorflow_datasets")


def test_installed_tfds_builder_has_the_features_the_loader_reads(tfds):
  # The mock builds examples from the installed builder's own feature spec,
  # read through tfds.data_source without TensorFlow.
  with tfds.testing.mock_data(num_examples=2):
    source = tfds.data_source(dsprites.TFDS_NAME, split="train")
    example = source[0]
  assert set(dsprites.TFDS_LABEL_KEYS + dsprites.TFDS_VALUE_KEYS) <= set(
      example)
  assert example["image"].shape == (64, 64, 1)
  assert example["image"].dtype == np.uint8


def test_tfds_records_in_shuffled_order_load_in_grid_order(tfds, rows):
  classes, values, images = rows
  records = [
      dict(image=images[i][..., None],
           **{k: classes[i, j] for j, k in enumerate(dsprites.TFDS_LABEL_KEYS)},
           **{k: np.float32(values[i, j])
              for j, k in enumerate(dsprites.TFDS_VALUE_KEYS)})
      for i in range(NUM)]

  def as_data_source(builder, *args, **kwargs):
    del builder, args, kwargs
    return records

  with tfds.testing.mock_data(as_data_source_fn=as_data_source):
    with pytest.warns(UserWarning, match="differ from the official"):
      dataset = dsprites.DSprites.from_tfds("/some/data_dir")
  assert dataset.factors_num_values == SIZES
  assert "tfds 'dsprites'" in dataset.source
  assert dataset.describe()["tfds_data_dir"] == "/some/data_dir"
  np.testing.assert_array_equal(
      dataset.sample_observations_from_factors(classes, 0)[..., 0], images)


def test_tfds_random_mock_data_is_rejected_as_an_incomplete_grid(tfds):
  # tfds's default mock source breaks on batched reads (its ``__getitems__``
  # is set on a MagicMock, which does not bind it), so take its random
  # examples one by one and serve them as a list.
  with tfds.testing.mock_data(num_examples=10):
    source = tfds.data_source(dsprites.TFDS_NAME, split="train")
    records = [source[i] for i in range(len(source))]
  for record in records:  # random bytes: make them valid binary pixels
    record["image"] = record["image"] % 2
  with tfds.testing.mock_data(as_data_source_fn=lambda *a, **k: records):
    with pytest.raises(ValueError, match="not complete|without gaps"):
      dsprites.DSprites.from_tfds()


def test_unprepared_tfds_data_explains_how_to_prepare_it(tfds, tmp_path):
  del tfds  # only needs it installed
  with pytest.raises(FileNotFoundError, match="tfds build dsprites"):
    dsprites.DSprites.from_tfds(str(tmp_path))
