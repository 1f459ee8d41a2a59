"""The task a model is evaluated on: its own, or another one and its options from the command line.

`cnnrecon eval --task super_resolve --scale 3` scores a model on a task and
level of the user's choice, whatever it was trained on (a blind model such as
DnCNN-3 is evaluated on many). The trained task's class says which levels its
models can be evaluated at (`ReconstructionTask.check_evaluation`: a
non-blind SR model only at its own scale).
"""

import inspect
import math
from typing import Any

import ml_collections

from cnnrecon.errors import CnnreconError
from cnnrecon.tasks import TASKS, task_options

# Command-line flags of `cnnrecon eval` that set a task option, by option name.
OPTION_FLAGS = {'sigma': '--sigma', 'scale': '--scale', 'quality': '--quality', 'kernel': '--kernel',
                'views': '--views', 'angle_range': '--angle-range'}


def _accepted_options(task_name: str) -> set[str]:
  factory = getattr(TASKS.get(task_name), 'from_options', None)
  if factory is None:
    return set()
  return {name for name, parameter in inspect.signature(factory).parameters.items()
          if name != 'loss' and parameter.kind is inspect.Parameter.KEYWORD_ONLY}


def _check_sigma(sigma) -> None:
  if not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma < 0:
    raise CnnreconError(f'--sigma {sigma} must be a finite noise level >= 0 on the 0-255 scale, e.g. --sigma 25')


def evaluation_config(config: ml_collections.ConfigDict, *, task: str | None = None,
                      **options: Any) -> ml_collections.ConfigDict | None:
  """A copy of `config` set to evaluate on `task` with `options`, or None when nothing changes.

  Options left out keep the trained value when the task is the trained one,
  and the task's defaults otherwise.

  Raises:
    CnnreconError: an unknown task, an option the task does not take, a bad
      value, or a level the trained model cannot be evaluated at.
  """
  options = {name: value for name, value in options.items() if value is not None}
  if task is None and not options:
    return None
  name = task or config.task.name
  if task is not None and task not in TASKS.names():
    raise CnnreconError(f'--task {task!r} is not a task; choose one of {", ".join(TASKS.names())}')
  accepted = _accepted_options(name)
  for option in options:
    if option not in accepted:
      flag = OPTION_FLAGS.get(option, option)
      raise CnnreconError(f'{flag} does not apply to task {name!r} (its options: {", ".join(sorted(accepted)) or "none"}); '
                          f'leave {flag} out or choose a task with --task')
  if 'sigma' in options:
    _check_sigma(options['sigma'])
  changed = config.copy_and_resolve_references()
  kept = task_options(config) if name == config.task.name else {}
  changed.task.name = name
  changed.task[name] = ml_collections.ConfigDict({**kept, **options})
  trained, evaluated = TASKS.get(config.task.name), TASKS.get(name)
  if name != config.task.name and not (hasattr(trained, 'from_options') and hasattr(evaluated, 'from_options')):
    raise CnnreconError(f'a {config.task.name!r} model cannot be evaluated on task {name!r}: --task switches '
                        'between reconstruction tasks only')
  evaluated.from_config(changed)  # one line for a bad option value
  check = getattr(trained, 'check_evaluation', None)
  if check is not None:
    check(config, changed)
  return changed


def config_at_sigma(config: ml_collections.ConfigDict, sigma: float | None) -> ml_collections.ConfigDict | None:
  """`evaluation_config(config, sigma=sigma)`: the trained task at noise level `sigma` (0-255), or None."""
  return evaluation_config(config, sigma=sigma)
