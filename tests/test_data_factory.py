"""Tests of ``make_dataset``: config -> dataset, and its error messages."""

import ml_collections
import numpy as np
import pytest

from factorvae_jax import data
from tests import test_data_dsprites
from tests import test_data_shapes3d


def config(**fields):
  base = {"name": "dsprites", "source": "", "path": "", "tfds_data_dir": ""}
  base.update(fields)
  return ml_collections.ConfigDict(base)


def test_dsprites_defaults_to_the_procedural_renderer():
  dataset = data.make_dataset(config())
  assert isinstance(dataset, data.ProceduralDSprites)
  assert isinstance(dataset, data.GroundTruthData)


def test_any_object_with_attributes_works():
  class Plain:
    name = "dsprites"

  assert isinstance(data.make_dataset(Plain()), data.ProceduralDSprites)


def test_npz_and_h5_sources_load_files(tmp_path):
  npz = test_data_dsprites.write_npz(tmp_path / "d.npz",
                                     *test_data_dsprites.make_rows())
  _, labels, images = test_data_shapes3d.make_rows()
  h5 = test_data_shapes3d.write_h5(tmp_path / "s.h5", labels, images)
  with pytest.warns(UserWarning):
    dsprites = data.make_dataset(config(source="npz", path=npz))
  with pytest.warns(UserWarning):
    shapes = data.make_dataset(config(name="shapes3d", path=h5))
  assert isinstance(dsprites, data.DSprites)
  assert isinstance(shapes, data.Shapes3D)
  assert shapes.sample_observations(2, np.random.RandomState(0)).shape == (
      2, 64, 64, 3)


@pytest.mark.parametrize("fields, message", [
    ({"name": "mnist"},
     r"data.name='mnist'.*\['cars3d', 'color_dsprites', 'dsprites', "
     r"'dsprites_noshape', 'mpi3d_real', 'mpi3d_realistic', 'mpi3d_toy', "
     r"'noisy_dsprites', 'scream_dsprites', 'shapes3d', 'smallnorb'\]"),
    ({"source": "h5"}, r"data.source='h5'.*\['procedural', 'npz', 'tfds'\]"),
    ({"name": "shapes3d", "source": "npz"}, r"'npz'.*\['h5', 'tfds'\]"),
])
def test_unknown_names_and_sources_list_the_allowed_values(fields, message):
  with pytest.raises(ValueError, match=message):
    data.make_dataset(config(**fields))


def test_file_sources_without_a_path_ask_for_one():
  with pytest.raises(FileNotFoundError, match="data.path is empty"):
    data.make_dataset(config(source="npz"))
  with pytest.raises(FileNotFoundError, match="3d-shapes"):
    data.make_dataset(config(name="shapes3d"))
