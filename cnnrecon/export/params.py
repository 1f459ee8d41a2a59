"""The `params` export form's writer: inference variables as safetensors plus the run's config.

`cnnrecon.inference` (and `cnnrecon.load_model`) read it back without orbax.
"""

import pathlib
from typing import Any

import flax
import numpy as np
from safetensors.numpy import save_file

from cnnrecon.inference.params import CONFIG_FILE, PARAMS_FILE


def write_params(model: Any, directory: pathlib.Path) -> list[str]:
  """Writes `params.safetensors` (keys like `params/conv_0/kernel`) and `config.json`; returns their names.

  Args:
    model: an in-memory model with `variables`, `config` and `step` (any task's).
    directory: where to write.
  """
  flat = flax.traverse_util.flatten_dict(model.variables, sep='/')
  # Contiguous host copies: safetensors writes an array's buffer as it lies in memory.
  save_file({key: np.ascontiguousarray(value) for key, value in flat.items()}, directory / PARAMS_FILE,
            metadata={'step': str(model.step), 'task': model.config.task.name})
  (directory / CONFIG_FILE).write_text(model.config.to_json(indent=1) + '\n')
  return [PARAMS_FILE, CONFIG_FILE]
