"""FBPConvNet (Jin, McCann, Froustey, Unser 2017): a residual U-Net that removes the artefacts of an FBP image.

The paper's network (its Fig. 3), as here: per level two [3x3 conv -> BatchNorm -> ReLU], 2x2
max-pooling down, a 3x3 stride-2 transposed conv -> BatchNorm -> ReLU up, the skip of the same level
concatenated, widths doubling per level (64 .. 1024 for its depth 4), a final 1x1 conv, and the
input added to the output (the net learns the artefacts, not the image).

What differs from the paper: the convs before BatchNorm have no bias (BatchNorm's offset makes it
redundant); inputs of any size are reflect-padded to a multiple of 2**depth and cropped back; the
paper trained with SGD (momentum 0.99, rates 0.01 -> 0.001, batch 1, gradient clipping) where our
recipes use Adam and a cosine schedule (`experiments/ct_fbpconvnet.py`). The existing `UNet`
differs from the paper in its upsampling (a 2x2 transposed conv without BatchNorm and ReLU), which
is why this is a module of its own that reuses the U-Net's conv block.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.models import common
from cnnrecon.models.unet import ConvBlock

# A 3x3 stride-2 transposed conv (flax's 'SAME' padding) writes input row m with kernel row k to
# output row 2m + 2 - k. So output row 2m + a reads input rows m - 1 (offset 0) and m (offset 1):
# _TAPS[a, offset, k] = 1 where it reads kernel row k (phase 0: rows 0 and 2; phase 1: row 1).
_TAPS = np.zeros((2, 2, 3), np.float32)
_TAPS[0, 0, 0] = _TAPS[0, 1, 2] = _TAPS[1, 1, 1] = 1


def _subpixel_kernel(kernel: jnp.ndarray) -> jnp.ndarray:
  """A 3x3 transposed-conv kernel [3, 3, C, F] as the equivalent 2x2 conv kernel [2, 2, C, 4F].

  Output channels are ordered (row phase, column phase, feature), as the pixel shuffle reads them.
  """
  phases = jnp.einsum('aik,bjl,klcf->ijcabf', _TAPS, _TAPS, kernel)
  return phases.reshape(2, 2, kernel.shape[2], 4 * kernel.shape[3])


class UpConv3x3(nn.Module):
  """`flax.linen.ConvTranspose(features, (3, 3), strides=(2, 2), padding='SAME')`, computed as a 2x2 conv.

  Same parameters (`kernel` [3, 3, C, F], `bias`) and output (tested). Why: each output pixel of a
  stride-2 transposed conv reads at most 2x2 input pixels, so the layer is one ordinary 2x2 conv to
  4F channels and a pixel shuffle; XLA's CPU backend runs the lhs-dilated convolution of flax's
  layer 5x slower (measured: a 3-layer stack's gradient, 28 s against 5 s on 2 cores).
  """
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    kernel = self.param('kernel', common.he_normal_kernel_init, (3, 3, x.shape[-1], self.features))
    bias = self.param('bias', nn.initializers.zeros, (self.features,))
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    batch, height, width, _ = x.shape
    # Output row 2m + a reads input rows m - 1 and m: one zero row (column) before the image.
    padded = jnp.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)))
    phases = jax.lax.conv_general_dilated(padded, _subpixel_kernel(kernel), (1, 1), 'VALID',
                                                dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    phases = phases.reshape(batch, height, width, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return phases.reshape(batch, 2 * height, 2 * width, self.features) + bias


class FBPConvNet(nn.Module):
  """FBPConvNet: the FBP image in, the FBP image plus a learned correction out (see the module docstring).

  Attributes:
    depth: number of poolings (the paper: 4).
    features: width at full resolution, doubling per level (the paper: 64).
    dtype: compute dtype; params stay float32 and the output is float32.
    bn_axis_name: mesh axis over which BatchNorm statistics are averaged in data-parallel training.
    out_channels: channels of the estimate (`build_model` passes the image's); None means the input's.
  """
  POOLINGS_PER_DEPTH = 1

  depth: int = 4
  features: int = 64
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  out_channels: int | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Reconstructs images.

    Args:
      x: FBP images [B, H, W, C] float32, any H and W.
      train: True uses batch statistics and updates `batch_stats`.

    Returns:
      Estimates [B, H, W, out_channels] float32.
    """
    common.check_nhwc(x, 'FBPConvNet')
    height, width, channels = x.shape[1:]
    channels = self.out_channels or channels
    block = functools.partial(ConvBlock, dtype=self.dtype, bn_axis_name=self.bn_axis_name)
    width_at = lambda level: self.features * 2**level
    y = common.pad_to_multiple(x, 2**self.depth)
    skips = []
    for level in range(self.depth):
      y = block(width_at(level))(y, train=train)
      skips.append(y)
      y = common.max_pool_2x2(y)
    y = block(width_at(self.depth))(y, train=train)
    for level in reversed(range(self.depth)):
      y = UpConv3x3(width_at(level), dtype=self.dtype)(y)
      y = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9, dtype=self.dtype,
                               axis_name=self.bn_axis_name)(y))
      y = jnp.concatenate([y, skips[level].astype(y.dtype)], axis=-1)
      y = block(width_at(level))(y, train=train)
    # A zero last layer starts training at the FBP image itself rather than at FBP plus noise (measured:
    # without it, 400 steps of the :cpu recipe were spent climbing from 22 dB back to FBP's 30.5 dB).
    y = nn.Conv(channels, (1, 1), dtype=self.dtype, kernel_init=nn.initializers.zeros)(y)
    correction = common.to_output(common.crop_to(y, height, width))
    return x[..., :channels].astype(jnp.float32) + correction
