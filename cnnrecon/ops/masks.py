"""Masks for inpainting: random missing pixels, and random regions (boxes, free-form strokes) whose mask
the observation carries as a last channel."""

import dataclasses
import functools
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.sparse import linalg as sparse_linalg

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.base import IdentityEstimate
from cnnrecon.ops.noise import check_number


def random_pixel_mask(key: jax.Array, shape: Sequence[int], *,
                      keep_prob: float) -> jax.Array:
  """Draws a mask whose entries are 1 (kept) with probability `keep_prob`.

  Pass a trailing channel axis of 1 (e.g. [H, W, 1]) so that all channels of
  a pixel are dropped together when the mask broadcasts over an image.

  Args:
    key: typed PRNG key (`jax.random.key`).
    shape: mask shape.
    keep_prob: probability that an entry is kept, in (0, 1].

  Returns:
    A float32 array of 0s and 1s of the given shape.
  """
  return jax.random.bernoulli(key, keep_prob, tuple(shape)).astype(jnp.float32)


def apply_pixel_mask(images: jax.Array, mask: jax.Array) -> jax.Array:
  """Zeroes the masked-out pixels.

  Args:
    images: images, e.g. [B, H, W, C] or [H, W, C].
    mask: 0/1 mask broadcastable to `images` (e.g. [..., H, W, 1]).

  Returns:
    `images * mask` in the dtype of `images`.
  """
  return images * mask.astype(images.dtype)


@dataclasses.dataclass(frozen=True)
class RandomPixelMask(IdentityEstimate):
  """Keeps each pixel (all its channels) with probability `keep_prob`, zeroes the rest."""

  keep_prob: float

  def __post_init__(self):
    keep_prob = check_number(self.keep_prob, name='task.inpaint.keep_prob', example='0.5', low=0,
                             low_inclusive=False)
    if keep_prob > 1:
      raise CnnreconError(f'task.inpaint.keep_prob={keep_prob} must be in (0, 1] (the fraction of pixels kept); '
                          'set e.g. --config.task.inpaint.keep_prob=0.5')

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One masked observation of an HWC image."""
    mask = random_pixel_mask(key, clean.shape[:-1] + (1,), keep_prob=float(self.keep_prob))
    return apply_pixel_mask(clean, mask)

  def describe(self) -> str:
    """'inpainting, keep K% of pixels'."""
    return f'inpainting, keep {self.keep_prob:.0%} of pixels'


# ---------------------------------------------------------------- region masks: random boxes and free-form strokes

REGION_KINDS = ('boxes', 'strokes', 'both')
# Counts of holes are given per 64x64 pixels, so that the missing fraction is the same on training
# patches and on the larger images a net is evaluated on (a convolutional net sees holes locally).
COUNT_AREA = 64 * 64


def holes_for(density: float, height: int, width: int) -> int:
  """How many holes an image of `height` x `width` gets at `density` holes per 64x64 px: at least one."""
  return max(1, int(density * height * width / COUNT_AREA + 0.5))


def random_boxes_mask(key: jax.Array, height: int, width: int, *, count: int, min_size: int,
                      max_size: int) -> jax.Array:
  """A mask with `count` axis-aligned rectangular holes at uniform random places.

  Each side is drawn uniformly from `min_size..max_size` pixels (at most the image's side),
  independently, and the box lies inside the image. Jit- and vmap-able: the shape arguments
  are static.

  Args:
    key: typed PRNG key (`jax.random.key`), one per example.
    height, width: the image's size in pixels.
    count: number of boxes (they may overlap).
    min_size, max_size: range of a box side in pixels (1 <= min_size <= max_size).

  Returns:
    [height, width, 1] float32: 1 = known pixel, 0 = hole.
  """
  size_key, corner_key = jax.random.split(key)
  limits = jnp.array([height, width])
  sizes = jnp.minimum(jax.random.randint(size_key, (count, 2), min_size, max_size + 1), limits)
  corners = jnp.floor(jax.random.uniform(corner_key, (count, 2)) * (limits - sizes + 1)).astype(jnp.int32)
  rows, cols = (_inside(jnp.arange(n), corners[:, axis], sizes[:, axis]) for axis, n in enumerate((height, width)))
  # A pixel is in a hole when some box covers both its row and its column: one [H, N] x [N, W] product.
  covered = jnp.matmul(rows.T, cols, precision=jax.lax.Precision.HIGHEST)
  return (covered == 0).astype(jnp.float32)[..., None]


def _inside(positions: jax.Array, starts: jax.Array, sizes: jax.Array) -> jax.Array:
  """[N, P] float32: whether each position lies in each interval [start, start + size)."""
  return ((positions >= starts[:, None]) & (positions < (starts + sizes)[:, None])).astype(jnp.float32)


def random_strokes_mask(key: jax.Array, height: int, width: int, *, count: int, segments: int, length: float,
                        min_width: float, max_width: float) -> jax.Array:
  """A mask with `count` free-form brush strokes (as in DeepFill v2's training masks).

  A stroke starts at a uniform random pixel and walks `segments` straight segments, each of a
  uniform random direction and a length uniform in [length / 2, length] pixels (its vertices
  clipped to the image); its width is uniform in [min_width, max_width]. Segments are drawn
  with round caps, so consecutive ones join smoothly. Jit- and vmap-able.

  Args:
    key: typed PRNG key (`jax.random.key`), one per example.
    height, width: the image's size in pixels.
    count: number of strokes.
    segments: straight segments per stroke (>= 1).
    length: longest segment, in pixels (> 0).
    min_width, max_width: range of a stroke's width in pixels (0 < min_width <= max_width).

  Returns:
    [height, width, 1] float32: 1 = known pixel, 0 = hole.
  """
  start_key, angle_key, length_key, width_key = jax.random.split(key, 4)
  limits = jnp.array([height - 1, width - 1], jnp.float32)
  starts = jax.random.uniform(start_key, (count, 1, 2)) * limits
  angles = jax.random.uniform(angle_key, (count, segments), maxval=2 * jnp.pi)
  lengths = jax.random.uniform(length_key, (count, segments), minval=length / 2, maxval=length)
  steps = lengths[..., None] * jnp.stack([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  vertices = jnp.clip(jnp.concatenate([starts, starts + jnp.cumsum(steps, axis=1)], axis=1), 0, limits)
  radii = jax.random.uniform(width_key, (count,), minval=min_width, maxval=max_width) / 2
  segment_ends = (vertices[:, :-1].reshape(-1, 2), vertices[:, 1:].reshape(-1, 2), jnp.repeat(radii, segments))
  # Each segment is drawn in a window around its start that holds every pixel it can reach
  # (100x less work than the whole image on 512 px evaluation images).
  reach = math.ceil(length + max_width / 2) + 1
  window = (min(height, 2 * reach + 1), min(width, 2 * reach + 1))
  offsets = jnp.stack(jnp.meshgrid(jnp.arange(window[0]), jnp.arange(window[1]), indexing='ij'), axis=-1)

  def paint(hole, segment):
    start, end, radius = segment
    corner = jnp.clip(jnp.floor(start).astype(jnp.int32) - reach, 0,
                      jnp.array([height - window[0], width - window[1]]))
    points = (corner + offsets).astype(jnp.float32)
    patch = jax.lax.dynamic_slice(hole, corner, window) | (_distance_to_segment(points, start, end) <= radius)
    return jax.lax.dynamic_update_slice(hole, patch, corner), None

  hole, _ = jax.lax.scan(paint, jnp.zeros((height, width), bool), segment_ends)
  return (~hole).astype(jnp.float32)[..., None]


def _distance_to_segment(points: jax.Array, start: jax.Array, end: jax.Array) -> jax.Array:
  """Euclidean distance of each point [..., 2] to the segment from `start` to `end`."""
  direction = end - start
  along = jnp.sum((points - start) * direction, axis=-1) / jnp.maximum(jnp.sum(direction ** 2), 1e-12)
  nearest = start + jnp.clip(along, 0.0, 1.0)[..., None] * direction
  return jnp.sqrt(jnp.sum((points - nearest) ** 2, axis=-1))


# The fill (`fill_holes`): Gaussian scales (sigma, px) from coarse to fine, the least part of a window that
# must be known for a scale to fill a pixel, then conjugate-gradient steps towards the biharmonic fill until
# the residual is `FILL_CG_TOLERANCE` of the right side (at most `FILL_CG_MAX_STEPS`).
# Mean PSNR (dB) with the `inpaint_unet.py:regions_cpu` holes on the 16 gray *training* samples, and the cost
# of a jitted batch of 8 64x64 patches on 2 CPU cores: scikit-image's inpaint_biharmonic 34.55; normalized
# convolution over (8, 4, 2, 1) alone 33.33 (48 ms); then 50 / 100 / 200 CG steps 34.36 / 34.56 / 34.55
# (60 / 71 / 98 ms); over (4, 2, 1) + 200 steps 34.46 (74 ms); the mean of the known pixels + 300 steps 34.48
# (67 ms); the earlier (32 .. 1) scales + 50 Jacobi steps 34.09 (256 ms: the wide blurs cost most).
# A fixed 100 steps did not converge on whole images, though: on the 4 held-out images (341-512 px sides)
# 100 / 300 / 1000 steps gave astronaut 29.76 / 30.13 / 30.17 dB against scikit-image's 30.17. Stopping at
# a relative residual of 1e-4 / 1e-5 / 1e-6 gives 31.42 dB mean on them each time (scikit-image 31.43;
# 100 steps 31.32), a batch of 8 64x64 patches in 112 / 134 / 152 ms, one 512x512 image in 0.7 / 1.0 / 1.3 s.
# 1e-4 it is: the same fill at the cheapest of the three (22 ms less per training batch than 1e-5).
# (Those timings had the blurs as convolutions and L^T as a linear transpose. The fill of a batch of 8 64x64 RGB
# patches at 1e-4 took 235 ms so; with the blurs as matrix products (`_gaussian_blur`) 109 ms, and with L^T = L
# (`_biharmonic_steps`) 51-80 ms, on 2 cores.)
FILL_SCALES = (8.0, 4.0, 2.0, 1.0)
FILL_SUPPORT = 0.1
FILL_CG_TOLERANCE = 1e-4
FILL_CG_MAX_STEPS = 3000


def fill_holes(image: jax.Array, mask: jax.Array) -> jax.Array:
  """Fills the holes of one image smoothly: normalized convolution coarse to fine, then biharmonic CG steps.

  At each scale a hole pixel takes the Gaussian-weighted mean of the known pixels around it,
  `blur(image * mask) / blur(mask)`, where they make up enough of the window inside the image
  (`FILL_SUPPORT`); finer scales overwrite coarser ones, so small holes take their nearest
  surroundings and large ones a wider average (pixels out of every scale's reach take the mean of all
  known pixels). From there, conjugate-gradient steps minimise the squared Laplacian
  over the hole pixels (the biharmonic fill that scikit-image's `inpaint_biharmonic` solves exactly
  with a sparse factorisation, which has no JAX counterpart; `jax.scipy.sparse.linalg.cg` does the
  iterations, until the residual falls to `FILL_CG_TOLERANCE` of the right side's norm). Known
  pixels are kept. Pure JAX (jit / vmap / grad).

  Args:
    image: [H, W, C] image (its holes' values are ignored).
    mask: [H, W, 1] mask, 1 = known pixel.

  Returns:
    The filled [H, W, C] image.
  """
  known = jnp.sum(mask)
  fill = jnp.broadcast_to(jnp.sum(image * mask, axis=(0, 1)) / jnp.maximum(known, 1.0), image.shape)
  for sigma in FILL_SCALES:
    weight = _gaussian_blur(mask, sigma)
    # The window's part inside the image: borders are not holes.
    support = weight / _gaussian_blur(jnp.ones_like(mask), sigma)
    mean = _gaussian_blur(image * mask, sigma) / jnp.maximum(weight, 1e-6)
    fill = jnp.where(support > FILL_SUPPORT, mean, fill)
  return _biharmonic_steps(image * mask, 1 - mask, start=fill)


def _laplacian(image: jax.Array) -> jax.Array:
  """The 5-point Laplacian of [H, W, C], edges repeated (no flux across the image's border)."""
  padded = jnp.pad(image, ((1, 1), (1, 1), (0, 0)), mode='edge')
  return padded[:-2, 1:-1] + padded[2:, 1:-1] + padded[1:-1, :-2] + padded[1:-1, 2:] - 4 * image


def _biharmonic_steps(kept: jax.Array, holes: jax.Array, *, start: jax.Array) -> jax.Array:
  """CG steps (to `FILL_CG_TOLERANCE`) on min over hole values z of |L(kept + holes * z)|^2 (L: `_laplacian`)."""
  # L with repeated edges is symmetric (each axis' second difference has -1 at both ends of its
  # diagonal), so L^T L = L L: cheaper than jax.linear_transpose's transpose of the edge padding.
  normal = lambda values: holes * _laplacian(_laplacian(holes * values))
  right_side = -holes * _laplacian(_laplacian(kept))
  values, _ = sparse_linalg.cg(normal, right_side, x0=holes * start, maxiter=FILL_CG_MAX_STEPS,
                               tol=FILL_CG_TOLERANCE)
  return kept + holes * values


def _gaussian_blur(image: jax.Array, sigma: float) -> jax.Array:
  """A separable Gaussian blur of each channel of [H, W, C], zero outside the image (radius 3 sigma).

  Written as two products with banded matrices rather than as a convolution: XLA's CPU convolution of
  one-channel images is slow (sigma 8 on a batch of 8 64x64 RGB patches: 47 ms as a convolution,
  0.65 ms as products), and the blurs were half of the fill's cost. Equals
  `scipy.ndimage.gaussian_filter(mode='constant', truncate=3)` (tests/test_tasks_deblur_inpaint.py).
  """
  rows, cols = (jnp.asarray(_blur_matrix(size, sigma), image.dtype) for size in image.shape[:2])
  highest = jax.lax.Precision.HIGHEST  # full float32 on GPUs and TPUs too: the fill is a baseline
  blurred = jnp.einsum('ij,jwc->iwc', rows, image, precision=highest)
  return jnp.einsum('wv,ivc->iwc', cols, blurred, precision=highest)


@functools.lru_cache(maxsize=64)
def _blur_matrix(size: int, sigma: float) -> np.ndarray:
  """[size, size] float32: row i holds the normalised Gaussian taps centred on i, cut at the image's edges."""
  radius = int(3 * sigma + 0.5)
  taps = np.exp(-np.arange(-radius, radius + 1, dtype=np.float32) ** 2 / np.float32(2 * sigma ** 2))
  taps = taps / np.sum(taps)
  offsets = np.arange(size)[None, :] - np.arange(size)[:, None]  # column - row
  inside = np.abs(offsets) <= radius
  return np.where(inside, taps[np.clip(offsets + radius, 0, 2 * radius)], 0).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class RegionMask:
  """Holes of random boxes and/or free-form strokes; the observation carries its mask as a last channel.

  The observation of an [H, W, C] image is [H, W, C + 1]: the image with its holes zeroed, then
  the mask (1 = known pixel, 0 = hole). The initial estimate is the masked image [H, W, C]. Hole
  counts are per 64x64 pixels (`holes_for`), sizes in pixels; options are checked in one line each
  (they are `task.inpaint_regions.*`).
  """

  kind: str = 'both'
  boxes: float = 1.0
  box_min: int = 8
  box_max: int = 24
  strokes: float = 1.0
  stroke_segments: int = 4
  stroke_length: float = 20.0
  stroke_min_width: float = 3.0
  stroke_max_width: float = 9.0

  def __post_init__(self):
    if self.kind not in REGION_KINDS:
      raise CnnreconError(f'task.inpaint_regions.kind={self.kind!r} is not one of {", ".join(REGION_KINDS)}; '
                          'set e.g. --config.task.inpaint_regions.kind=both')
    for name in ('boxes', 'strokes', 'stroke_length', 'stroke_min_width', 'stroke_max_width'):
      check_number(getattr(self, name), name=f'task.inpaint_regions.{name}', example='4', low=0,
                   low_inclusive=False)
    for name in ('box_min', 'box_max', 'stroke_segments'):
      _check_positive_int(getattr(self, name), f'task.inpaint_regions.{name}')
    for low, high in (('box_min', 'box_max'), ('stroke_min_width', 'stroke_max_width')):
      if getattr(self, low) > getattr(self, high):
        raise CnnreconError(f'task.inpaint_regions.{low}={getattr(self, low)!r} is larger than {high}='
                            f'{getattr(self, high)!r}; set {low} <= {high}')

  def mask(self, key: jax.Array, height: int, width: int) -> jax.Array:
    """The [height, width, 1] mask (1 = known) of one example, from its own key."""
    return _region_mask(self, key, height, width)

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One observation of an HWC image: the masked image and its mask, [H, W, C + 1]."""
    mask = self.mask(key, clean.shape[0], clean.shape[1])
    return jnp.concatenate([apply_pixel_mask(clean, mask), mask.astype(clean.dtype)], axis=-1)

  def initial_estimate(self, observed: jax.Array) -> jax.Array:
    """The masked image (holes are 0): the observation without its mask channel."""
    return observed[..., :-1]

  def describe(self) -> str:
    """E.g. 'inpainting, boxes 8-24 px (1 per 64x64 px) and strokes ...'."""
    parts = []
    if self.kind in ('boxes', 'both'):
      parts.append(f'boxes {self.box_min}-{self.box_max} px ({self.boxes:g} per 64x64 px)')
    if self.kind in ('strokes', 'both'):
      parts.append(f'strokes {self.stroke_min_width:g}-{self.stroke_max_width:g} px wide, {self.stroke_segments} '
                   f'segments up to {self.stroke_length:g} px ({self.strokes:g} per 64x64 px)')
    return 'inpainting, ' + ' and '.join(parts)


# Jitted so that an eager call (evaluation observes one image at a time) compiles one program per image
# size instead of dispatching each op; inside a jitted step it is inlined.
@functools.partial(jax.jit, static_argnames=('operator', 'height', 'width'))
def _region_mask(operator: RegionMask, key: jax.Array, height: int, width: int) -> jax.Array:
  box_key, stroke_key = jax.random.split(key)
  mask = jnp.ones((height, width, 1), jnp.float32)
  if operator.kind in ('boxes', 'both'):
    mask = mask * random_boxes_mask(box_key, height, width, count=holes_for(operator.boxes, height, width),
                                    min_size=operator.box_min, max_size=operator.box_max)
  if operator.kind in ('strokes', 'both'):
    mask = mask * random_strokes_mask(
        stroke_key, height, width, count=holes_for(operator.strokes, height, width),
        segments=operator.stroke_segments, length=float(operator.stroke_length),
        min_width=float(operator.stroke_min_width), max_width=float(operator.stroke_max_width))
  return mask


def _check_positive_int(value, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise CnnreconError(f'{name}={value!r} must be a positive integer; set e.g. --config.{name}=8')
  return value
