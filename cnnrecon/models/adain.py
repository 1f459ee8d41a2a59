"""The decoder of AdaIN arbitrary-style transfer (Huang & Belongie 2017): VGG relu4_1 features -> image.

AdaIN stylizes by re-normalising content features to a style's channel
statistics (`cnnrecon.style.losses.adain`, beside the mean / std it uses) and
decoding them back to pixels. The decoder mirrors the VGG encoder up to
relu4_1: 3x3 convs with reflection padding and ReLU, no normalisation (it would
undo the statistics AdaIN just set), and nearest x2 upsampling where VGG pools.
With `features=64` the widths are the paper's 256 / 128 / 64.

Its input is the [B, h, w, C] AdaIN feature map (C = 512 for VGG relu4_1,
whatever the decoder's width), not an image, so the train loop initialises it
from the task's `sample_model_input` rather than a zero image.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnrecon.models.common import upsample_nearest_2x
from cnnrecon.models.transform_net import ReflectConv

UPSAMPLING = 8  # three x2 stages mirror relu4_1's three VGG poolings


class AdaINDecoder(nn.Module):
  """AdaIN feature map [B, h, w, C] -> RGB image [B, 8h, 8w, 3] (in [0, 1] unless `train`).

  Attributes:
    depth: unused (the layout is the paper's nine convs); accepted because every
      model of the registry takes it (configs set 9, which the train-step
      memory estimate reads).
    features: width of the last stage; the stages are 4x, 2x and 1x this
      (Huang & Belongie: 64, i.e. 256 / 128 / 64).
    dtype: compute dtype (params stay float32).
    bn_axis_name: unused (no normalisation layers).
  """

  depth: int = 9
  features: int = 64
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None

  @nn.compact
  def __call__(self, features: jax.Array, train: bool = False) -> jax.Array:
    """Decodes AdaIN features (from VGG relu4_1, or any 1/8-resolution layer) to an image.

    Args:
      features: [B, h, w, C] AdaIN feature maps.
      train: True returns the unclipped image the training loss needs; False clips it to [0, 1].
    """

    def conv(x, width):
      return nn.relu(ReflectConv(width, 3, dtype=self.dtype)(x))

    width = self.features
    x = conv(features.astype(self.dtype), 4 * width)
    x = upsample_nearest_2x(x)
    for _ in range(3):
      x = conv(x, 4 * width)
    x = conv(x, 2 * width)
    x = upsample_nearest_2x(x)
    x = conv(x, 2 * width)
    x = conv(x, width)
    x = upsample_nearest_2x(x)
    x = conv(x, width)
    x = ReflectConv(3, 3, dtype=self.dtype)(x).astype(jnp.float32)
    # Linear in training, clipped to [0, 1] in inference, as the paper's decoder: a sigmoid (or a clip)
    # in training saturates under the VGG loss's large early gradients and leaves a decoder with zero
    # gradients; the loss network takes slightly out-of-range images without harm.
    return x if train else jnp.clip(x, 0.0, 1.0)
