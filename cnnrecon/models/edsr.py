"""EDSR (Lim et al., CVPRW 2017): residual blocks on the low-resolution image, then sub-pixel upsampling."""

import math
from typing import Any

import dm_pix
import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError
from cnnrecon.models import common

# What the input is centred by, instead of the DIV2K RGB mean (see EDSR's docstring).
MEAN = 0.5
_TORCH_DEFAULT = nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


def torch_default_kernel_init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
  """PyTorch's default conv kernel init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)), for kernels [*window, in, out].

  The authors' code keeps it, and it matters: without BatchNorm each residual block adds its branch to
  the stream; with this init a branch starts at about 1/18 of the stream's variance, with He init
  (variance 2 / fan_in, not 1 / (3 fan_in)) at twice it, which 16 blocks would blow up. Drawn as a [prod(window) * in, out] matrix and reshaped (same fan-in), as
  `common.he_normal_kernel_init` does: the rank-4 draw made EDSR's init compile 3x slower on CPU.
  """
  return _TORCH_DEFAULT(key, (math.prod(shape[:-1]), shape[-1]), dtype).reshape(shape)


def _conv(features: int, dtype: Any, name: str | None = None) -> nn.Conv:
  return nn.Conv(features, (3, 3), padding='SAME', dtype=dtype, kernel_init=torch_default_kernel_init, name=name)


def upsampling_stages(scale: int) -> tuple[int, ...]:
  """The sub-pixel stages of a x`scale` upsampler: x4 is two x2 stages, as in the paper; x2 and x3 one.

  Raises:
    CnnreconError: a scale the paper's upsampler has no stages for.
  """
  stages = {2: (2,), 3: (3,), 4: (2, 2)}.get(scale)
  if stages is None:
    raise CnnreconError(f'EDSR upsamples by 2, 3 or 4, not {scale!r}: set --config.task.super_resolve.scale '
                        'to 2, 3 or 4')
  return stages


class ResBlock(nn.Module):
  """conv3x3 -> ReLU -> conv3x3, scaled by `res_scale` and added to the input (no BatchNorm)."""
  features: int
  res_scale: float = 1.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    y = nn.relu(_conv(self.features, self.dtype)(x))
    y = _conv(self.features, self.dtype)(y)
    return x + self.res_scale * y


class EDSR(nn.Module):
  """EDSR: head conv, `depth` residual blocks, conv + global skip, sub-pixel upsampler, tail conv.

  The net takes the low-resolution image itself (`TAKES = 'observation'`) and
  returns an estimate `scale` times larger per side; it reads `scale` from the
  super-resolution task's operator (`build_model` hands it over). The
  upsampler is, per x2 (or x3) stage, a conv to `features * r^2` channels and
  a pixel shuffle (`dm_pix.depth_to_space`); x4 is two x2 stages, as in the
  paper. The last conv maps `features` to the image channels.

  EDSR-baseline is depth 16, features 64, res_scale 1 (the paper's large EDSR,
  32 blocks of 256, needs res_scale 0.1 to train stably).

  Mean shift: the paper subtracts the DIV2K RGB mean (0.4488, 0.4371, 0.4040)
  from the input and adds it back at the end. A mean of one RGB data set fits
  neither gray images nor other data, so this net subtracts 0.5 from every
  channel (the centre of the [0, 1] range, within 0.1 of DIV2K's means) and
  adds it back.

  Attributes:
    depth: the number of residual blocks (16 for EDSR-baseline).
    features: the width of every conv but the last (64 for EDSR-baseline).
    res_scale: the factor on each block's residual branch.
    operator: the task's forward operator; its `scale` is the upsampling.
    dtype: compute dtype; params stay float32 and the output is float32.
    bn_axis_name: unused (EDSR drops BatchNorm); every model takes it.
    out_channels: channels of the estimate (`build_model` passes the image
      channels); None means the input's.
  """
  TAKES = 'observation'  # the low-resolution image, not its bicubic upsampling

  depth: int = 16
  features: int = 64
  res_scale: float = 1.0
  operator: Any = None
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  out_channels: int | None = None

  def __post_init__(self):
    # `build_model` checks configs without an operator; with one, it must be an upsampling task's.
    if self.operator is not None and not isinstance(getattr(self.operator, 'scale', None), int):
      raise CnnreconError(f'model edsr upsamples the low-resolution image, but the task\'s operator '
                          f'({self.operator.describe()}) has no scale: use --config.task.name=super_resolve')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Super-resolves low-resolution images.

    Args:
      x: low-resolution images [B, h, w, C] float32, any h and w.
      train: unused (no BatchNorm or dropout); every model takes it.

    Returns:
      High-resolution estimates [B, scale * h, scale * w, out_channels] float32.
    """
    del train
    if self.operator is None:
      raise ValueError('EDSR needs the super-resolution operator (its scale): build it with '
                       'cnnrecon.models.build_model(..., operator=task.forward_operator())')
    common.check_nhwc(x, 'EDSR')
    channels = self.out_channels or x.shape[-1]
    head = _conv(self.features, self.dtype, name='head')(x - MEAN)
    y = head
    for index in range(self.depth):
      y = ResBlock(self.features, self.res_scale, self.dtype, name=f'block_{index}')(y)
    y = _conv(self.features, self.dtype, name='body_end')(y) + head
    for index, factor in enumerate(upsampling_stages(self.operator.scale)):
      y = _conv(self.features * factor**2, self.dtype, name=f'upsample_{index}')(y)
      y = dm_pix.depth_to_space(y, factor)
    y = _conv(channels, self.dtype, name='tail')(y)
    return y.astype(jnp.float32) + MEAN
