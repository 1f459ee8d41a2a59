"""The `params` export: inference variables as safetensors plus the run's config, loadable without orbax."""

import json
import pathlib

import flax
import numpy as np
from safetensors.numpy import load_file, save_file

from cnnrecon.config import config_from_dict
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation.restore import TrainedModel
from cnnrecon.export.loader import verify
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.fast import FastNet

PARAMS_FILE = 'params.safetensors'
CONFIG_FILE = 'config.json'


def write_params(model: TrainedModel | FastNet | AdaINNet, directory: pathlib.Path) -> list[str]:
  """Writes `params.safetensors` (keys like `params/conv_0/kernel`) and `config.json`; returns their names."""
  flat = flax.traverse_util.flatten_dict(model.variables, sep='/')
  # Contiguous host copies: safetensors writes an array's buffer as it lies in memory.
  save_file({key: np.ascontiguousarray(value) for key, value in flat.items()}, directory / PARAMS_FILE,
            metadata={'step': str(model.step), 'task': model.config.task.name})
  (directory / CONFIG_FILE).write_text(model.config.to_json(indent=1) + '\n')
  return [PARAMS_FILE, CONFIG_FILE]


def load_model(directory: str | pathlib.Path) -> TrainedModel | FastNet | AdaINNet:
  """Loads a `--format params` export (after checking its sha256 sums) as an in-memory model.

  Returns:
    A `TrainedModel` for reconstruction tasks (call it on NHWC observations),
    a `FastNet` for `fast_style`, an `AdaINNet` for `adain` (its VGG encoder is
    read from the weights the config names, e.g. `$CNNRECON_HOME/weights`).
  """
  directory = pathlib.Path(directory)
  return model_from_export(directory, verify(directory))


def model_from_export(directory: pathlib.Path, manifest: dict) -> TrainedModel | FastNet | AdaINNet:
  """The model of a params export whose files `verify` has checked (and returned `manifest` of)."""
  if manifest['format'] != 'params':
    raise CnnreconError(f'{directory} holds a {manifest["format"]} export, not params: load it with '
                        '`cnnrecon.export.load`')
  config = config_from_dict(json.loads((directory / CONFIG_FILE).read_text()))
  variables = flax.traverse_util.unflatten_dict(load_file(directory / PARAMS_FILE), sep='/')
  variables.setdefault('batch_stats', {})
  step = manifest['source']['step']
  if config.task.name == 'fast_style':
    return FastNet(config=config, variables=variables, step=step)
  if config.task.name == 'adain':
    return AdaINNet(config=config, variables=variables, step=step)
  return TrainedModel(config=config, variables=variables, step=step)
