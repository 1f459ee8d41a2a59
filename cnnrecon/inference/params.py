"""The `params` export form: inference variables as safetensors plus the run's config, loadable without orbax."""

import json
import pathlib
from typing import Any

import flax
from safetensors.numpy import load_file

from cnnrecon.config import config_from_dict
from cnnrecon.errors import CnnreconError
from cnnrecon.tasks import task_class

PARAMS_FILE = 'params.safetensors'
CONFIG_FILE = 'config.json'


def model_from_export(directory: str | pathlib.Path, manifest: dict) -> Any:
  """The in-memory model of a params export whose files `verify` has checked (and returned `manifest` of).

  Returns:
    What the task's class makes of the variables (`Task.inference_model`): a
    `TrainedModel` for reconstruction tasks, a `FastNet` or `AdaINNet` for style.
  """
  directory = pathlib.Path(directory)
  if manifest['format'] != 'params':
    raise CnnreconError(f'{directory} holds a {manifest["format"]} export, not params: load it with '
                        '`cnnrecon.export.load`')
  config = config_from_dict(json.loads((directory / CONFIG_FILE).read_text()))
  variables = flax.traverse_util.unflatten_dict(load_file(directory / PARAMS_FILE), sep='/')
  variables.setdefault('batch_stats', {})
  return task_class(config).inference_model(config, variables, manifest['source']['step'])
