"""The seed stack (`model.name=seed_stack`): a conv/pool encoder and a mirrored upsampling decoder.

This is the 32x32 network the project started from, kept as a baseline.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from cnnrecon.models import common


class ConvPoolAutoencoder(nn.Module):
  """A plain encoder-decoder CNN, designed for 32x32 grayscale images.

  Encoder: `depth` blocks of 3x3 conv -> ReLU -> 2x2 max-pool (stride 2).
  Decoder: `depth` blocks of 2x2 stride-2 transposed conv -> 3x3 conv -> ReLU,
  then a 3x3 conv back to the input's channel count. The width stays
  `features` at every level (no doubling) so that parameter count grows only
  linearly with depth. The output is the clean-image estimate itself (no
  residual connection). Inputs whose sides do not divide 2**depth are
  reflect-padded and cropped back, so inference works on any image size.

  Attributes:
    depth: number of pooling blocks (and of upsampling blocks).
    features: width of every conv.
    dtype: compute dtype; params stay float32 and the output is float32.
    bn_axis_name: unused (this model has no BatchNorm); kept so every model
      shares one constructor signature.
  """
  # Training patches must survive `depth` 2x2 poolings (inference pads instead).
  POOLINGS_PER_DEPTH = 1  # one 2x2 pooling per level: image sides must survive `depth` of them

  depth: int = 3
  features: int = 32
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Reconstructs images.

    Args:
      x: observed images [B, H, W, C] float32.
      train: unused (no BatchNorm or dropout); part of the shared interface.

    Returns:
      Clean-image estimates [B, H, W, C] float32.
    """
    del train
    common.check_nhwc(x, 'ConvPoolAutoencoder')
    height, width, channels = x.shape[1:]
    y = common.pad_to_multiple(x, 2**self.depth)
    for _ in range(self.depth):
      y = nn.relu(common.conv(self.features, dtype=self.dtype)(y))
      y = common.max_pool_2x2(y)
    for _ in range(self.depth):
      y = common.upsample(self.features, dtype=self.dtype)(y)
      y = nn.relu(common.conv(self.features, dtype=self.dtype)(y))
    y = common.conv(channels, dtype=self.dtype)(y)
    return common.to_output(common.crop_to(y, height, width))


# The name this class had before; kept for code that imports it.
SeedStack = ConvPoolAutoencoder
