"""DnCNN (Zhang et al. 2017): a residual denoiser that predicts the noise."""

from typing import Any

import dm_pix
import flax.linen as nn
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError
from cnnrecon.models import common


def _conv3x3(width: int, *, use_bias: bool, dtype: Any,
             kernel_init=nn.initializers.orthogonal()) -> nn.Conv:
  return nn.Conv(
      width, (3, 3), padding='SAME', use_bias=use_bias, dtype=dtype,
      kernel_init=kernel_init)


class DnCNN(nn.Module):
  """DnCNN: conv+ReLU, (depth-2) x [conv+BN+ReLU], conv; output = x - noise.

  Parameter names are flax's automatic ones and are part of the API, because
  the weight importers address them: `Conv_0` (with bias), `Conv_1` ..
  `Conv_{depth-2}` (no bias) each followed by `BatchNorm_0` ..
  `BatchNorm_{depth-3}`, and `Conv_{depth-1}` (with bias, so the MatConvNet
  release, whose last conv has a bias, imports exactly; the Keras release
  leaves it zero). The MatConvNet release folds BatchNorm into conv biases:
  import such a bias as BatchNorm bias with scale 1, mean 0 and variance
  1 - bn_epsilon. Kernels use orthogonal init, as the authors' code does,
  except the last conv, which starts at zero: the untrained net is then the
  identity (it predicts no noise) instead of adding random noise of its own,
  which cuts the first hundreds of steps of a short CPU run.

  With `space_to_depth=f > 1` the body runs on the f*f sub-images of FFDNet's
  reversible downsampling (Zhang, Zuo & Zhang, TIP 2018; `dm_pix.space_to_depth`):
  f^2 fewer positions for the same width and an f-times larger receptive
  field. Odd sides are reflect-padded and cropped back.

  Attributes:
    depth: total number of conv layers (17 for DnCNN-S); at least 2.
    features: width of the hidden convs.
    bn_epsilon: BatchNorm epsilon; a field so imported weights can use the
      epsilon they were trained with.
    residual: True predicts the noise and subtracts it (the paper's residual
      learning); False outputs the clean image directly (the paper's ablation).
    batch_norm: False drops the BatchNorm layers; the body convs then get biases.
    dtype: compute dtype; params stay float32 and the output is float32.
    bn_axis_name: mesh axis over which BatchNorm statistics are averaged in
      data-parallel training, or None.
    out_channels: channels of the estimate (`build_model` passes the image
      channels); None means the input's. Input channels beyond them (an
      inpainting mask) inform the net; the residual is taken on the first ones.
  """
  MIN_DEPTH = 2  # a first and a last conv

  depth: int = 17
  features: int = 64
  bn_epsilon: float = 1e-5
  space_to_depth: int = 1
  residual: bool = True
  batch_norm: bool = True
  dtype: Any = jnp.float32
  bn_axis_name: str | None = None
  out_channels: int | None = None

  def __post_init__(self):
    if isinstance(self.space_to_depth, bool) or not isinstance(self.space_to_depth, int) or self.space_to_depth < 1:
      raise CnnreconError(f'model.dncnn.space_to_depth={self.space_to_depth!r} must be a positive integer '
                          '(1 = full resolution, 2 = FFDNet-style half-resolution body).')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jnp.ndarray, *, train: bool) -> jnp.ndarray:
    """Denoises images.

    Args:
      x: noisy images [B, H, W, C] float32 (any H, W: the net is fully conv).
      train: True uses batch statistics and updates `batch_stats`.

    Returns:
      Clean-image estimates [B, H, W, C] float32.
    """
    common.check_nhwc(x, 'DnCNN')
    height, width, channels = x.shape[1:]
    channels = self.out_channels or channels
    x = common.pad_to_multiple(x, self.space_to_depth)
    y = dm_pix.space_to_depth(x, self.space_to_depth) if self.space_to_depth > 1 else x
    y = nn.relu(_conv3x3(self.features, use_bias=True, dtype=self.dtype)(y))
    for _ in range(self.depth - 2):
      y = _conv3x3(self.features, use_bias=not self.batch_norm, dtype=self.dtype)(y)
      if self.batch_norm:
        y = nn.BatchNorm(
            use_running_average=not train, momentum=0.9,
            epsilon=self.bn_epsilon, dtype=self.dtype,
            axis_name=self.bn_axis_name)(y)
      y = nn.relu(y)
    output = _conv3x3(channels * self.space_to_depth**2, use_bias=True, dtype=self.dtype,
                      kernel_init=nn.initializers.zeros)(y)
    if self.space_to_depth > 1:
      output = dm_pix.depth_to_space(output, self.space_to_depth)
    if not self.residual:
      return common.crop_to(common.to_output(output), height, width)
    # Subtract in float32 so a low-precision compute dtype does not quantize
    # the clean image itself, only the noise estimate.
    return common.crop_to(x[..., :channels].astype(jnp.float32) - common.to_output(output), height, width)
