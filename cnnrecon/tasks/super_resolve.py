"""Single-image super-resolution: recover an image from its MATLAB-bicubic downsampling by 2, 3 or 4."""

import dataclasses
from typing import Sequence

import ml_collections
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.losses import Loss
from cnnrecon.ops.resize import BicubicDownsample, modcrop
from cnnrecon.tasks.base import Image, Labels, MetricConvention, task_options
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

  @classmethod
  def check_evaluation(cls, trained: ml_collections.ConfigDict, evaluated: ml_collections.ConfigDict) -> None:
    """A model trained at one scale is evaluated at that scale only (a blind model's task says which it saw)."""
    super().check_evaluation(trained, evaluated)
    scale = task_options(trained).get('scale', 2)
    if evaluated.task.name == cls.name and task_options(evaluated).get('scale', 2) != scale:
      raise CnnreconError(f'this model was trained for x{scale} super-resolution only, not '
                          f'x{task_options(evaluated)["scale"]}: evaluate it with --scale {scale}, or train '
                          'one for that scale (or a blind one: experiments/dncnn3_blind.py)')

  def check_scorable(self, images: Sequence[Image], spec: str, *, min_side: int = 1) -> None:
    """Each image must hold at least `min_side` low-resolution pixels per side (and SSIM's window after the crop)."""
    scale = self.operator.scale
    smallest = min(images, key=lambda item: min(item[1].shape[:2]))
    needed = scale * max(2, min_side)  # bicubic upsampling needs 2 low-resolution pixels
    if min(smallest[1].shape[:2]) < needed:
      raise CnnreconError(f'{spec}: image {smallest[0]} is {smallest[1].shape[0]}x{smallest[1].shape[1]} px, smaller '
                          f'than {needed} px ({scale} x the model\'s minimum side {max(2, min_side)}): evaluate '
                          'on larger images')
    super().check_scorable(images, spec)

  def evaluation_image(self, clean: np.ndarray) -> np.ndarray:
    """The image cropped to a multiple of the scale (bottom and right), MATLAB's `modcrop`."""
    return modcrop(clean, self.operator.scale)

  def protocol(self) -> str:
    """The SR protocol: modcrop, bicubic down, bicubic up, border crop."""
    scale = self.operator.scale
    return (f'Protocol: each image is cropped to a multiple of {scale} (modcrop), downsampled by MATLAB-bicubic '
            f'imresize(x, 1/{scale}) (antialiased), and the bicubic row upsamples it back with the same routine; '
            f'estimates are clipped to [0, 1]; {self.convention.describe()}.')

