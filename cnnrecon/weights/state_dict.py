"""Reader for PyTorch DnCNN state dicts (`.pth` via torch, `.safetensors` via numpy).

Accepted layout: a sequential DnCNN such as KAIR's (`model.{i}.weight`
[out, in, kh, kw] and optional `model.{i}.bias` for convs; `weight`, `bias`,
`running_mean`, `running_var` for BatchNorms; ReLUs hold nothing). Entries are
grouped by module prefix and ordered by the numbers in it (`model.10` after
`model.9`), so any prefix works (`dncnn.{i}`, `module.model.{i}`). PyTorch's
conv is a cross-correlation, as flax's is. A state dict does not record the
BatchNorm epsilon: the caller supplies it (PyTorch's default is 1e-5; KAIR's
BatchNorms use 1e-4). `.pth` files are read with `weights_only=True`, which
refuses to run code.
"""

import dataclasses
import pathlib
from typing import Any

import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.weights.dncnn_layers import ConvLayer, Norm, first_line

_IGNORED = ('num_batches_tracked',)


def _to_numpy(tensor: Any) -> np.ndarray:
  return tensor.detach().cpu().float().numpy()


def _tensors(loaded: Any, path: pathlib.Path) -> dict[str, Any]:
  """The tensor dict inside a `torch.load` result (bare, or under 'state_dict' / 'model')."""
  if isinstance(loaded, dict):
    for key in ('state_dict', 'model', 'params'):
      if isinstance(loaded.get(key), dict):
        return loaded[key]
    return loaded
  raise CnnreconError(f'{path} holds a {type(loaded).__name__}, not a state dict: save model.state_dict()')


def load_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Reads a `.pth` state dict with `torch.load(weights_only=True)` into numpy arrays."""
  try:
    import torch  # pylint: disable=import-outside-toplevel  # optional dependency
  except ImportError as error:
    raise CnnreconError(f"reading {path} needs PyTorch: install torch: pip install 'cnnrecon[torch]'") from error
  try:
    loaded = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as error:  # torch raises assorted types for damaged or foreign files
    raise CnnreconError(
        f'{path} is truncated, corrupt or not a PyTorch .pth file: {first_line(error)}') from error
  return {key: _to_numpy(value) for key, value in _tensors(loaded, path).items()
          if hasattr(value, 'detach')}


def load_safetensors(path: pathlib.Path) -> dict[str, np.ndarray]:
  """Reads a `.safetensors` file with the safetensors package's numpy API."""
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  try:
    return load_file(path)
  except Exception as error:  # safetensors raises its own and numpy errors
    raise CnnreconError(
        f'{path} is truncated, corrupt or not a .safetensors file: {first_line(error)}') from error


def _module_order(prefix: str) -> tuple:
  """Sorts `model.10` after `model.9`: numbers compare as numbers, names as names."""
  return tuple((0, int(part), '') if part.isdigit() else (1, 0, part) for part in prefix.split('.'))


def _modules(tensors: dict[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
  modules = {}
  for key, value in tensors.items():
    prefix, _, name = key.rpartition('.')
    if name not in _IGNORED:
      modules.setdefault(prefix, {})[name] = np.asarray(value, np.float32)
  return sorted(modules.items(), key=lambda item: _module_order(item[0]))


def _norm(prefix: str, entries: dict[str, np.ndarray], epsilon: float, path: pathlib.Path) -> Norm:
  if 'running_mean' not in entries or 'running_var' not in entries:
    raise CnnreconError(f'{path} module {prefix!r} has {sorted(entries)}: a BatchNorm needs '
                        'running_mean and running_var (track_running_stats=True)')
  width = entries['running_mean'].shape
  return Norm(scale=entries.get('weight', np.ones(width)), bias=entries.get('bias', np.zeros(width)),
              mean=entries['running_mean'], var=entries['running_var'], epsilon=epsilon)


def conv_layers(tensors: dict[str, np.ndarray], path: pathlib.Path, *, epsilon: float) -> list[ConvLayer]:
  """Turns a sequential DnCNN state dict into conv layers.

  Args:
    tensors: state dict entries as numpy arrays.
    path: the file, for messages.
    epsilon: the epsilon of the state dict's BatchNorms.

  Returns:
    The conv layers in network order, kernels as [kh, kw, in, out].
  """
  layers = []
  for prefix, entries in _modules(tensors):
    weight = entries.get('weight')
    if weight is not None and weight.ndim == 4:
      layers.append(ConvLayer(name=prefix, kernel=weight.transpose(2, 3, 1, 0), bias=entries.get('bias')))
    elif weight is None or weight.ndim == 1:
      if not layers or layers[-1].norm is not None:
        raise CnnreconError(f'{path} module {prefix!r} ({sorted(entries)}) does not follow a conv: '
                            'not a sequential DnCNN state dict')
      layers[-1] = dataclasses.replace(layers[-1], norm=_norm(prefix, entries, epsilon, path))
    else:
      raise CnnreconError(f'{path} module {prefix!r} has a {weight.ndim}-D weight: '
                          'a DnCNN has only 2-D convs and BatchNorms')
  if not layers:
    raise CnnreconError(f'{path} holds no conv weights (keys like model.0.weight): not a DnCNN state dict')
  return layers


def read_state_dict(path: pathlib.Path, fmt: str, *, epsilon: float) -> list[ConvLayer]:
  """Reads a `.pth` ('torch') or `.safetensors` ('safetensors') DnCNN state dict.

  Args:
    path: the file.
    fmt: 'torch' or 'safetensors'.
    epsilon: the epsilon of its BatchNorms (state dicts do not record it).

  Returns:
    The conv layers in network order.
  """
  tensors = load_torch(path) if fmt == 'torch' else load_safetensors(path)
  return conv_layers(tensors, path, epsilon=epsilon)

