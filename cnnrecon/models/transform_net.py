"""Johnson et al. (2016) feed-forward style transfer net, with conditional instance norm for several styles.

Layout (Johnson et al., supplementary Table 1, with Ulyanov et al.'s instance
normalisation): 9x9 conv, two stride-2 3x3 convs, `depth` residual blocks, two
upsampling stages, 9x9 conv to RGB. Two departures, both from Dumoulin et al.
(2017), who found them to remove artefacts: the upsampling stages are nearest
x2 + 3x3 conv instead of fractionally strided convs (no checkerboard), and all
convs pad by reflection. The output is a sigmoid, so images stay in [0, 1].

Conditional instance normalisation (Dumoulin et al. 2017): every instance norm
has one scale and shift per style, `gamma[s, c]`, `beta[s, c]`; a style mix
`w[b, s]` (one-hot in training, any convex weights at inference) uses
`w @ gamma` and `w @ beta`, which is how trained styles blend.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnrecon.models.common import upsample_nearest_2x


class ConditionalInstanceNorm(nn.Module):
  """Instance norm whose affine scale and shift are a style-weighted mix of `styles` learned pairs."""

  styles: int
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x: jax.Array, style_mix: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    gamma = self.param('scale', nn.initializers.ones, (self.styles, channels))
    beta = self.param('bias', nn.initializers.zeros, (self.styles, channels))
    mean = jnp.mean(x, axis=(1, 2), keepdims=True)
    variance = jnp.var(x, axis=(1, 2), keepdims=True)
    normalized = (x - mean) * jax.lax.rsqrt(variance + self.epsilon)
    scale = (style_mix @ gamma)[:, None, None, :].astype(x.dtype)
    shift = (style_mix @ beta)[:, None, None, :].astype(x.dtype)
    return normalized * scale + shift


class ReflectConv(nn.Module):
  """A 'SAME'-sized convolution whose border is padded by reflection."""

  features: int
  kernel: int
  stride: int = 1
  use_bias: bool = True
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    pad = self.kernel // 2
    x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')
    return nn.Conv(self.features, (self.kernel, self.kernel), strides=self.stride, padding='VALID',
                   use_bias=self.use_bias, dtype=self.dtype)(x)


class TransformNet(nn.Module):
  """Image -> stylized image, for `styles` styles (Johnson et al. 2016 + Dumoulin et al. 2017).

  Attributes:
    depth: residual blocks (Johnson: 5).
    features: width of the first conv (Johnson: 32; then 64 and 128).
    styles: how many styles the conditional instance norms hold.
    dtype: compute dtype (params stay float32).
    bn_axis_name: unused (instance norm needs no cross-device statistics);
      accepted because every model of the registry takes it.
  """

  depth: int = 5
  features: int = 32
  styles: int = 1
  dtype: jnp.dtype = jnp.float32
  bn_axis_name: str | None = None
  MIN_DEPTH = 0

  @nn.compact
  def __call__(self, inputs: jax.Array | dict[str, jax.Array], train: bool = False) -> jax.Array:
    """Stylizes `inputs`: NHWC images in [0, 1] (style 0), or `{'image', 'style'}` with a [B, styles] mix.

    Image sides should be multiples of 4 (two stride-2 convs, then two x2 upsamplings).
    """
    del train  # instance norm behaves the same in training and inference
    if isinstance(inputs, dict):
      images, style_mix = inputs['image'], inputs['style']
    else:
      images = inputs
      style_mix = jax.nn.one_hot(jnp.zeros(images.shape[0], jnp.int32), self.styles)
    style_mix = style_mix.astype(jnp.float32)

    def conv_norm(x, features, kernel, stride=1, relu=True):
      # No conv bias: the instance norm right after removes any per-channel constant, so its
      # gradient is zero up to float noise, which Adam would blow up to lr-sized updates.
      x = ReflectConv(features, kernel, stride, use_bias=False, dtype=self.dtype)(x)
      x = ConditionalInstanceNorm(self.styles)(x, style_mix)
      return nn.relu(x) if relu else x

    width = self.features
    x = conv_norm(images.astype(self.dtype), width, 9)
    x = conv_norm(x, 2 * width, 3, stride=2)
    x = conv_norm(x, 4 * width, 3, stride=2)
    for _ in range(self.depth):
      x = x + conv_norm(conv_norm(x, 4 * width, 3), 4 * width, 3, relu=False)
    for features in (2 * width, width):
      x = conv_norm(upsample_nearest_2x(x), features, 3)
    x = ReflectConv(images.shape[-1], 9, dtype=self.dtype)(x)
    return nn.sigmoid(x.astype(jnp.float32))
