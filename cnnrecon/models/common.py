"""Helpers shared by the model families: conv layers, padding, dtype casts."""

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def he_normal_kernel_init(key: jax.Array, shape: tuple[int, ...],
                          dtype: Any = jnp.float32) -> jax.Array:
  """He-normal init for conv kernels [*window, in, out], suited to ReLU nets.

  The kernel is drawn as a 2-D [prod(window) * in, out] matrix and reshaped:
  the distribution is the same (the fan-in is the same), but with jax's
  partitionable threefry a rank-4 draw compiles about 3x slower on CPU,
  which dominated model init time.

  Args:
    key: PRNG key.
    shape: kernel shape; the last axis is the output features.
    dtype: param dtype.

  Returns:
    The initialized kernel of the given shape.
  """
  matrix_shape = (math.prod(shape[:-1]), shape[-1])
  return nn.initializers.he_normal()(key, matrix_shape, dtype).reshape(shape)


def conv(features: int, kernel_size: tuple[int, int] = (3, 3),
         **kwargs: Any) -> nn.Conv:
  """A stride-1 zero-'SAME'-padded conv with He-normal kernels."""
  return nn.Conv(features, kernel_size, padding='SAME',
                 kernel_init=he_normal_kernel_init, **kwargs)


class ConvTranspose(nn.Module):
  """A 2x2, stride-2 transposed conv computed as one matmul and a pixel shuffle.

  Equal to `flax.linen.ConvTranspose(features, (2, 2), strides=(2, 2))` (same
  parameter names, shapes, init and output; tested), and named like it so
  checkpoints keep their paths. Why: with kernel == stride the output blocks
  do not overlap, so each input pixel maps to its 2x2 block by a dense
  [C, 4F] matmul. XLA's CPU backend runs the weight gradient of the
  lhs-dilated convolution flax emits with a naive loop: 1.5 s of a 1.9 s U-Net
  train step (depth 3, batch 32 of 64x64) on a 2-core Xeon.

  Attributes:
    features: output channels.
    dtype: compute dtype (params stay float32).
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    kernel = self.param('kernel', he_normal_kernel_init, (2, 2, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    batch, height, width, _ = x.shape
    # flax's transposed conv correlates with the spatially flipped kernel.
    blocks = jnp.einsum('bhwc,ijcf->bhiwjf', x, kernel[::-1, ::-1])
    return blocks.reshape(batch, 2 * height, 2 * width, self.features) + bias


def upsample(features: int, **kwargs: Any) -> ConvTranspose:
  """A learned x2 upsampling: 2x2 transposed conv with stride 2."""
  return ConvTranspose(features, **kwargs)


def upsample_nearest_2x(x: jnp.ndarray) -> jnp.ndarray:
  """Nearest-neighbour x2 upsampling of NHWC feature maps (the style nets' artefact-free upsampling)."""
  batch, height, width, channels = x.shape
  return jax.image.resize(x, (batch, 2 * height, 2 * width, channels), 'nearest')


def max_pool_2x2(x: jnp.ndarray) -> jnp.ndarray:
  """2x2 max-pooling with stride 2 of NHWC images with even sides.

  The same values as `nn.max_pool(x, (2, 2), strides=(2, 2))`, as a reshape
  and a max: its gradient is a compare-and-select that XLA fuses, where the
  reduce-window gradient (select-and-scatter) was 100 ms of a 750 ms U-Net
  train step on a 2-core CPU. The gradients differ only where a window holds
  tied maxima (this one splits it among them); after a ReLU such ties are
  zeros, whose gradient the ReLU drops anyway.
  """
  batch, height, width, channels = x.shape
  windows = x.reshape(batch, height // 2, 2, width // 2, 2, channels)
  return jnp.max(windows, axis=(2, 4))


def pad_to_multiple(x: jnp.ndarray, multiple: int) -> jnp.ndarray:
  """Reflect-pads NHWC images at the bottom and right to multiple-sized sides.

  Reflection (not zeros) keeps image statistics near the border, so the
  cropped-back output is not darkened by an artificial black frame.

  Args:
    x: images [B, H, W, C].
    multiple: the padded H and W are the next multiples of this.

  Returns:
    The padded images; `x` itself when H and W are already multiples.
  """
  height, width = x.shape[-3], x.shape[-2]
  pad_h = -height % multiple
  pad_w = -width % multiple
  if pad_h == 0 and pad_w == 0:
    return x
  return jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode='reflect')


def crop_to(x: jnp.ndarray, height: int, width: int) -> jnp.ndarray:
  """Undoes `pad_to_multiple`: keeps the top-left `height` x `width` pixels.

  Args:
    x: images [B, H', W', C] with H' >= height and W' >= width.
    height: output height.
    width: output width.

  Returns:
    Images [B, height, width, C].
  """
  return x[:, :height, :width, :]


def to_output(y: jnp.ndarray) -> jnp.ndarray:
  """Casts a model's result back to float32 whatever its compute dtype was."""
  return y.astype(jnp.float32)


def check_nhwc(x: Any, model_name: str) -> None:
  """Fails early, with a clear message, on inputs that are not NHWC batches."""
  if x.ndim != 4:
    raise ValueError(
        f'{model_name} expects NHWC images of rank 4, got shape {x.shape}; '
        'add a batch axis with x[None].')
