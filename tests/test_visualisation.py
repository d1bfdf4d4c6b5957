"""Tests for factorvae_jax.visualisation (numpy only, no JAX)."""

import itertools
import os

import numpy as np
from PIL import Image
import pytest

from factorvae_jax.visualisation import grids
from factorvae_jax.visualisation import make_image_grid
from factorvae_jax.visualisation import make_reconstruction_grid
from factorvae_jax.visualisation import make_traversal_grid
from factorvae_jax.visualisation import save_png

PAD_GREY = 128  # round(0.5 * 255)
SIZE = 24  # Toy image side.


def render_blobs(codes):
  """Toy decoder: a Gaussian blob at x=code[0], y=code[1], radius~code[2]."""
  codes = np.asarray(codes, np.float32)
  yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
  cx = SIZE / 2 + 4.0 * codes[:, 0, None, None]
  cy = SIZE / 2 + 4.0 * codes[:, 1, None, None]
  sigma = 2.5 + 0.5 * codes[:, 2, None, None]
  blob = np.exp(-((xx - cx)**2 + (yy - cy)**2) / (2 * sigma**2))
  return blob[..., None]


def centroid_and_mass(cell):
  """Intensity-weighted (x, y) centroid and total intensity of a cell."""
  weights = cell[..., 0].astype(np.float64)
  yy, xx = np.mgrid[0:cell.shape[0], 0:cell.shape[1]]
  total = weights.sum()
  return (xx * weights).sum() / total, (yy * weights).sum() / total, total


def traversal_cell(grid, row, col, num_dims, with_markers):
  """Cuts cell (row, col) out of a traversal grid, per the documented layout."""
  pad = grids.TRAVERSAL_PAD
  y = pad + row * (SIZE + pad) + (row // num_dims) * grids.TRAVERSAL_BLOCK_GAP
  left = grids.traversal_marker_width(SIZE) + pad if with_markers else 0
  x = left + pad + col * (SIZE + pad)
  return grid[y:y + SIZE, x:x + SIZE]


class TestMakeImageGrid:

  def test_layout_padding_and_grey_to_rgb(self):
    h, w, pad = 3, 4, 2
    images = np.stack([np.full((h, w, 1), v) for v in (0.0, 0.2, 0.4, 0.6,
                                                        1.0)])
    grid = make_image_grid(images, num_cols=3, pad=pad)
    assert grid.dtype == np.uint8
    assert grid.shape == (2 * h + 3 * pad, 3 * w + 4 * pad, 3)
    for i, v in enumerate((0.0, 0.2, 0.4, 0.6, 1.0)):
      r, c = divmod(i, 3)
      y, x = pad + r * (h + pad), pad + c * (w + pad)
      np.testing.assert_array_equal(grid[y:y + h, x:x + w],
                                    np.round(v * 255))
    # Border, gaps and the empty 6th cell are pad grey.
    assert (grid[0] == PAD_GREY).all() and (grid[:, 0] == PAD_GREY).all()
    y, x = pad + h + pad, pad + 2 * (w + pad)
    assert (grid[y:y + h, x:x + w] == PAD_GREY).all()

  def test_rgb_kept_and_columns_capped_at_batch(self):
    images = np.zeros((2, 2, 2, 3))
    images[0, ..., 0] = 1.0  # red
    images[1, ..., 2] = 1.0  # blue
    grid = make_image_grid(images, num_cols=8, pad=1, pad_value=0.0)
    assert grid.shape == (4, 7, 3)
    np.testing.assert_array_equal(grid[1, 1], [255, 0, 0])
    np.testing.assert_array_equal(grid[1, 4], [0, 0, 255])

  def test_nan_pixels_are_magenta(self):
    images = np.zeros((1, 2, 2, 1))
    images[0, 0, 0, 0] = np.nan
    grid = make_image_grid(images, num_cols=1, pad=0)
    np.testing.assert_array_equal(grid[0, 0], [255, 0, 255])
    np.testing.assert_array_equal(grid[1, 1], [0, 0, 0])

  @pytest.mark.parametrize("images, match", [
      (np.zeros((2, 4, 4, 2)), "C in"),
      (np.zeros((0, 4, 4, 1)), "empty"),
      (np.full((1, 4, 4, 1), 3.0), "sigmoid"),
  ])
  def test_bad_input_raises(self, images, match):
    with pytest.raises(ValueError, match=match):
      make_image_grid(images, num_cols=2)


class TestMakeReconstructionGrid:

  def test_rows_alternate_inputs_and_reconstructions(self):
    inputs = np.zeros((5, 4, 4, 1))  # black
    recons = np.ones((5, 4, 4, 1))  # white
    grid = make_reconstruction_grid(inputs, recons, num_cols=3)
    # Walk down the first column: the non-pad bands must read
    # input, recon, input, recon.
    column = grid[:, 2 + 1, 0]
    bands = [v for v, _ in itertools.groupby(column) if v != PAD_GREY]
    assert bands == [0, 255, 0, 255]
    # Second chunk has 2 pairs + 1 empty cell on the right.
    assert (grid[-6:-2, -6:-2] == PAD_GREY).all()

  def test_shape_mismatch_raises(self):
    with pytest.raises(ValueError, match="same shape"):
      make_reconstruction_grid(np.zeros((2, 4, 4, 1)), np.zeros((3, 4, 4, 1)))


class TestMakeTraversalGrid:

  def test_blob_moves_along_the_traversed_dimension(self, tmp_path):
    base = np.zeros((2, 4), np.float32)
    base[1] = [0.5, -0.5, 0.0, 1.0]
    values = np.linspace(-1.5, 1.5, 7)
    grid = make_traversal_grid(render_blobs, base, values=values)
    save_png(tmp_path / "traversal.png", grid)
    num_dims = 4
    assert grid.shape == (
        2 * num_dims * SIZE + (2 * num_dims + 1) * grids.TRAVERSAL_PAD +
        grids.TRAVERSAL_BLOCK_GAP,
        7 * SIZE + 8 * grids.TRAVERSAL_PAD, 3)
    for block in range(2):
      stats = [[centroid_and_mass(
          traversal_cell(grid, block * num_dims + d, c, num_dims, False))
                for c in range(7)] for d in range(num_dims)]
      xs = [s[0] for s in stats[0]]
      ys = [s[1] for s in stats[1]]
      masses = [s[2] for s in stats[2]]
      assert np.all(np.diff(xs) > 0), xs  # dim 0 moves the blob right
      assert np.all(np.diff(ys) > 0), ys  # dim 1 moves it down
      assert np.all(np.diff(masses) > 0), masses  # dim 2 grows it
      # dim 3 is ignored by the decoder: its row is constant.
      row3 = [traversal_cell(grid, block * num_dims + 3, c, num_dims, False)
              for c in range(7)]
      assert all((cell == row3[0]).all() for cell in row3)
      # Traversing dim 0 leaves the other coordinates at the base code.
      np.testing.assert_allclose(
          [s[1] for s in stats[0]],
          SIZE / 2 + 4.0 * base[block, 1], atol=0.3)

  def test_kl_orders_rows_and_sets_marker_brightness(self):
    base = np.zeros((1, 4), np.float32)
    kl = np.array([1.0, 4.0, 0.5, 0.0])
    grid = make_traversal_grid(render_blobs, base, values=[-1.0, 0.0, 1.0],
                               kl_per_dim=kl)
    # Row 0 is the highest-KL dim 1: the blob moves down, not right.
    first_row = [centroid_and_mass(traversal_cell(grid, 0, c, 4, True))
                 for c in range(3)]
    assert np.all(np.diff([s[1] for s in first_row]) > 0)
    assert np.ptp([s[0] for s in first_row]) < 0.1
    # Markers: green with brightness KL / max KL, in row order 1, 0, 2, 3.
    pad = grids.TRAVERSAL_PAD
    greens = []
    for row in range(4):
      y = pad + row * (SIZE + pad) + SIZE // 2
      pixel = grid[y, pad + 1]
      assert pixel[0] == 0 and pixel[2] == 0
      greens.append(pixel[1])
    np.testing.assert_array_equal(greens, np.round(
        np.array([4.0, 1.0, 0.5, 0.0]) / 4.0 * 255))

  def test_dims_subset_and_chunked_decoding(self, monkeypatch):
    monkeypatch.setattr(grids, "DECODE_CHUNK_SIZE", 16)
    batch_sizes = []

    def decode(codes):
      batch_sizes.append(len(codes))
      assert codes.dtype == np.float32
      return render_blobs(codes)

    base = np.zeros((3, 5), np.float32)
    grid = make_traversal_grid(decode, base, values=np.linspace(-1, 1, 5),
                               dims=[2, 0])
    # 3 * 2 * 5 = 30 codes: two chunks, the remainder padded to 16 so a
    # jitted decoder sees one shape.
    assert batch_sizes == [16, 16]
    assert grid.shape[0] == (3 * 2 * SIZE + 7 * grids.TRAVERSAL_PAD +
                             2 * grids.TRAVERSAL_BLOCK_GAP)
    # Row 1 of each block traverses dim 0: the blob moves right.
    xs = [centroid_and_mass(traversal_cell(grid, 1, c, 2, False))[0]
          for c in range(5)]
    assert np.all(np.diff(xs) > 0)

  def test_decoder_called_once_when_small(self):
    calls = []

    def decode(codes):
      calls.append(codes.shape)
      return render_blobs(codes)

    make_traversal_grid(decode, np.zeros((2, 3)))
    assert calls == [(2 * 3 * 9, 3)]

  def test_errors_are_actionable(self):
    with pytest.raises(ValueError, match="out of range"):
      make_traversal_grid(render_blobs, np.zeros((1, 3)), dims=[3])
    with pytest.raises(ValueError, match="kl_per_dim"):
      make_traversal_grid(render_blobs, np.zeros((1, 3)), kl_per_dim=[1, 2])
    with pytest.raises(ValueError, match="sigmoid"):
      make_traversal_grid(lambda z: 10 * render_blobs(z), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="one image per code"):
      make_traversal_grid(lambda z: render_blobs(z)[:1], np.zeros((1, 3)))


class TestSavePng:

  def test_round_trip_creates_dirs_and_leaves_no_temp(self, tmp_path):
    grid = np.random.default_rng(0).integers(0, 256, (5, 7, 3), np.uint8)
    path = tmp_path / "a" / "b" / "grid.png"
    save_png(path, grid)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)
    assert os.listdir(path.parent) == ["grid.png"]
    save_png(path, grid[::-1])  # Overwrite in place.
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grid[::-1])

  def test_failed_write_keeps_old_file_and_cleans_up(self, tmp_path,
                                                     monkeypatch):
    path = tmp_path / "grid.png"
    old = np.zeros((2, 2, 3), np.uint8)
    save_png(path, old)

    def fail(*args, **kwargs):
      raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(OSError):
      save_png(path, np.ones((2, 2, 3), np.uint8))
    monkeypatch.undo()
    np.testing.assert_array_equal(np.asarray(Image.open(path)), old)
    assert os.listdir(tmp_path) == ["grid.png"]

  def test_rejects_float_images(self, tmp_path):
    with pytest.raises(ValueError, match="uint8"):
      save_png(tmp_path / "x.png", np.zeros((2, 2, 3), np.float32))
