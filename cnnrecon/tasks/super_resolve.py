"""Single-image super-resolution: recover an image from its MATLAB-bicubic downsampling by 2, 3 or 4."""

import dataclasses

import ml_collections
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.losses import Loss
from cnnrecon.ops.resize import SR_SCALES, BicubicDownsample, modcrop
from cnnrecon.tasks.base import Labels, MetricConvention, task_options
from cnnrecon.tasks.reconstruction import ReconstructionTask

SR_LABELS = Labels(observed='low-resolution', estimate='super-resolved', initial_estimate='bicubic')


class SuperResolution(ReconstructionTask):
  """Bicubic x`scale` super-resolution, scored as the SR literature does.

  The observation is the low-resolution image (MATLAB `imresize(x, 1/scale)`);
  the initial estimate, and the "bicubic" row of every table, is its bicubic
  upsampling by the same routine. Scores follow the SR convention: images are
  cropped to a multiple of the scale (`modcrop`), a border of `scale` pixels is
  removed, and RGB images are scored on the luma Y of MATLAB's `rgb2ycbcr`.
  Gray models evaluated on RGB images should set `data.gray='bt601_y'`, so they
  restore that same Y channel (as DnCNN-3 and SRCNN do).
  """

  @classmethod
  def from_options(cls, *, loss: Loss, scale: int = 2) -> 'SuperResolution':
    return cls(operator=BicubicDownsample(scale), loss=loss, labels=SR_LABELS,
               convention=MetricConvention(crop=int(scale)))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, *, loss: Loss | None = None) -> 'SuperResolution':
    """The task; RGB models are scored on Y (the SR convention), gray ones on their channel."""
    task = super().from_config(config, loss=loss)
    return dataclasses.replace(task, convention=dataclasses.replace(task.convention,
                                                                    y_channel=config.data.channels == 3))

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """Training patches and validation crops must be multiples of the scale (they are downsampled whole)."""
    task = cls.from_config(config)
    scale = task.operator.scale
    for key in ('patch_size', 'eval_crop'):
      side = config.data.get(key)
      if side and side % scale:
        fixed = max(scale, side - side % scale)
        raise CnnreconError(f'data.{key}={side} is not a multiple of the super-resolution scale {scale}: '
                            f'set --config.data.{key}={fixed}')

  def evaluation_image(self, clean: np.ndarray) -> np.ndarray:
    """The image cropped to a multiple of the scale (bottom and right), MATLAB's `modcrop`."""
    return modcrop(clean, self.operator.scale)

  def protocol(self) -> str:
    """The SR protocol: modcrop, bicubic down, bicubic up, border crop."""
    scale = self.operator.scale
    return (f'Protocol: each image is cropped to a multiple of {scale} (modcrop), downsampled by MATLAB-bicubic '
            f'imresize(x, 1/{scale}) (antialiased), and the bicubic row upsamples it back with the same routine; '
            f'estimates are clipped to [0, 1]; {self.convention.describe()}.')


def trained_scales(config: ml_collections.ConfigDict) -> tuple[int, ...]:
  """The scales a super-resolution run was trained on (all of `SR_SCALES` for tasks that do not fix one)."""
  if config.task.name == 'super_resolve':
    return (int(task_options(config).get('scale', 2)),)
  return SR_SCALES
