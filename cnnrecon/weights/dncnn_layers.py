"""A format-neutral list of DnCNN conv layers, and its conversion to flax variables.

Every reader (MatConvNet, Keras, PyTorch state dicts) turns its file into a
list of `ConvLayer`s in flax layout; `to_flax` then maps the list onto the
variables of `cnnrecon.models.dncnn.DnCNN` and checks every shape against the
model itself (`jax.eval_shape` of its `init`), so the result matches the flax
module exactly or fails naming the first layer that differs.
"""

import dataclasses
import pathlib
from typing import Any

import flax
import h5py
import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.models.dncnn import DnCNN

DEFAULT_BN_EPSILON = 1e-5
# Order in which a layer's variables are compared (and a mismatch reported).
_NAME_ORDER = ('kernel', 'bias', 'scale', 'mean', 'var')


@dataclasses.dataclass(frozen=True)
class Norm:
  """Inference-mode BatchNorm: `scale * (x - mean) / sqrt(var + epsilon) + bias`.

  `epsilon` is the one the file's framework adds to `var` (0 for MatConvNet,
  which stores sqrt(var + eps) itself).
  """

  scale: np.ndarray
  bias: np.ndarray
  mean: np.ndarray
  var: np.ndarray
  epsilon: float


@dataclasses.dataclass(frozen=True)
class ConvLayer:
  """One 3x3 conv of a file, with the BatchNorm that follows it, if any.

  Attributes:
    name: the file's name for the layer (for error messages).
    kernel: [kh, kw, in, out] float32, cross-correlation as in flax.
    bias: [out] or None.
    norm: the BatchNorm applied to this conv's output, or None.
  """

  name: str
  kernel: np.ndarray
  bias: np.ndarray | None = None
  norm: Norm | None = None


@dataclasses.dataclass(frozen=True)
class ImportedWeights:
  """Published DnCNN weights as variables of cnnrecon's flax DnCNN.

  Attributes:
    params: numpy pytree equal in structure and shapes to the flax `params`.
    batch_stats: numpy pytree equal to the flax `batch_stats`.
    bn_epsilon: the BatchNorm epsilon the variables assume (`model.bn_epsilon`).
    channels: image channels (1 = grayscale).
    depth: number of conv layers (`model.depth`).
    features: hidden width (`model.features`).
    source: where the weights came from, e.g. 'matconvnet:/path/file.mat'.
  """

  params: dict[str, Any]
  batch_stats: dict[str, Any]
  bn_epsilon: float
  channels: int
  depth: int
  features: int
  source: str


def _float32(array: np.ndarray) -> np.ndarray:
  return np.asarray(array, dtype=np.float32)


def first_line(error: Exception) -> str:
  """The first line of an exception's message (library errors span many lines)."""
  text = str(error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def open_hdf5(path: pathlib.Path, kind: str, hint: str = '') -> h5py.File:
  """Opens an HDF5 file read-only, turning h5py's errors into one-line CnnreconErrors.

  Args:
    path: the file.
    kind: what the file should be, e.g. 'MATLAB v7.3 (HDF5)'.
    hint: appended to the error for a file that is not HDF5 at all.

  Returns:
    The open h5py.File (use it as a context manager).
  """
  if not h5py.is_hdf5(path):
    raise CnnreconError(f'{path} is not a {kind} file: it has no HDF5 signature{hint}')
  try:
    return h5py.File(path, 'r')
  except OSError as error:
    raise CnnreconError(f'{path} is truncated or corrupt: {first_line(error)}; download it again') from error


def _check_vector(layer: ConvLayer, module: str, what: str, vector: np.ndarray) -> None:
  """Checks a per-output-channel vector against the conv it belongs to."""
  width = layer.kernel.shape[-1]
  if np.shape(vector) != (width,):
    raise CnnreconError(
        f'layer {module} {what} (file layer {layer.name!r}): file has {np.shape(vector)}, '
        f'its conv has {width} outputs so it must be ({width},); the file is damaged or not a DnCNN')


def _norm_absorbing_bias(layer: ConvLayer, index: int, epsilon: float) -> Norm:
  """The BatchNorm after middle conv `index` for a model with `epsilon`, absorbing the conv's bias.

  Middle convs of the flax DnCNN have no bias. A bias c before a BatchNorm is
  exactly a shift of its mean (BN(x + c) uses mean - c); with no BatchNorm in
  the file (MatConvNet folded it into the biases) the BatchNorm becomes the
  identity plus c: scale 1, mean 0 and var 1 - eps, so sqrt(var + eps) = 1.
  The file's variance is shifted so that var + eps is the file's.
  """
  width = layer.kernel.shape[-1]
  bias = np.zeros(width, np.float32) if layer.bias is None else _float32(layer.bias)
  _check_vector(layer, f'Conv_{index}', 'bias', bias)
  if layer.norm is None:
    return Norm(scale=np.ones(width), bias=bias, mean=np.zeros(width),
                var=np.full(width, 1.0 - epsilon), epsilon=epsilon)
  norm = layer.norm
  for name in ('scale', 'bias', 'mean', 'var'):
    _check_vector(layer, f'BatchNorm_{index - 1}', name, getattr(norm, name))
  var = np.asarray(norm.var, np.float64) + norm.epsilon - epsilon
  return dataclasses.replace(norm, mean=_float32(norm.mean) - bias, var=var, epsilon=epsilon)


def _variables(layers: list[ConvLayer], epsilon: float) -> tuple[dict, dict]:
  """Maps the layers onto flax's `Conv_i` / `BatchNorm_j` names."""
  params, batch_stats = {}, {}
  last = len(layers) - 1
  for index, layer in enumerate(layers):
    if index in (0, last):
      if layer.norm is not None:
        place = 'first' if index == 0 else 'last'
        raise CnnreconError(
            f'file layer {layer.name!r} (the {place} conv) is followed by a BatchNorm, which DnCNN '
            'does not have there: the file is not a DnCNN')
      width = layer.kernel.shape[-1]
      bias = np.zeros(width, np.float32) if layer.bias is None else _float32(layer.bias)
      params[f'Conv_{index}'] = {'kernel': _float32(layer.kernel), 'bias': bias}
      continue
    norm = _norm_absorbing_bias(layer, index, epsilon)
    params[f'Conv_{index}'] = {'kernel': _float32(layer.kernel)}
    params[f'BatchNorm_{index - 1}'] = {'scale': _float32(norm.scale), 'bias': _float32(norm.bias)}
    batch_stats[f'BatchNorm_{index - 1}'] = {'mean': _float32(norm.mean), 'var': _float32(norm.var)}
  return params, batch_stats


def expected_shapes(depth: int, features: int, channels: int) -> dict[str, dict]:
  """The variable shapes of `DnCNN(depth, features)` on `channels`-channel images.

  Args:
    depth: number of conv layers.
    features: hidden width.
    channels: image channels.

  Returns:
    {'params': {(module, name): shape}, 'batch_stats': {...}}, from the model's own init.
  """
  model = DnCNN(depth=depth, features=features)
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 8, channels)), train=False))
  return {collection: {key: tuple(leaf.shape) for key, leaf in
                       flax.traverse_util.flatten_dict(variables.get(collection, {})).items()}
          for collection in ('params', 'batch_stats')}


def _check_shapes(layers: list[ConvLayer], variables: dict[str, dict], expected: dict[str, dict],
                  model_name: str) -> None:
  """Compares layer by layer, in network order, so the first difference is reported."""
  flat = {collection: flax.traverse_util.flatten_dict(tree) for collection, tree in variables.items()}
  found = {**flat['params'], **flat['batch_stats']}
  wanted = {**expected['params'], **expected['batch_stats']}
  for index, layer in enumerate(layers):
    modules = [f'Conv_{index}'] + ([f'BatchNorm_{index - 1}'] if 0 < index < len(layers) - 1 else [])
    for module in modules:
      names = {name for owner, name in set(found) | set(wanted) if owner == module}
      for name in sorted(names, key=_NAME_ORDER.index):
        have = tuple(np.shape(found[module, name])) if (module, name) in found else 'nothing'
        want = wanted.get((module, name), 'nothing')
        if have != want:
          raise CnnreconError(
              f'layer {module} {name}: file has {have}, {model_name} expects {want} '
              f'(file layer {layer.name!r}); pass the depth and features the file was trained with')


def to_flax(layers: list[ConvLayer], *, depth: int | None, features: int | None,
            bn_epsilon: float, source: str) -> ImportedWeights:
  """Converts a file's conv layers to the variables of `DnCNN(depth, features)`.

  Args:
    layers: the file's convs in network order.
    depth: the model's depth, or None to take the file's.
    features: the model's width, or None to take the file's.
    bn_epsilon: the epsilon of the file's BatchNorms (any value if it has none).
    source: names the file in messages and in the result.

  Returns:
    The ImportedWeights.

  Raises:
    CnnreconError: the layers do not form the requested DnCNN.
  """
  if len(layers) < 2:
    raise CnnreconError(f'{source} has {len(layers)} conv layers; a DnCNN has at least 2')
  depth = len(layers) if depth is None else depth
  features = layers[0].kernel.shape[-1] if features is None else features
  model_name = f'dncnn(depth={depth}, features={features})'
  if len(layers) != depth:
    raise CnnreconError(
        f'{source} has {len(layers)} conv layers but {model_name} has {depth}: '
        f'pass depth={len(layers)} (model.depth) to match the file')
  channels = int(layers[0].kernel.shape[2])
  params, batch_stats = _variables(layers, bn_epsilon)
  variables = {'params': params, 'batch_stats': batch_stats}
  _check_shapes(layers, variables, expected_shapes(depth, features, channels), model_name)
  return ImportedWeights(params=params, batch_stats=batch_stats, bn_epsilon=float(bn_epsilon),
                         channels=channels, depth=depth, features=features, source=source)
