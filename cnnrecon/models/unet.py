"""U-Net (Ronneberger et al. 2015) with BatchNorm and a residual output."""

import functools
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError
from cnnrecon.models import common


class ConvBlock(nn.Module):
  """Two [3x3 conv (no bias) -> BatchNorm -> ReLU] layers of one width."""
  features: int
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    for _ in range(2):
      x = common.conv(self.features, use_bias=False, dtype=self.dtype)(x)
      x = nn.BatchNorm(use_running_average=not train, momentum=0.9,
                       dtype=self.dtype, axis_name=self.bn_axis_name)(x)
      x = nn.relu(x)
    return x


class UNet(nn.Module):
  """U-Net with `depth` downsamplings; width `features * 2**level`.

  Each level has a ConvBlock; the encoder max-pools 2x2, the decoder
  upsamples with 2x2 stride-2 transposed convs and concatenates the skip of
  the same level. A final 1x1 conv maps to `out_channels` and the net's
  output is added to the input's first `out_channels` channels (residual
  learning: it predicts a correction; further input channels, such as an
  inpainting mask, inform the net but are not part of the image).
  With `keep_known`, the input's last channel is a mask of known pixels
  (1 = known) and the correction applies only where it is 0: known pixels
  pass through unchanged, so the estimate agrees with the observation there
  and training spends the net on the holes (inpainting's data consistency).
  Inputs are reflect-padded to a multiple of 2**depth and cropped back.

  Attributes:
    depth: number of downsamplings (levels below full resolution).
    features: width at full resolution; doubles per level.
    dtype: compute dtype; params stay float32 and the output is float32.
    bn_axis_name: mesh axis over which BatchNorm statistics are averaged in
      data-parallel training, or None.
    out_channels: channels of the estimate (`build_model` passes the image
      channels); None means the input's.
    keep_known: the last input channel is a known-pixel mask; keep those
      pixels (`config.model.unet.keep_known`).
  """
  POOLINGS_PER_DEPTH = 1  # one 2x2 pooling per level: image sides must survive `depth` of them

  depth: int = 4
  features: int = 32
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  out_channels: int | None = None
  keep_known: bool = False

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Reconstructs images.

    Args:
      x: model inputs [B, H, W, C] float32, any H and W.
      train: True uses batch statistics and updates `batch_stats`.

    Returns:
      Clean-image estimates [B, H, W, out_channels] float32.
    """
    common.check_nhwc(x, 'UNet')
    height, width, channels = x.shape[1:]
    channels = self.out_channels or channels
    block = functools.partial(
        ConvBlock, dtype=self.dtype, bn_axis_name=self.bn_axis_name)
    width_at = lambda level: self.features * 2**level
    y = common.pad_to_multiple(x, 2**self.depth)
    skips = []
    for level in range(self.depth):
      y = block(width_at(level))(y, train=train)
      skips.append(y)
      y = common.max_pool_2x2(y)
    y = block(width_at(self.depth))(y, train=train)
    for level in reversed(range(self.depth)):
      y = common.upsample(width_at(level), dtype=self.dtype)(y)
      y = jnp.concatenate([y, skips[level].astype(y.dtype)], axis=-1)
      y = block(width_at(level))(y, train=train)
    y = common.conv(channels, (1, 1), dtype=self.dtype)(y)
    correction = common.to_output(common.crop_to(y, height, width))
    if self.keep_known:
      if x.shape[-1] != channels + 1:
        raise CnnreconError(f'model.unet.keep_known=True needs a task whose model input ends with a mask '
                            f'channel (inpaint_regions), but the input has {x.shape[-1]} channels for a '
                            f'{channels}-channel estimate: set --config.model.unet.keep_known=False')
      correction = correction * (1.0 - x[..., -1:].astype(jnp.float32))
    return x[..., :channels].astype(jnp.float32) + correction
