"""Reader for MatConvNet SimpleNN nets saved as MATLAB v7.3 MAT-files (HDF5).

The DnCNN authors' `sigma=*.mat` models hold `net.layers`, a cell of structs
(`conv` and `relu`; their BatchNorms are folded into the conv biases, and
`bnorm` layers are read too). In a v7.3 file a cell is a dataset of HDF5
object references, a struct is a group with one dataset per field, strings are
uint16 arrays, and MATLAB's column-major arrays appear with their axes reversed
and MATLAB's trailing singleton axes dropped: a filter bank that is
[h, w, in, out] in MATLAB reads as [out, in, w, h] (and [in, w, h] when out=1).
MatConvNet's `vl_nnconv` is a cross-correlation, as flax's `nn.Conv` is.
"""

import dataclasses
import pathlib
import re

import h5py
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.weights.dncnn_layers import ConvLayer, Norm, first_line, open_hdf5

_KIND = 'MATLAB v7.3 (HDF5)'
_TOKENS = {'conv': 'C', 'bnorm': 'B', 'relu': 'R'}
_DNCNN_PATTERN = r'CR(CB?R)*C'


@dataclasses.dataclass(frozen=True)
class _Struct:
  """One layer struct of `net.layers`."""

  type: str
  name: str
  group: h5py.Group
  weights: list[h5py.Dataset]


def _text(dataset: h5py.Dataset) -> str:
  return ''.join(map(chr, np.ravel(dataset[()])))


def _is_empty(dataset: h5py.Dataset) -> bool:
  # MATLAB stores an empty value as its size vector, flagged by this attribute.
  return bool(dataset.attrs.get('MATLAB_empty', 0))


def _numbers(struct: _Struct, field: str, default: list[float]) -> list[float]:
  if field not in struct.group or _is_empty(struct.group[field]):
    return default
  return np.ravel(struct.group[field][()]).tolist()


def _matlab_array(dataset: h5py.Dataset, ndim: int, where: str) -> np.ndarray:
  """Reads a numeric array in MATLAB's axis order, restoring dropped trailing singletons."""
  array = np.asarray(dataset[()], dtype=np.float32)
  if array.ndim > ndim:
    raise CnnreconError(f'{where} has {array.ndim} axes, expected at most {ndim}: not a DnCNN layer')
  return array.reshape((1,) * (ndim - array.ndim) + array.shape).transpose()


def _read_struct(file: h5py.File, reference: h5py.Reference) -> _Struct:
  group = file[reference]
  weights = []
  if 'weights' in group and not _is_empty(group['weights']):
    weights = [file[item] for item in np.ravel(group['weights'][()])]
  name = _text(group['name']) if 'name' in group else '?'
  return _Struct(type=_text(group['type']), name=name, group=group, weights=weights)


def _conv(struct: _Struct, path: pathlib.Path) -> ConvLayer:
  pad, stride = _numbers(struct, 'pad', [0.0]), _numbers(struct, 'stride', [1.0])
  dilate = _numbers(struct, 'dilate', [1.0])
  if set(pad) != {1.0} or set(stride) != {1.0} or set(dilate) != {1.0}:
    raise CnnreconError(
        f'{path} layer {struct.name!r} has pad {pad}, stride {stride}, dilate {dilate}: '
        "cnnrecon's dncnn uses 3x3 convs with pad 1, stride 1 and no dilation")
  if not struct.weights:
    raise CnnreconError(f'{path} layer {struct.name!r} is a conv without weights: the file is damaged')
  kernel = _matlab_array(struct.weights[0], 4, f'{path} layer {struct.name!r} filters')
  bias = np.ravel(struct.weights[1][()]) if len(struct.weights) > 1 else None
  return ConvLayer(name=struct.name, kernel=kernel, bias=bias)


def _bnorm(struct: _Struct, path: pathlib.Path) -> Norm:
  """MatConvNet stores sigma = sqrt(var + its epsilon) as the second moment column."""
  if len(struct.weights) != 3:
    raise CnnreconError(f'{path} layer {struct.name!r} (bnorm) has {len(struct.weights)} weights, '
                        'expected multipliers, biases and moments')
  moments = _matlab_array(struct.weights[2], 2, f'{path} layer {struct.name!r} moments')
  return Norm(scale=np.ravel(struct.weights[0][()]), bias=np.ravel(struct.weights[1][()]),
              mean=moments[:, 0], var=moments[:, 1].astype(np.float64) ** 2, epsilon=0.0)


def _conv_layers(structs: list[_Struct], path: pathlib.Path) -> list[ConvLayer]:
  types = [struct.type for struct in structs]
  if not re.fullmatch(_DNCNN_PATTERN, ''.join(_TOKENS.get(kind, '?') for kind in types)):
    raise CnnreconError(
        f'{path} layer types {types} do not form a DnCNN (conv, relu, then conv [bnorm] relu '
        'blocks, then a last conv)')
  layers = []
  for struct in structs:
    if struct.type == 'conv':
      layers.append(_conv(struct, path))
    elif struct.type == 'bnorm':
      layers[-1] = dataclasses.replace(layers[-1], norm=_bnorm(struct, path))
    elif _numbers(struct, 'leak', [0.0]) != [0.0]:
      raise CnnreconError(f'{path} layer {struct.name!r} is a leaky ReLU; dncnn uses plain ReLUs')
  return layers


def read_matconvnet(path: pathlib.Path) -> list[ConvLayer]:
  """Reads the convs (and bnorms) of a MatConvNet SimpleNN DnCNN.

  Args:
    path: a MATLAB v7.3 MAT-file holding `net` with a `layers` cell.

  Returns:
    The conv layers in network order, kernels as [kh, kw, in, out].
  """
  hint = ''
  with open(path, 'rb') as raw:
    if raw.read(10) == b'MATLAB 5.0':
      hint = f": it is a MATLAB v5 MAT-file; re-save it in MATLAB with save('{path.name}', 'net', '-v7.3')"
  with open_hdf5(path, _KIND, hint) as file:
    net = file.get('net')
    if not isinstance(net, h5py.Group) or not isinstance(net.get('layers'), h5py.Dataset):
      names = sorted(key for key in file.keys() if key != '#refs#')
      shown = ', '.join(names[:5]) + (', ...' if len(names) > 5 else '')
      raise CnnreconError(f'{path} holds no SimpleNN `net.layers` cell (it holds: {shown}): only '
                          'MatConvNet SimpleNN nets (vl_simplenn) can be imported')
    try:
      structs = [_read_struct(file, reference) for reference in np.ravel(net['layers'][()])]
      return _conv_layers(structs, path)
    except (OSError, KeyError, ValueError, TypeError) as error:
      raise CnnreconError(f'{path} is truncated or corrupt: {first_line(error)}; download it again') from error
