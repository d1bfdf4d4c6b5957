"""dSprites drawn on the fly: the official factor grid, no data files.

The renderer reproduces the *factor grid* of dSprites exactly (3 shapes, 6
scales, 40 orientations, 32 x 32 positions, 64 x 64 binary images) and its
geometry closely: the square, ellipse and heart outlines were fitted to real
dSprites frames (``benchmarks/dsprites_fidelity.py`` measures the match, see
docs/data.md). The images are still not guaranteed pixel-identical to the
official ones; runs that need the real images must use ``dsprites.DSprites``.

Every pixel is tested analytically: its centre is moved into the sprite's own
frame (translate, then inverse-rotate) and checked against the shape's implicit
inequality. No supersampling, so images are exactly {0, 1} like the real set.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from factorvae_jax.data import ground_truth

IMAGE_SIZE = 64
FACTOR_NAMES = ("shape", "scale", "orientation", "position_x", "position_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
SQUARE, ELLIPSE, HEART = 0, 1, 2

# The grid of factor values of the official file (its ``latents_values``): the
# orientation grid includes both 0 and 2*pi, so classes 0 and 39 draw the same
# image, exactly as in the real data.
SCALE_VALUES = np.linspace(0.5, 1.0, 6)
ORIENTATION_VALUES = np.linspace(0.0, 2.0 * np.pi, 40)
POSITION_VALUES = np.linspace(0.0, 1.0, 32)

# Geometry in pixels. The centre sweeps the central half of the canvas, so the
# largest sprite rotated to its widest (a scale-1 square at 45 degrees reaches
# 13.6 px from its centre) keeps a margin of >2 px from the border.
POSITION_MIN_PX = 16.0
POSITION_RANGE_PX = 32.0
# Half-width of a scale-1 square: 19.2 px wide, 0.3 of the image. Every shape
# below is given in units of this half-size ``s = HALF_SIZE_PX * scale``, in
# the sprite's frame (u to the right, v up, before rotation).
HALF_SIZE_PX = 9.6
# Ellipse semi-axes (major axis along u at orientation 0), fitted to the real
# frames: 12.77 x 7.21 px at scale 1. The fit is sharp (0.3% changes lose
# pixels), so these are not round numbers.
ELLIPSE_SEMI_MAJOR = 1.33
ELLIPSE_SEMI_MINOR = 0.7513
# Heart, tip down, fitted to the real frames. It is the union of
#   * two lobes: ellipses centred at (+-HEART_LOBE_X, HEART_LOBE_Y) with
#     vertical semi-axis HEART_LOBE_RADIUS and horizontal semi-axis
#     HEART_LOBE_WIDTH * HEART_LOBE_RADIUS (the real lobes are narrower than
#     round);
#   * the convex hull of the tip (0, -HEART_TIP_DEPTH) and the *circle* of
#     radius HEART_LOBE_RADIUS about each lobe centre (its straight sides run
#     from the tip to where they touch that circle);
#   * the triangle of the tip and both lobe centres (fills the middle).
# The lobes overlap only below the top, leaving the notch between them.
HEART_LOBE_X = 0.498
HEART_LOBE_Y = 0.422
HEART_LOBE_RADIUS = 0.549
HEART_LOBE_WIDTH = 0.9125
HEART_TIP_DEPTH = 0.904

_DEFAULT_CHUNK = 4096


@jax.jit
def render(shape: jax.Array, scale: jax.Array, orientation: jax.Array,
           pos_x: jax.Array, pos_y: jax.Array) -> jax.Array:
  """Draws dSprites-like images from factor values (pure, jittable).

  All arguments broadcast against each other to a batch shape [B].

  Args:
    shape: int shape classes: 0 square, 1 ellipse, 2 heart.
    scale: sprite scale, 1 is the largest dSprites sprite (official values are
      0.5 ... 1).
    orientation: counter-clockwise rotation of the sprite as displayed, in
      radians, about the sprite centre.
    pos_x: horizontal position in [0, 1], growing to the right.
    pos_y: vertical position in [0, 1], growing with the row index (downwards
      in a displayed image).

  Returns:
    float32 [B, 64, 64, 1] with values in {0, 1}.
  """
  shape, scale, orientation, pos_x, pos_y = jnp.broadcast_arrays(
      jnp.asarray(shape), *(jnp.asarray(a, jnp.float32)
                            for a in (scale, orientation, pos_x, pos_y)))
  # [B, 1, 1] so everything broadcasts against the [64, 64] pixel grid.
  shape, scale, orientation, pos_x, pos_y = (
      a.reshape(-1, 1, 1) for a in (shape, scale, orientation, pos_x, pos_y))
  centres = jnp.arange(IMAGE_SIZE, dtype=jnp.float32) + 0.5
  cx = POSITION_MIN_PX + POSITION_RANGE_PX * pos_x
  cy = POSITION_MIN_PX + POSITION_RANGE_PX * pos_y
  dx = centres[None, None, :] - cx
  # Rows grow downwards; flip so rotations are counter-clockwise as displayed.
  dy = cy - centres[None, :, None]
  cos, sin = jnp.cos(orientation), jnp.sin(orientation)
  half = HALF_SIZE_PX * scale
  # Pixel centre in the sprite's frame, in units of the half-size.
  u = (cos * dx + sin * dy) / half
  v = (cos * dy - sin * dx) / half

  in_square = (jnp.abs(u) <= 1.0) & (jnp.abs(v) <= 1.0)
  in_ellipse = ((u / ELLIPSE_SEMI_MAJOR)**2 + (v / ELLIPSE_SEMI_MINOR)**2
                <= 1.0)
  in_heart = _in_heart(u, v)

  inside = jnp.where(shape == SQUARE, in_square,
                     jnp.where(shape == ELLIPSE, in_ellipse, in_heart))
  return inside.astype(jnp.float32)[..., None]


def _in_heart(u: jax.Array, v: jax.Array) -> jax.Array:
  """The heart's implicit test in sprite units (see the HEART_* constants)."""
  # The heart is mirror-symmetric: test the right half only.
  u = jnp.abs(u)
  cx, cy, r = HEART_LOBE_X, HEART_LOBE_Y, HEART_LOBE_RADIUS
  tip = HEART_TIP_DEPTH
  in_lobe = ((u - cx) / (HEART_LOBE_WIDTH * r))**2 + ((v - cy) / r)**2 <= 1.0
  # Hull of the tip and the circle: with ``a`` the distance along the axis from
  # the tip towards the circle centre and ``b`` the distance from that axis,
  # the hull below the tangent points is the cone b <= a tan(alpha),
  # sin(alpha) = r / d, cut at the chord through the tangent points
  # (a = d cos^2(alpha)); beyond the chord the circle itself is the hull, and
  # the lobe stands in for it.
  d = float(np.hypot(cx, cy + tip))
  ex, ey = cx / d, (cy + tip) / d
  sin_a = r / d
  cos_a = float(np.sqrt(1.0 - sin_a**2))
  a = u * ex + (v + tip) * ey
  b = jnp.abs(u * ey - (v + tip) * ex)
  in_cone = (b * cos_a <= a * sin_a) & (a <= d * cos_a**2)
  in_triangle = (u * (cy + tip) <= (v + tip) * cx) & (v <= cy)
  return in_lobe | in_cone | in_triangle


def factor_classes_to_values(factors: jax.Array) -> tuple[jax.Array, ...]:
  """Maps factor classes [B, 5] to the arguments of ``render``.

  Args:
    factors: int classes in the order of ``FACTOR_NAMES``.

  Returns:
    ``(shape, scale, orientation, pos_x, pos_y)``, each [B].
  """
  factors = jnp.asarray(factors)
  return (factors[:, 0],
          jnp.asarray(SCALE_VALUES, jnp.float32)[factors[:, 1]],
          jnp.asarray(ORIENTATION_VALUES, jnp.float32)[factors[:, 2]],
          jnp.asarray(POSITION_VALUES, jnp.float32)[factors[:, 3]],
          jnp.asarray(POSITION_VALUES, jnp.float32)[factors[:, 4]])


@jax.jit
def render_from_classes(factors: jax.Array) -> jax.Array:
  """Draws images for factor classes [B, 5] (pure, jittable).

  Args:
    factors: int classes in the order of ``FACTOR_NAMES``.

  Returns:
    float32 [B, 64, 64, 1] with values in {0, 1}.
  """
  return render(*factor_classes_to_values(factors))


def _bucket_size(num: int, chunk: int) -> int:
  """Pads batch sizes to powers of two so only a few shapes get compiled."""
  return min(chunk, 1 << max(0, int(num - 1).bit_length()))


class ProceduralDSprites(ground_truth.GroundTruthData):
  """dSprites factors rendered by ``render``: no files, no data arrays.

  The device sampler draws a flat grid index with
  ``ground_truth.sample_uniform_indices`` and renders it, so for the same key it
  picks the same factors as the array-backed ``dsprites.DSprites``.
  """

  def __init__(self, chunk_size: int = _DEFAULT_CHUNK):
    """Creates the dataset.

    Args:
      chunk_size: most images rendered per call on the host path; bounds the
        memory of the intermediate [chunk, 64, 64] arrays.
    """
    if chunk_size < 1:
      raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
    self.factor_names = FACTOR_NAMES
    self.factors_num_values = FACTOR_SIZES
    self.observation_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
    self.source = "dsprites (procedural renderer, not the official images)"
    self.factor_values = (np.arange(3, dtype=np.float64), SCALE_VALUES,
                          ORIENTATION_VALUES, POSITION_VALUES, POSITION_VALUES)
    self._chunk_size = int(chunk_size)

  has_observation_index = True

  def observations_at(self, indices: np.ndarray) -> np.ndarray:
    """Renders the images of grid indices: float32 [num, 64, 64, 1]."""
    return self._render(self.index_to_factors(np.asarray(indices)))

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state) -> np.ndarray:
    """Renders the images of the given factor classes.

    Args:
      factors: int [num, 5] factor classes.
      random_state: unused (the renderer is deterministic); kept for the
        disentanglement_lib interface.

    Returns:
      float32 [num, 64, 64, 1] in {0, 1}.
    """
    del random_state
    factors = np.asarray(factors)
    ground_truth.check_factor_grid("ProceduralDSprites", factors,
                                   self.factors_num_values)
    return self._render(factors)

  def _render(self, factors: np.ndarray) -> np.ndarray:
    """Renders valid factor classes [num, 5] chunk by chunk."""
    num = factors.shape[0]
    out = np.empty((num, *self.observation_shape), np.float32)
    for start in range(0, num, self._chunk_size):
      chunk = factors[start:start + self._chunk_size].astype(np.int32)
      padded = np.zeros((_bucket_size(len(chunk), self._chunk_size), 5),
                        np.int32)
      padded[:len(chunk)] = chunk
      out[start:start + len(chunk)] = np.asarray(
          render_from_classes(padded))[:len(chunk)]
    return out

  def sample_device_batch(self, arrays, key: jax.Array,
                          batch_size: int) -> jax.Array:
    """Draws uniform factor combinations and renders them (pure JAX).

    Args:
      arrays: unused (``device_arrays()`` is empty); kept for the interface.
      key: PRNG key.
      batch_size: static batch size.

    Returns:
      float32 [batch_size, 64, 64, 1] in {0, 1}.
    """
    del arrays
    index = ground_truth.sample_uniform_indices(key, batch_size,
                                                self.num_images)
    factors = jnp.stack(jnp.unravel_index(index, self.factors_num_values),
                        axis=-1)
    return render_from_classes(factors)

  def describe(self) -> dict:
    """Base description plus the renderer's geometry (so runs record it)."""
    description = super().describe()
    description["renderer"] = {
        "image_size": IMAGE_SIZE,
        "shapes": list(SHAPE_NAMES),
        "position_min_px": POSITION_MIN_PX,
        "position_range_px": POSITION_RANGE_PX,
        "half_size_px_at_scale_1": HALF_SIZE_PX,
        "ellipse_semi_axes": [ELLIPSE_SEMI_MAJOR, ELLIPSE_SEMI_MINOR],
        "heart": {"lobe_x": HEART_LOBE_X, "lobe_y": HEART_LOBE_Y,
                  "lobe_radius": HEART_LOBE_RADIUS,
                  "lobe_width": HEART_LOBE_WIDTH,
                  "tip_depth": HEART_TIP_DEPTH},
    }
    return description
