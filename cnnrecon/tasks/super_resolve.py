"""Single-image super-resolution: recover an image from its MATLAB-bicubic downsampling by 2, 3 or 4."""

import dataclasses
from typing import Sequence

import jax
import ml_collections
import numpy as np

from cnnrecon import metrics
from cnnrecon.errors import CnnreconError
from cnnrecon.losses import Loss
from cnnrecon.models.registry import model_takes
from cnnrecon.models.trained import TrainedModel
from cnnrecon.ops.resize import BicubicDownsample, modcrop
from cnnrecon.tasks.base import Image, Labels, MetricConvention, Signature, task_options
from cnnrecon.tasks.reconstruction import ReconstructionTask

SR_LABELS = Labels(observed='low-resolution', estimate='super-resolved', initial_estimate='bicubic')


@dataclasses.dataclass(frozen=True)
class SuperResolution(ReconstructionTask):
  """Bicubic x`scale` super-resolution, scored as the SR literature does.

  The observation is the low-resolution image (MATLAB `imresize(x, 1/scale)`,
  rounded to 8 bits with `quantize`, as `imresize` returns it for an 8-bit image);
  the initial estimate, and the "bicubic" row of every table, is its bicubic
  upsampling by the same routine. Scores follow the SR convention: images are
  cropped to a multiple of the scale (`modcrop`), a border of `scale` pixels is
  removed, and RGB images are scored on the luma Y of MATLAB's `rgb2ycbcr`.
  Gray models evaluated on RGB images should set `data.gray='bt601_y'`, so they
  restore that same Y channel (as DnCNN-3 and SRCNN do). The bicubic row is
  scored as the 8-bit image MATLAB's `imresize` returns for an 8-bit input (the
  SR literature's bicubic baseline); model estimates are clipped, not rounded,
  as in the DnCNN authors' `Demo_test_DnCNN3.m`.

  That script degrades a colour image in RGB and takes the luma after: a gray
  model (`data.gray='bt601_y'`) is evaluated on the RGB images
  (`evaluation_channels`), downsampled in RGB, and given the Y of their bicubic
  upsampling (`luma_of_rgb`); gray files stay gray.

  Attributes:
    luma_of_rgb: a gray model restoring the luma of RGB images (see above).
  """

  luma_of_rgb: bool = False

  @classmethod
  def from_options(cls, *, loss: Loss, scale: int = 2, quantize: bool = True) -> 'SuperResolution':
    return cls(operator=BicubicDownsample(scale, quantize=bool(quantize)), loss=loss, labels=SR_LABELS,
               convention=MetricConvention(crop=int(scale)))

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, *, loss: Loss | None = None) -> 'SuperResolution':
    """The task; RGB models are scored on Y (the SR convention), gray ones on their channel."""
    task = super().from_config(config, loss=loss)
    luma = _restores_luma(config)
    convention = dataclasses.replace(task.convention, y_channel=config.data.channels == 3, luma_target=luma)
    return dataclasses.replace(task, convention=convention, luma_of_rgb=luma)

  @classmethod
  def evaluation_channels(cls, config: ml_collections.ConfigDict) -> int:
    """RGB for a gray model that restores the luma of colour images (`luma_of_rgb`); else the model's."""
    return 3 if _restores_luma(config) else config.data.channels

  def prepare(self, keys: jax.Array, clean: jax.Array, frozen=None) -> dict:
    """Observes a batch; RGB images for a luma model are degraded in RGB and given as the Y of the result."""
    example = super().prepare(keys, clean, frozen)
    if not (self.luma_of_rgb and clean.shape[-1] == 3):
      return example
    observed, initial_estimate = metrics.rgb_to_y(example['observed']), metrics.rgb_to_y(example['initial_estimate'])
    return {'observed': observed, 'initial_estimate': initial_estimate,
            'model_input': jax.vmap(self.model_input)(observed, initial_estimate), 'target': metrics.rgb_to_y(clean)}

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

  @classmethod
  def export_signature(cls, model: TrainedModel) -> Signature:
    """Low-resolution observations -> estimates `scale` times larger per side.

    Models on the bicubic image (SRCNN) export only at a fixed observation size: MATLAB's bicubic
    weights are matrices built from static sides, which symbolic sides cannot give. Models on the
    observation itself (EDSR) never trace the bicubic, and export at any size.
    """
    signature = super().export_signature(model)
    scale = cls.from_config(model.config).operator.scale
    output = (f'the x{scale} super-resolved estimate, {scale} times the observation\'s height and width '
              '(not clipped; clip to [0, 1] to save it)')
    if model_takes(model.config.model) == 'observation':
      return dataclasses.replace(signature, output=output)
    restore, name = signature.function, model.config.model.name

    def restore_fixed_sides(observed):
      if not all(isinstance(side, int) for side in observed.shape[1:3]):
        raise CnnreconError(f'{name} takes the bicubic upsampling, which MATLAB-bicubic imresize builds for fixed '
                            'image sides only: export it with --image-size HxW, the low-resolution size')
      return restore(observed)

    return dataclasses.replace(signature, function=restore_fixed_sides, output=output)

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

  def observation_to_model_input(self, observed: jax.Array) -> jax.Array:
    """The low-resolution image itself for models that take it; else its bicubic upsampling.

    Not computing the unused upsampling keeps exports of such models free of static image sides.
    """
    return observed if self.takes == 'observation' else super().observation_to_model_input(observed)

  def scored_initial_estimate(self, initial_estimate: np.ndarray) -> np.ndarray:
    """Bicubic as an 8-bit image (clipped and rounded), as MATLAB's imresize of an 8-bit image returns it."""
    return (np.round(np.clip(initial_estimate, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)

  def evaluation_image(self, clean: np.ndarray) -> np.ndarray:
    """The image cropped to a multiple of the scale (bottom and right), MATLAB's `modcrop`."""
    return modcrop(clean, self.operator.scale)

  def protocol(self) -> str:
    """The SR protocol: modcrop, bicubic down, bicubic up, border crop."""
    scale = self.operator.scale
    rounded = ' and rounded to 8 bits' if self.operator.quantize else ''
    luma = (' RGB images are degraded in RGB and the model restores the Y of the bicubic image (gray files stay '
            'gray), as Demo_test_DnCNN3.m;' if self.luma_of_rgb else '')
    return (f'Protocol: each image is cropped to a multiple of {scale} (modcrop), downsampled by MATLAB-bicubic '
            f'imresize(x, 1/{scale}) (antialiased){rounded};{luma} the bicubic row upsamples it back with the same routine and is '
            f'scored as an 8-bit image (imresize of uint8); model estimates are clipped to [0, 1], not rounded; '
            f'{self.convention.describe()}.')



def _restores_luma(config: ml_collections.ConfigDict) -> bool:
  """A gray model whose colour images become the luma Y (`data.gray='bt601_y'`, the SR convention)."""
  return config.data.channels == 1 and config.data.get('gray') == 'bt601_y'
