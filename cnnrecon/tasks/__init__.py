"""cnnrecon.tasks: one file per task, registered here by the name `config.task.name` uses.

A task's options are the config sub-dict named after it
(`config.task.gaussian.sigma`); `build_task` passes them as keyword arguments.
"""

from typing import Any

import ml_collections

from cnnrecon.registry import Registry
from cnnrecon.tasks import denoise, inpaint, poisson_gaussian, style
from cnnrecon.tasks.base import Labels, Loss, MetricConvention, ReconstructionTask

TASKS: Registry = Registry('task.name')
TASKS.register('gaussian')(denoise.gaussian)
TASKS.register('poisson')(denoise.poisson)
TASKS.register('poisson_gaussian')(poisson_gaussian.poisson_gaussian)
TASKS.register('inpaint')(inpaint.inpaint)
TASKS.register('fast_style')(style.fast_style)
TASKS.register('adain')(style.adain)


def task_options(task_config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The options of the task `task_config.name` names (its sub-dict; empty if it has none)."""
  options = task_config.get(task_config.get('name'))
  return dict(options) if options is not None else {}


def build_task(task_config: ml_collections.ConfigDict, *, loss: Loss) -> ReconstructionTask:
  """Builds the task `config.task` names, with its options and the pixel loss.

  `loss` is the pixel loss of reconstruction tasks, or the perceptual loss of
  a style task (`cnnrecon.train.perceptual`).

  Raises:
    CnnreconError: unknown task name, an option the task does not take, or a
      bad option value.
  """
  return TASKS.build(task_config.get('name'), task_options(task_config), loss=loss)


__all__ = ['TASKS', 'Labels', 'MetricConvention', 'ReconstructionTask', 'build_task', 'task_options']
