"""Reader for Keras 2 HDF5 DnCNN files (the authors' Keras release: `.h5` + `.json`).

A Keras 2 HDF5 file lists its layers in network order in the `layer_names`
attribute (the groups themselves iterate alphabetically: bn10 before bn4), and
each layer group lists its arrays in `weight_names`. A full-model save nests
the layers under `model_weights` and carries the architecture JSON in its
`model_config` attribute; a weights-only save needs the architecture next to
it (`model.to_json()` saved as the same name with `.json`), which gives the
layer types and the BatchNormalization epsilon. Keras conv kernels are already
[kh, kw, in, out] cross-correlations, as in flax, and BatchNormalization
computes what flax's does. The authors' model ends with
`Subtract()([input, noise])`, the same residual form as cnnrecon's DnCNN.
"""

import dataclasses
import json
import pathlib
import re
from typing import Any

import h5py
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.weights.dncnn_layers import ConvLayer, Norm, first_line, open_hdf5

_KIND = 'Keras HDF5 (.h5)'
_TOKENS = {'Conv2D': 'C', 'BatchNormalization': 'B', 'Subtract': 'S', 'InputLayer': '', 'ReLU': 'R'}
_DNCNN_PATTERN = r'CR(CB?R)*CS'
_KERAS_BN_EPSILON = 1e-3  # BatchNormalization's default when the config omits it


def _decode(value: Any) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def _architecture(file: h5py.File, path: pathlib.Path) -> list[dict]:
  """The model's layer configs, from the file or from the JSON beside it."""
  if 'model_config' in file.attrs:
    source, text = f'{path} model_config', _decode(file.attrs['model_config'])
  else:
    source = path.with_suffix('.json')
    if not source.is_file():
      raise CnnreconError(
          f'{path} holds weights only and {source} does not exist: save the architecture next to it '
          '(model.to_json()); it gives the layer types and the BatchNorm epsilon')
    text = source.read_text()
  try:
    config = json.loads(text).get('config')
  except (json.JSONDecodeError, AttributeError) as error:
    raise CnnreconError(f'{source} is not a Keras model JSON: {first_line(error)}') from error
  layers = config.get('layers') if isinstance(config, dict) else config
  if not isinstance(layers, list):
    raise CnnreconError(f'{source} has no layer list under "config": not a Keras model JSON')
  return layers


def _token(layer: dict) -> str:
  kind, config = layer.get('class_name'), layer.get('config', {})
  if kind == 'Conv2D':
    return 'CR' if config.get('activation') == 'relu' else 'C'
  if kind == 'Activation':
    return 'R' if config.get('activation') == 'relu' else '?'
  return _TOKENS.get(kind, '?')


def _check_structure(layers: list[dict], source: pathlib.Path) -> None:
  kinds = [layer.get('class_name') for layer in layers]
  if not re.fullmatch(_DNCNN_PATTERN, ''.join(map(_token, layers))):
    raise CnnreconError(
        f'{source} layers {kinds} do not form a DnCNN (conv relu, then conv [BatchNormalization] '
        'relu blocks, then conv and Subtract)')
  inputs = [layer['config']['name'] for layer in layers if layer.get('class_name') == 'InputLayer']
  nodes = layers[-1].get('inbound_nodes') or [[]]
  first = nodes[0][0] if nodes[0] and isinstance(nodes[0][0], list) else None
  if inputs and first is not None and first[0] != inputs[0]:
    raise CnnreconError(f'{source} subtracts the input from the noise estimate instead of the '
                        'noise from the input: dncnn computes input - noise')
  for layer in layers:
    config = layer['config']
    if layer['class_name'] == 'Conv2D' and (
        config.get('padding') != 'same' or list(config.get('strides', [1, 1])) != [1, 1]
        or list(config.get('dilation_rate', [1, 1])) != [1, 1]
        or config.get('data_format', 'channels_last') != 'channels_last'):
      raise CnnreconError(f'{source} layer {config["name"]!r} is not a channels_last "same" conv with '
                          "stride 1 and no dilation, as cnnrecon's dncnn uses")
    if layer['class_name'] == 'BatchNormalization' and config.get('axis', -1) not in (-1, 3, [3], [-1]):
      raise CnnreconError(f'{source} layer {config["name"]!r} normalizes axis {config["axis"]}, '
                          'not the channel axis')


def _arrays(weights: h5py.Group, name: str) -> dict[str, np.ndarray]:
  """A layer's arrays keyed by their short name ('kernel', 'gamma', 'moving_mean', ...)."""
  group = weights[name]
  names = [_decode(item) for item in group.attrs.get('weight_names', [])]
  return {item.split('/')[-1].split(':')[0]: np.asarray(group[item]) for item in names}


def _norm(arrays: dict[str, np.ndarray], epsilon: float) -> Norm:
  width = arrays['moving_mean'].shape
  return Norm(scale=arrays.get('gamma', np.ones(width)), bias=arrays.get('beta', np.zeros(width)),
              mean=arrays['moving_mean'], var=arrays['moving_variance'], epsilon=epsilon)


def _conv_layers(architecture: list[dict], weights: h5py.Group) -> tuple[list[ConvLayer], float | None]:
  layers, epsilons = [], []
  for layer in architecture:
    name = layer['config']['name']
    if layer['class_name'] == 'Conv2D':
      arrays = _arrays(weights, name)
      layers.append(ConvLayer(name=name, kernel=arrays['kernel'], bias=arrays.get('bias')))
    elif layer['class_name'] == 'BatchNormalization':
      epsilons.append(float(layer['config'].get('epsilon', _KERAS_BN_EPSILON)))
      layers[-1] = dataclasses.replace(layers[-1], norm=_norm(_arrays(weights, name), epsilons[-1]))
  return layers, (epsilons[0] if epsilons else None)


def read_keras(path: pathlib.Path) -> tuple[list[ConvLayer], float | None]:
  """Reads the convs and BatchNorms of a Keras 2 DnCNN.

  Args:
    path: a Keras HDF5 file (full model, or weights with the `.json` beside it).

  Returns:
    The conv layers in network order, and the BatchNorm epsilon (None without
    BatchNorms).
  """
  with open_hdf5(path, _KIND) as file:
    weights = file['model_weights'] if 'model_weights' in file else file
    if 'layer_names' not in weights.attrs:
      raise CnnreconError(f'{path} is HDF5 but not a Keras 2 model or weights file (no layer_names '
                          'attribute); save it with Keras 2 model.save / save_weights to .h5')
    architecture = _architecture(file, path)
    _check_structure(architecture, path)
    try:
      return _conv_layers(architecture, weights)
    except (OSError, KeyError, ValueError, TypeError) as error:
      raise CnnreconError(f'{path} is truncated or corrupt: {first_line(error)}; download it again') from error
