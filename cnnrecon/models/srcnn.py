"""SRCNN (Dong, Loy, He & Tang, ECCV 2014): three convolutions that sharpen a bicubic upsampling."""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError
from cnnrecon.models import common

# The paper's 9-5-5 network: (name, kernel side) of its three layers.
LAYERS = (('patch_extraction', 9), ('nonlinear_mapping', 5), ('reconstruction', 5))


class SRCNN(nn.Module):
  """SRCNN 9-5-5: conv9x9 (`features`) -> ReLU -> conv5x5 (`features // 2`) -> ReLU -> conv5x5 (C).

  The net takes the bicubic upsampling of the low-resolution image (the
  super-resolution task's initial estimate) and returns the high-resolution
  estimate of the same size; the task's `scale` never enters it.

  Padding: the paper used 'valid' convolutions, so its output lost 8 px on
  each side (4 + 2 + 2 to the 9, 5 and 5 kernels): it was trained on the
  central 17x17 of 33x33 sub-images and scored on what was left. Here every
  conv is zero-'SAME'-padded, so the estimate has the input's size and the SR
  border crop applies as for any other model; the outer 8 px then see zero
  padding, which the paper's net never saw, and are a little worse than the
  interior (the border crop of `scale` px removes only part of them).

  Kernels are He-normal (the paper drew them from N(0, 0.001^2) for SGD at
  learning rates 1e-4 / 1e-5; with Adam that start only delays training).
  With `residual=True` the net adds its output to the bicubic input (VDSR's
  residual learning, Kim et al. 2016), an option the paper did not have.

  Attributes:
    depth: the number of conv layers; SRCNN has exactly 3.
    features: width of the first layer (64 in the paper); the second has half.
    residual: predict the correction to the bicubic image instead of the image.
    dtype: compute dtype; params stay float32 and the output is float32.
    bn_axis_name: unused (SRCNN has no BatchNorm); every model takes it.
    out_channels: channels of the estimate (`build_model` passes the image
      channels); None means the input's.
  """
  MIN_DEPTH = 3

  depth: int = 3
  features: int = 64
  residual: bool = False
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  out_channels: int | None = None

  def __post_init__(self):
    if self.depth != len(LAYERS):
      raise CnnreconError(f'model.depth={self.depth} is not SRCNN\'s: it has exactly {len(LAYERS)} conv layers '
                          '(9-5-5); set --config.model.depth=3')
    if self.features < 2:
      raise CnnreconError(f'model.features={self.features} is too narrow for SRCNN, whose second layer has half '
                          'as many: set --config.model.features to 2 or more (64 in the paper)')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Super-resolves bicubic-upsampled images.

    Args:
      x: bicubic upsamplings [B, H, W, C] float32, any H and W.
      train: unused (no BatchNorm or dropout); every model takes it.

    Returns:
      High-resolution estimates [B, H, W, out_channels] float32.
    """
    del train
    common.check_nhwc(x, 'SRCNN')
    channels = self.out_channels or x.shape[-1]
    widths = (self.features, self.features // 2, channels)
    y = x
    for index, ((name, side), width) in enumerate(zip(LAYERS, widths)):
      y = common.conv(width, (side, side), dtype=self.dtype, name=name)(y)
      if index < len(LAYERS) - 1:
        y = nn.relu(y)
    y = common.to_output(y)
    return x[..., :channels].astype(jnp.float32) + y if self.residual else y
