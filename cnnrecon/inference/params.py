"""The `params` export form: inference variables as safetensors plus the run's config, loadable without orbax."""

import json
import pathlib
from typing import Any

import flax
from safetensors.numpy import load_file

from cnnrecon.config import config_from_dict
from cnnrecon.errors import CnnreconError
from cnnrecon.inference.exported import CONFIG_FILE, PARAMS_FILE, reexport_hint
from cnnrecon.tasks import task_class


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
  config = config_from_dict(_config_values(directory))
  try:
    tensors = load_file(directory / PARAMS_FILE)
  except Exception:  # pylint: disable=broad-except  # safetensors' own error type, whatever the damage
    raise CnnreconError(f'{directory / PARAMS_FILE} is not a safetensors file although its sha256 matches: '
                        f'{reexport_hint(directory)}') from None
  variables = flax.traverse_util.unflatten_dict(tensors, sep='/')
  variables.setdefault('batch_stats', {})
  return task_class(config).inference_model(config, variables, manifest['source']['step'])


def _config_values(directory: pathlib.Path) -> dict:
  """The run's config of a params export as a dict (a one-line error when it is not a JSON object)."""
  path = directory / CONFIG_FILE
  try:
    values = json.loads(path.read_text(encoding='utf-8'))
  except (json.JSONDecodeError, UnicodeDecodeError):
    values = None
  if not isinstance(values, dict) or not isinstance(values.get('task'), dict):
    raise CnnreconError(f'{path} is not the JSON config of a run: {reexport_hint(directory)}')
  return values
