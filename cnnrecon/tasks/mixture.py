"""DnCNN-3's task: restore an image degraded by one of noise, bicubic down-up-sampling or JPEG, unknown to the model.

One blind model learns all three (`cnnrecon.ops.mixture.DegradationMixture`).
Its own tables score a random mix per image; score it per degradation by
evaluating it as the 'gaussian', 'super_resolve' and 'jpeg' tasks, at levels
it was trained on (`trained_levels`, `MixtureRestoration.check_evaluation`).
"""

import ml_collections
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.losses import Loss
from cnnrecon.ops.mixture import MIXTURE_TASKS, DegradationMixture
from cnnrecon.ops.resize import modcrop
from cnnrecon.registry import call_with_options
from cnnrecon.tasks.base import Labels, task_options
from cnnrecon.tasks.reconstruction import ReconstructionTask

MIXTURE_LABELS = Labels(observed='degraded', estimate='restored')


class MixtureRestoration(ReconstructionTask):
  """Blind restoration of a mixture of degradations, each example drawing its own (DnCNN-3).

  Options (`config.task.mixture`): `tasks`, `sigma_range` (0-255 scale),
  `scales`, `quality_range`; see `DegradationMixture`.
  """

  @classmethod
  def from_options(cls, *, loss: Loss, tasks=MIXTURE_TASKS, sigma_range=DegradationMixture.sigma_range,
                   scales=DegradationMixture.scales,
                   quality_range=DegradationMixture.quality_range) -> 'MixtureRestoration':
    operator = DegradationMixture(tasks=tasks, sigma_range=sigma_range, scales=scales, quality_range=quality_range)
    return cls(operator=operator, loss=loss, labels=MIXTURE_LABELS)

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """The options, and training patches and validation crops that are multiples of every scale in the mix."""
    multiple = cls.from_config(config).operator.side_multiple
    for key in ('patch_size', 'eval_crop'):
      side = config.data.get(key)
      if side and side % multiple:
        fixed = max(multiple, side - side % multiple)
        raise CnnreconError(f'data.{key}={side} is not a multiple of {multiple} (the lcm of the mixture\'s '
                            f'scales, which downsample it whole): set --config.data.{key}={fixed}')

  @classmethod
  def check_evaluation(cls, trained: ml_collections.ConfigDict, evaluated: ml_collections.ConfigDict) -> None:
    """Refuses, in one line, evaluating a mixture model at a super-resolution scale it never saw.

    Args:
      trained: the trained run's config.
      evaluated: the config it is to be evaluated under (`cnnrecon eval --task super_resolve --scale 3`).
    """
    super().check_evaluation(trained, evaluated)
    if evaluated.task.name != 'super_resolve':
      return
    scale = int(task_options(evaluated).get('scale', 2))
    seen = trained_levels(trained)['scales']
    if scale not in seen:
      allowed = ', '.join(map(str, seen)) or 'none (super_resolve was not in its mix)'
      raise CnnreconError(f'this model was trained on the mixture at scales {allowed}, never x{scale}: '
                          f'evaluate it at one of those with --scale, or train with x{scale} in task.mixture.scales')

  def evaluation_image(self, clean: np.ndarray) -> np.ndarray:
    """The image cropped (bottom and right) to a multiple of every scale in the mix."""
    return modcrop(clean, self.operator.side_multiple)


def trained_levels(config: ml_collections.ConfigDict) -> dict:
  """The degradations and levels a run was trained on, for evaluation to check against.

  Args:
    config: a run's config; task 'mixture', or one of its single tasks ('gaussian', 'super_resolve',
      'jpeg', each trained at one level).

  Returns:
    `{'tasks': names, 'sigma': (lo, hi) or None, 'scales': tuple (empty without super-resolution),
    'quality': (lo, hi) or None}`; levels of tasks the run did not train on are None / ().
  """
  name, options = config.task.name, task_options(config)
  if name == 'mixture':
    mix = call_with_options(DegradationMixture, options, section='task.mixture')
    tasks = mix.tasks
    sigma, scales, quality = mix.sigma_range, mix.scales, mix.quality_range
  else:
    tasks = (name,)
    sigma = (float(options.get('sigma', 25.0)),) * 2
    scales = (int(options.get('scale', 2)),)
    quality = (int(options.get('quality', 20)),) * 2
  return {'tasks': tuple(tasks), 'sigma': sigma if 'gaussian' in tasks else None,
          'scales': scales if 'super_resolve' in tasks else (), 'quality': quality if 'jpeg' in tasks else None}

