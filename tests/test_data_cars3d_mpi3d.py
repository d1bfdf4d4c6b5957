"""Tests of the Cars3D and MPI3D loaders on tiny files in the official formats.

Every stored image is constant, so its 64 x 64 version is the same constant,
which encodes the factors of the image.
"""

import functools

import jax
import ml_collections
import numpy as np
import pytest

from factorvae_jax import data
from factorvae_jax.data import cars3d
from factorvae_jax.data import mpi3d


# --- Cars3D -------------------------------------------------------------------
def write_mesh(path, model):
  """One car model: im[h, w, rgb, azimuth, elevation] = constant per view."""
  scipy_io = pytest.importorskip("scipy.io")
  im = np.zeros((128, 128, 3, 24, 4), np.uint8)
  for azimuth in range(24):
    for elevation in range(4):
      im[:, :, :, azimuth, elevation] = [4 * azimuth + elevation, model, 9]
  scipy_io.savemat(str(path), {"im": im})


@pytest.fixture(scope="module")
def cars_dir(tmp_path_factory):
  directory = tmp_path_factory.mktemp("cars")
  # Sorted names number the models: b_ -> 0, c_ -> 1 (written out of order).
  write_mesh(directory / "car_c_mesh.mat", 200)
  write_mesh(directory / "car_b_mesh.mat", 100)
  (directory / "README.txt").write_text("not a mesh")
  return directory


def test_cars3d_grid_order_and_resize(cars_dir):
  with pytest.warns(UserWarning, match="differ from the official"):
    dataset = cars3d.Cars3D.from_mat(str(cars_dir))
  assert dataset.factor_names == ("elevation", "azimuth", "object_type")
  assert dataset.factors_num_values == (4, 24, 2)
  assert dataset.observation_shape == (64, 64, 3)
  factors = np.array([[0, 0, 0], [3, 23, 1], [2, 5, 0]])
  images = dataset.sample_observations_from_factors(factors, 0)
  expected = [[0, 100, 9], [4 * 23 + 3, 200, 9], [4 * 5 + 2, 100, 9]]
  np.testing.assert_allclose(images[:, 10, 20], np.array(expected) / 255,
                             rtol=1e-6)
  assert np.ptp(images, axis=(1, 2)).max() == 0  # constant images stay so
  assert dataset.describe()["first_file"] == "car_b_mesh.mat"


def test_cars3d_errors_name_the_folder_and_the_source(tmp_path):
  with pytest.raises(FileNotFoundError, match="is not a folder"):
    cars3d.Cars3D.from_mat(str(tmp_path / "nope"))
  with pytest.raises(FileNotFoundError, match="no .mat files"):
    cars3d.Cars3D.from_mat(str(tmp_path))
  scipy_io = pytest.importorskip("scipy.io")
  scipy_io.savemat(str(tmp_path / "car_x_mesh.mat"),
                   {"im": np.zeros((128, 128, 3, 24, 2), np.uint8)})
  with pytest.raises(ValueError, match=r"\[H, W, 3, 24, 4\]") as err:
    with pytest.warns(UserWarning):
      cars3d.Cars3D.from_mat(str(tmp_path))
  assert "car_x_mesh.mat" in str(err.value)
  assert "scottreed.info" in str(err.value)


# --- MPI3D --------------------------------------------------------------------
SIZES = (2, 2, 1, 1, 1, 2, 3)
NUM = int(np.prod(SIZES))


def write_npz(path, images=None, key="images"):
  if images is None:
    images = np.broadcast_to(np.arange(NUM, dtype=np.uint8)[:, None, None,
                                                            None],
                             (NUM, 64, 64, 3)).copy()
  np.savez(path, **{key: images})
  return str(path)


def test_mpi3d_rows_are_row_major_in_dlibs_factor_order(tmp_path):
  path = write_npz(tmp_path / "mpi3d_toy.npz")
  dataset = mpi3d.MPI3D.from_npz(str(tmp_path), "mpi3d_toy", SIZES)
  assert dataset.factor_names == mpi3d.FACTOR_NAMES
  assert dataset.factors_num_values == SIZES
  # Row index of classes (1, 0, 0, 0, 0, 1, 2) = 1*12 + 1*3 + 2 = 17.
  image = dataset.sample_observations_from_factors(
      np.array([[1, 0, 0, 0, 0, 1, 2]]), 0)
  np.testing.assert_allclose(image, 17 / 255, rtol=1e-6)
  assert dataset.describe()["path"] == path
  assert dataset.describe()["official_grid"] is False
  sample = jax.jit(functools.partial(dataset.sample_device_batch,
                                     batch_size=5))
  batch = np.asarray(sample(dataset.device_arrays(), jax.random.PRNGKey(1)))
  assert batch.shape == (5, 64, 64, 3) and batch.max() <= 23 / 255 + 1e-6


def test_mpi3d_grid_is_inferred_from_the_image_count():
  assert mpi3d._grid_sizes(460800, None, "f", "") == (4, 4, 2, 3, 3, 40, 40)
  assert mpi3d._grid_sizes(1036800, None, "f", "") == (6, 6, 2, 3, 3, 40, 40)
  with pytest.raises(ValueError, match="460800.*1036800"):
    mpi3d._grid_sizes(NUM, None, "f", "")


@pytest.mark.parametrize("problem, message", [
    ("missing", "no file"), ("key", "'images' is missing"),
    ("dtype", "uint8"), ("count", "has 24 rows"), ("zip", "not an npz"),
])
def test_mpi3d_errors_name_the_path_and_the_source(tmp_path, problem,
                                                   message):
  path = tmp_path / "mpi3d_real.npz"
  sizes = None
  if problem == "key":
    write_npz(path, key="imgs")
  elif problem == "dtype":
    write_npz(path, np.zeros((NUM, 64, 64, 3), np.float32))
    sizes = SIZES
  elif problem == "count":
    write_npz(path)
  elif problem == "zip":
    path.write_text("text")
  with pytest.raises((ValueError, FileNotFoundError), match=message) as err:
    mpi3d.MPI3D.from_npz(str(path), "mpi3d_real", sizes)
  assert str(path) in str(err.value)
  assert "Final_Dataset/mpi3d_real.npz" in str(err.value)


def test_make_dataset_knows_every_dlib_dataset(cars_dir, tmp_path):
  def config(**fields):
    return ml_collections.ConfigDict(dict(
        {"name": "", "source": "", "path": "", "tfds_data_dir": ""},
        **fields))
  with pytest.warns(UserWarning):
    cars = data.make_dataset(config(name="cars3d", path=str(cars_dir)))
  assert isinstance(cars, data.Cars3D)
  for name in ("mpi3d_toy", "mpi3d_realistic", "mpi3d_real"):
    with pytest.raises(FileNotFoundError, match=f"{name}.npz"):
      data.make_dataset(config(name=name, path=str(tmp_path)))
  with pytest.raises(FileNotFoundError, match="norb-v1.0-small"):
    data.make_dataset(config(name="smallnorb", path=str(tmp_path)))
  with pytest.raises(ValueError, match=r"'tfds'.*\['mat'\]"):
    data.make_dataset(config(name="cars3d", source="tfds"))
