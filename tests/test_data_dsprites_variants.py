"""Tests of color/noisy/scream dSprites and dsprites_noshape.

Expected values follow disentanglement_lib's definitions: the same
``RandomState`` draws, in the same order, give the same observations.
"""

import functools

import jax
import ml_collections
import numpy as np
import pytest
from PIL import Image

from factorvae_jax import data
from factorvae_jax.data import dsprites_procedural as proc
from factorvae_jax.data import dsprites_variants as variants
from tests import test_data_dsprites

FACTORS = np.array([[proc.HEART, 5, 3, 0, 31], [proc.SQUARE, 0, 0, 16, 16],
                    [proc.ELLIPSE, 2, 10, 31, 0]])


@pytest.fixture(scope="module")
def base():
  return proc.ProceduralDSprites()


@pytest.fixture(scope="module")
def sprites(base):
  return base.sample_observations_from_factors(FACTORS, 0)  # [3, 64, 64, 1]


def painting(height=70, width=80):
  """Pixel (r, c) is (r / 100, c / 100, 0.5): a patch's corner shows its offset."""
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  return np.stack([rows / 100, cols / 100, np.full(rows.shape, 0.5)],
                  -1).astype(np.float32)


def test_color_multiplies_the_sprite_by_one_colour_per_image(base, sprites):
  dataset = variants.DSpritesVariant(base, "color")
  images = dataset.sample_observations_from_factors(FACTORS,
                                                    np.random.RandomState(4))
  colour = np.random.RandomState(4).uniform(0.5, 1, (3, 1, 1, 3))
  assert images.shape == (3, 64, 64, 3) and images.dtype == np.float32
  np.testing.assert_allclose(images, sprites * colour, rtol=1e-6)
  assert np.all(images[sprites[..., 0] == 0] == 0)  # black background
  assert dataset.observation_shape == (64, 64, 3)
  assert dataset.factors_num_values == base.factors_num_values


def test_noisy_keeps_the_sprite_white_over_uniform_noise(base, sprites):
  dataset = variants.DSpritesVariant(base, "noisy")
  images = dataset.sample_observations_from_factors(FACTORS, 7)
  noise = np.random.RandomState(7).uniform(0, 1, (3, 64, 64, 3))
  np.testing.assert_allclose(images, np.minimum(sprites + noise, 1),
                             rtol=1e-6)
  mask = sprites[..., 0] == 1
  assert np.all(images[mask] == 1)
  assert 0.45 < images[~mask].mean() < 0.55


def test_scream_takes_a_random_patch_and_inverts_it_under_the_sprite(
    base, sprites):
  picture = painting()
  dataset = variants.DSpritesVariant(base, "scream", picture)
  images = dataset.sample_observations_from_factors(FACTORS, 3)
  rs = np.random.RandomState(3)
  for i in range(3):
    # Per image: row offset in [0, 70 - 64), column offset in [0, 80 - 64),
    # then one colour; background = (patch + colour) / 2.
    row, col = rs.randint(0, 6), rs.randint(0, 16)
    colour = rs.uniform(0, 1, size=3)
    background = (picture[row:row + 64, col:col + 64] + colour) / 2
    mask = sprites[i, ..., 0] == 1
    np.testing.assert_allclose(images[i][~mask], background[~mask], rtol=1e-6)
    np.testing.assert_allclose(images[i][mask], 1 - background[mask],
                               rtol=1e-6)
    # Hand check of the top-left pixel (background there for every sprite).
    np.testing.assert_allclose(
        images[i, 0, 0], [(row / 100 + colour[0]) / 2,
                          (col / 100 + colour[1]) / 2, (0.5 + colour[2]) / 2],
        rtol=1e-6)


def test_noshape_has_four_factors_and_draws_the_shape(base):
  dataset = variants.DSpritesNoShape(base)
  assert dataset.factor_names == ("scale", "orientation", "position_x",
                                  "position_y")
  assert dataset.factors_num_values == (6, 40, 32, 32)
  assert dataset.num_images == 6 * 40 * 32 * 32
  factors = dataset.sample_factors(50, np.random.RandomState(0))
  assert factors.shape == (50, 4)
  images = dataset.sample_observations_from_factors(factors,
                                                    np.random.RandomState(9))
  shapes = np.random.RandomState(9).randint(3, size=50)
  assert set(shapes) == {0, 1, 2}  # all three shapes still appear
  expected = base.sample_observations_from_factors(
      np.concatenate([shapes[:, None], factors], 1), 0)
  np.testing.assert_array_equal(images, expected)
  with pytest.raises(ValueError, match="outside"):
    dataset.sample_observations_from_factors(np.array([[6, 0, 0, 0]]), 0)


@pytest.mark.parametrize("variant", ["color", "noisy", "scream"])
def test_device_sampler_draws_the_base_factors_with_the_variant_on_top(
    base, variant):
  dataset = variants.DSpritesVariant(
      base, variant, painting() if variant == "scream" else None)
  arrays = dataset.device_arrays()
  key = jax.random.PRNGKey(5)
  sample = functools.partial(dataset.sample_device_batch, batch_size=8)
  if variant == "scream":
    # Jitted once (the patch gather must trace); the others run eagerly,
    # sharing the base's compiled renderer, to keep the test fast.
    sample = jax.jit(sample)
  batch = np.asarray(sample(arrays, key))
  assert batch.shape == (8, 64, 64, 3) and batch.dtype == np.float32
  assert batch.min() >= 0 and batch.max() <= 1
  plain = np.asarray(base.sample_device_batch({}, key, 8))[..., 0] == 1
  if variant == "color":
    np.testing.assert_array_equal(batch.max(-1) > 0, plain)
    assert batch[plain].min() >= 0.5
  elif variant == "noisy":
    assert np.all(batch[plain] == 1)
    assert batch[~plain].std() > 0.2
  else:
    # Background = (painting + colour) / 2 lies in [0, (0.79 + 1) / 2]; the
    # sprite inverts it, so its pixels lie in [1 - 0.895, 1].
    assert batch[~plain].max() <= 0.895 + 1e-6
    assert batch[plain].min() >= 0.105 - 1e-6
  np.testing.assert_array_equal(batch, np.asarray(sample(arrays, key)))


def write_jpeg(path, width, height):
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  pixels = np.stack([rows % 256, cols % 256, (rows + cols) % 256], -1)
  Image.fromarray(pixels.astype(np.uint8)).save(path, quality=95)
  return str(path)


def test_load_scream_shrinks_the_painting_like_disentanglement_lib(tmp_path):
  # A portrait painting 500 x 625 fits into 350 x 274 as 219 x 274.
  path = write_jpeg(tmp_path / "scream.jpg", 500, 625)
  picture, details = variants.load_scream(str(tmp_path))  # a folder works
  assert picture.shape == (274, 219, 3) and picture.dtype == np.float32
  assert 0 <= picture.min() and picture.max() <= 1
  assert details["path"] == path
  dataset = variants.DSpritesVariant(proc.ProceduralDSprites(), "scream",
                                     picture, details)
  assert dataset.describe()["scream"]["shape"] == [274, 219, 3]


def test_missing_or_bad_painting_names_the_file_and_its_source(tmp_path):
  with pytest.raises(FileNotFoundError, match="data.scream_path is empty"):
    variants.load_scream("")
  with pytest.raises(FileNotFoundError,
                     match=r"no file at .*scream\.jpg.*The_Scream\.jpg"):
    variants.load_scream(str(tmp_path))
  (tmp_path / "scream.jpg").write_bytes(b"not a jpeg")
  with pytest.raises(ValueError, match="not a readable image"):
    variants.load_scream(str(tmp_path))
  write_jpeg(tmp_path / "small.jpg", 60, 300)
  with pytest.raises(ValueError, match="at least 65 x 65"):
    variants.load_scream(str(tmp_path / "small.jpg"))
  with pytest.raises(ValueError, match="needs the painting"):
    variants.DSpritesVariant(proc.ProceduralDSprites(), "scream")
  with pytest.raises(ValueError, match=r"'sepia'.*\['color', 'noisy', "):
    variants.DSpritesVariant(proc.ProceduralDSprites(), "sepia")


def config(**fields):
  base = {"name": "dsprites", "source": "", "path": "", "tfds_data_dir": "",
          "scream_path": ""}
  base.update(fields)
  return ml_collections.ConfigDict(base)


def test_make_dataset_builds_every_variant_on_both_sources(tmp_path):
  npz = test_data_dsprites.write_npz(tmp_path / "d.npz",
                                     *test_data_dsprites.make_rows())
  scream = write_jpeg(tmp_path / "scream.jpg", 500, 625)
  for name, cls in [("color_dsprites", data.DSpritesVariant),
                    ("noisy_dsprites", data.DSpritesVariant),
                    ("scream_dsprites", data.DSpritesVariant),
                    ("dsprites_noshape", data.DSpritesNoShape)]:
    procedural = data.make_dataset(config(name=name, scream_path=scream))
    assert isinstance(procedural, cls)
    assert isinstance(procedural.base, data.ProceduralDSprites)
    with pytest.warns(UserWarning, match="differ from the official"):
      real = data.make_dataset(config(name=name, source="npz", path=npz,
                                      scream_path=scream))
    assert isinstance(real.base, data.DSprites)
    images = real.sample_observations(4, np.random.RandomState(0))
    channels = 1 if name == "dsprites_noshape" else 3
    assert images.shape == (4, 64, 64, channels)
    assert name.split("_")[0] in real.source or "noshape" in real.source
  with pytest.raises(FileNotFoundError, match="data.scream_path"):
    data.make_dataset(config(name="scream_dsprites"))
