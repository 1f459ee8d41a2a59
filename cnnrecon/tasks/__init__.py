"""cnnrecon.tasks: the `Task` interface and the reconstruction tasks, by the name `config.task.name` uses.

A task's options are the config sub-dict named after it
(`config.task.gaussian.sigma`); its class receives them as keyword arguments.

Task families that lie right of the train step in the data flow (style
transfer: `cnnrecon.style`) and tasks of other packages register themselves
with `register_task` when their module is imported. `TASKS` imports that
module the first time a config names one of its tasks: the modules in
`PLUGIN_MODULES`, or an entry point in the `cnnrecon.tasks` group of any
installed package (`[project.entry-points."cnnrecon.tasks"] my_task =
"my_package.my_module"`). So the shared code never imports a task family.
"""

import importlib
from importlib import metadata
import sys
from typing import Callable

import ml_collections

from cnnrecon.config import base_config
from cnnrecon.errors import CnnreconError
from cnnrecon.registry import Registry
from cnnrecon.tasks.base import (BestCheckpoint, EvaluationRequest, Input, Labels, MetricConvention, Results,
                                 Signature, Task, task_options)
from cnnrecon.tasks.ct import CTReconstruction
from cnnrecon.tasks.deblur import Deblurring
from cnnrecon.tasks.denoise import GaussianDenoising, PoissonDenoising
from cnnrecon.tasks.inpaint import RandomPixelInpainting
from cnnrecon.tasks.inpaint_regions import RegionInpainting
from cnnrecon.tasks.jpeg import JpegDeblocking
from cnnrecon.tasks.mixture import MixtureRestoration
from cnnrecon.tasks.poisson_gaussian import PoissonGaussianDenoising
from cnnrecon.tasks.reconstruction import ReconstructionTask
from cnnrecon.tasks.super_resolve import SuperResolution

# Modules that register tasks of the package's own plugin families, by task name.
PLUGIN_MODULES = {'fast_style': 'cnnrecon.style.tasks', 'adain': 'cnnrecon.style.tasks'}
ENTRY_POINT_GROUP = 'cnnrecon.tasks'


class TaskRegistry(Registry):
  """Task classes by name; a name that is not registered yet imports the plugin module that defines it."""

  def get(self, name) -> type[Task]:
    """The task class registered as `name`, importing its plugin module first if needed.

    Raises:
      CnnreconError: `name` is unknown; the message lists the known names, plugins included.
    """
    if name not in self and isinstance(name, str):
      _import_plugin(name)
    if name not in self:
      raise CnnreconError(f'unknown task.name={name!r}; known: {", ".join(self.names())}. '
                          'Set --config.task.name to one of them.')
    return super().get(name)

  def names(self) -> list[str]:
    """Registered names, then the plugins' (not imported yet)."""
    return list(dict.fromkeys([*super().names(), *PLUGIN_MODULES, *_entry_points()]))


def _entry_points() -> dict[str, metadata.EntryPoint]:
  return {entry.name: entry for entry in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _import_plugin(name: str) -> None:
  if name in PLUGIN_MODULES:
    importlib.import_module(PLUGIN_MODULES[name])
    return
  entry = _entry_points().get(name)
  if entry is not None:
    loaded = entry.load()
    if isinstance(loaded, type) and issubclass(loaded, Task) and name not in TASKS:
      register_task(name)(loaded)


TASKS = TaskRegistry('task.name')


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
  """Class decorator: registers a `Task` subclass under `name` (the value of `config.task.name`)."""
  def add(cls: type[Task]) -> type[Task]:
    cls.name = name
    return TASKS.register(name)(cls)
  return add


register_task('gaussian')(GaussianDenoising)
register_task('poisson')(PoissonDenoising)
register_task('poisson_gaussian')(PoissonGaussianDenoising)
register_task('inpaint')(RandomPixelInpainting)
register_task('deblur')(Deblurring)
register_task('inpaint_regions')(RegionInpainting)
register_task('super_resolve')(SuperResolution)
register_task('jpeg')(JpegDeblocking)
register_task('ct')(CTReconstruction)
register_task('mixture')(MixtureRestoration)


def task_class(config: ml_collections.ConfigDict) -> type[Task]:
  """The class of the task `config.task.name` names.

  Raises:
    CnnreconError: an unknown name (the message lists the known ones).
  """
  return TASKS.get(config.task.get('name'))


def build_task(config: ml_collections.ConfigDict, *, loss=None) -> Task:
  """Builds the task `config.task` names, with the loss it trains on (built from the config).

  `build_task(config.task, loss=...)`, the form of the previous release, still
  works for reconstruction tasks and prints one `deprecated:` line.

  Raises:
    CnnreconError: unknown task name, an option the task does not take, or a
      bad option value.
  """
  if 'task' not in config and 'name' in config:
    print('cnnrecon: deprecated: build_task(config.task, loss=...) is now build_task(config) (the task builds its '
          'loss from config.train.loss); the old form stops working in the next release', file=sys.stderr)
    full = base_config()
    full.task = config
    return task_class(full).from_config(full, loss=loss)
  if loss is not None:
    return task_class(config).from_config(config, loss=loss)
  return task_class(config).from_config(config)


__all__ = ['TASKS', 'BestCheckpoint', 'EvaluationRequest', 'Input', 'Labels', 'MetricConvention',
           'ReconstructionTask', 'Results', 'Signature', 'Task', 'build_task', 'register_task', 'task_class',
           'task_options']
