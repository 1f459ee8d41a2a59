"""MATLAB-compatible bicubic `imresize` in JAX, and the super-resolution operator built on it.

Super-resolution papers make their low-resolution inputs and their bicubic
baseline with MATLAB's `imresize(im, s, 'bicubic')`; a different resampler
(PIL, OpenCV, `jax.image.resize`) shifts published PSNRs by tenths of a dB.
This module follows MATLAB's algorithm step by step:

- Keys' cubic kernel with a = -0.5, support 4 pixels;
- when shrinking (scale < 1) the kernel is stretched by 1/scale and scaled by
  `scale` (antialiasing), so its support is 4/scale input pixels;
- output pixel x (1-based) samples input position u = x/scale + 0.5 (1 - 1/scale);
- each output pixel's weights are normalised to sum to 1;
- indices outside the image are mirrored (symmetric, edge pixel repeated);
- the image is resized one axis at a time, the axis with the smaller scale first
  (rows first on a tie), and the output side is ceil(scale * input side).

The weights of each axis form an [out, in] matrix built with numpy when the
function is traced (shapes are static); applying it is an einsum, so
`imresize` is linear, and works under jit, vmap and grad. `imresize_adjoint`
applies the transposed matrices.
"""

import dataclasses
import functools
import math
import numbers
from typing import Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.errors import CnnreconError

SR_SCALES = (2, 3, 4)
_KERNEL_WIDTH = 4.0  # Keys' cubic is non-zero on (-2, 2)


def cubic(x: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5 (MATLAB's 'bicubic').

  Args:
    x: distances in pixels.

  Returns:
    Kernel values, same shape as `x` (float64).
  """
  absx = np.abs(np.asarray(x, np.float64))
  near = (1.5 * absx - 2.5) * absx**2 + 1
  far = ((-0.5 * absx + 2.5) * absx - 4) * absx + 2
  return np.where(absx <= 1, near, np.where(absx <= 2, far, 0.0))


@functools.lru_cache(maxsize=256)
def resize_matrix(in_size: int, out_size: int, scale: float) -> np.ndarray:
  """The [out_size, in_size] weights of MATLAB's bicubic resize along one axis.

  Args:
    in_size: input length (> 0).
    out_size: output length (> 0).
    scale: out/in magnification used for the kernel and the coordinate map.

  Returns:
    A read-only float64 matrix whose rows sum to 1.
  """
  shrinking = scale < 1
  # Antialiasing: a low-pass kernel as wide as the output pixel spacing.
  width = _KERNEL_WIDTH / scale if shrinking else _KERNEL_WIDTH
  x = np.arange(1, out_size + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - width / 2)
  taps = int(math.ceil(width)) + 2
  index = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside
  distance = u[:, None] - index
  weights = scale * cubic(scale * distance) if shrinking else cubic(distance)
  weights /= weights.sum(axis=1, keepdims=True)
  # MATLAB's mirror: [1..n, n..1] repeated, so index 0 -> 1 and n+1 -> n.
  period = 2 * in_size
  folded = np.mod(index - 1, period)
  mirrored = np.where(folded < in_size, folded, period - 1 - folded).astype(np.int64)
  matrix = np.zeros((out_size, in_size), np.float64)
  # Mirrored taps can land on the same pixel: add, do not overwrite.
  np.add.at(matrix, (np.repeat(np.arange(out_size), taps), mirrored.ravel()), weights.ravel())
  matrix.flags.writeable = False
  return matrix


def _check_positive(value, name: str, *, integer: bool = False):
  kind = numbers.Integral if integer else numbers.Real
  if isinstance(value, bool) or not isinstance(value, kind) or not 0 < value < math.inf:
    what = 'a positive integer' if integer else 'a positive finite number'
    raise CnnreconError(f'imresize: {name}={value!r} must be {what}')
  return int(value) if integer else float(value)


def resize_plan(in_shape: Sequence[int], scale=None,
                output_shape: Optional[Sequence[int]] = None) -> Tuple[Tuple[int, int, float], ...]:
  """What MATLAB's imresize does to (H, W): (axis, out_size, scale) in the order applied.

  Args:
    in_shape: (H, W).
    scale: one magnification for both axes, or a pair (H, W).
    output_shape: (H_out, W_out); with `scale` unset the per-axis scales are out/in.

  Returns:
    Up to two (axis, out_size, scale) steps (0 = rows, 1 = columns); axes whose
    size and scale are both 1 are skipped.
  """
  if scale is None and output_shape is None:
    raise CnnreconError('imresize: give scale or output_shape')
  if scale is not None:
    pair = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    scales = tuple(_check_positive(s, 'scale') for s in pair)
  if output_shape is None:
    # round() first, so that float round-off (0.1 * 30 = 3.0000000000000004) adds no pixel.
    output_shape = tuple(math.ceil(round(s * n, 9)) for s, n in zip(scales, in_shape))
  output_shape = tuple(_check_positive(n, 'output_shape', integer=True) for n in output_shape)
  if scale is None:
    scales = tuple(o / n for o, n in zip(output_shape, in_shape))
  # A stable sort: the smaller scale first, rows first on a tie (MATLAB's order).
  order = sorted(range(2), key=lambda axis: scales[axis])
  return tuple((axis, output_shape[axis], scales[axis]) for axis in order
               if not (scales[axis] == 1 and output_shape[axis] == in_shape[axis]))


def _quantize_uint8(image: jax.Array) -> jax.Array:
  # MATLAB rounds half away from zero and saturates when its output class is uint8.
  return jnp.clip(jnp.floor(image * 255 + 0.5), 0, 255) / 255


def _apply_axis(image: jax.Array, matrix: np.ndarray, axis: int) -> jax.Array:
  weights = jnp.asarray(matrix, image.dtype)
  spec = '...hwc->...owc' if axis == 0 else '...hwc->...hoc'
  operands = 'oh,' if axis == 0 else 'ow,'
  # HIGHEST: GPUs (TF32) and TPUs (bfloat16) would otherwise round the weights.
  return jnp.einsum(operands + spec, weights, image, precision=jax.lax.Precision.HIGHEST)


def imresize(image: jax.Array, scale=None, output_shape: Optional[Sequence[int]] = None, *,
             quantize_uint8: bool = False) -> jax.Array:
  """Resizes images like MATLAB's `imresize(image, scale, 'bicubic')`.

  Args:
    image: images [..., H, W, C] (HWC, or NHWC: leading axes are batch axes), float.
    scale: magnification (0.5 halves each side), one number or an (H, W) pair.
    output_shape: (H_out, W_out) instead of, or together with, `scale` (then `scale`
      sets the kernel and the coordinate map, `output_shape` the size).
    quantize_uint8: round to multiples of 1/255 and clip to [0, 1] after each axis,
      as MATLAB does when `image` is uint8 (its output class is its input class).
      Not differentiable; off for training.

  Returns:
    The resized images [..., H_out, W_out, C], same dtype as `image`.
  """
  plan = resize_plan((image.shape[-3], image.shape[-2]), scale, output_shape)
  return _resize_by_plan(image, plan, quantize_uint8)


# Jitted so that eager callers compile one program per image shape instead of one per op.
@functools.partial(jax.jit, static_argnums=(1, 2))
def _resize_by_plan(image: jax.Array, plan, quantize_uint8: bool) -> jax.Array:
  for axis, out_size, axis_scale in plan:
    matrix = resize_matrix(image.shape[-3 + axis], out_size, axis_scale)
    image = _apply_axis(image, matrix, axis)
    if quantize_uint8:
      image = _quantize_uint8(image)
  return image


def imresize_adjoint(resized: jax.Array, in_shape: Sequence[int], scale=None,
                     output_shape: Optional[Sequence[int]] = None) -> jax.Array:
  """The transpose of `imresize` (without quantisation): <imresize(x), y> = <x, adjoint(y)>.

  Args:
    resized: arrays [..., H_out, W_out, C] shaped like `imresize`'s output.
    in_shape: (H, W) of the images `imresize` was given.
    scale: as given to `imresize`.
    output_shape: as given to `imresize`.

  Returns:
    Arrays [..., H, W, C].
  """
  steps = resize_plan(tuple(in_shape), scale, output_shape)
  return _adjoint_by_plan(resized, steps, tuple(in_shape))


@functools.partial(jax.jit, static_argnums=(1, 2))
def _adjoint_by_plan(resized: jax.Array, steps, in_shape) -> jax.Array:
  sizes = [in_shape]
  for axis, out_size, _ in steps:
    sizes.append(tuple(out_size if a == axis else sizes[-1][a] for a in range(2)))
  # Transposes apply in reverse order, each mapping an axis back to its input size.
  for (axis, out_size, axis_scale), before in zip(reversed(steps), reversed(sizes[:-1])):
    matrix = resize_matrix(before[axis], out_size, axis_scale)
    resized = _apply_axis(resized, matrix.T, axis)
  return resized


def modcrop(image, scale: int):
  """Crops H and W down to multiples of `scale` (bottom and right), the SR convention.

  Args:
    image: an image [..., H, W, C] (numpy or JAX).
    scale: the super-resolution factor.

  Returns:
    image[..., :H - H % scale, :W - W % scale, :].
  """
  height, width = image.shape[-3], image.shape[-2]
  return image[..., :height - height % scale, :width - width % scale, :]


@dataclasses.dataclass(frozen=True)
class BicubicDownsample:
  """Super-resolution: MATLAB-bicubic downsampling by an integer `scale` (2, 3 or 4).

  Clean images must have sides that are multiples of `scale` (crop them with
  `modcrop`, as the SR literature does, or choose patch sizes that are), so that
  bicubic upsampling of the observation returns exactly the clean size. With
  `quantize`, the observation is rounded to 8 bits after each axis, as MATLAB's
  `imresize` returns an 8-bit image's downsampling (what the SR test scripts
  feed their models).
  """

  scale: int
  quantize: bool = False

  def __post_init__(self):
    scale = self.scale
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real) or scale not in SR_SCALES:
      allowed = ', '.join(map(str, SR_SCALES))
      raise CnnreconError(f'super-resolution scale {scale!r} is not supported (allowed: {allowed}); '
                          'set e.g. --scale 2 (or --config.task.super_resolve.scale=2)')
    object.__setattr__(self, 'scale', int(scale))

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """The low-resolution observation [H/scale, W/scale, C] of one clean HWC image.

    `key` is unused: bicubic downsampling is deterministic.
    """
    del key
    height, width = clean.shape[-3], clean.shape[-2]
    if height % self.scale or width % self.scale:
      raise CnnreconError(f'a {height}x{width} image is not a multiple of the super-resolution scale '
                          f'{self.scale}: crop it with cnnrecon.ops.resize.modcrop (the SR convention) or '
                          f'use a patch size that is a multiple of {self.scale}')
    shape = (height // self.scale, width // self.scale)
    return imresize(clean, 1 / self.scale, output_shape=shape, quantize_uint8=self.quantize)

  def initial_estimate(self, observed: jax.Array) -> jax.Array:
    """Bicubic upsampling by `scale`, back to the clean image's size."""
    return imresize(observed, self.scale)

  def describe(self) -> str:
    """'bicubic xS (MATLAB imresize)'."""
    return f'bicubic x{self.scale} (MATLAB imresize)'
