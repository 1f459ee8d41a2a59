"""Synthetic DnCNN weight files in the released layouts, and a numpy reference forward pass.

Every net here keeps its kernels as [h, w, in, out] (the reference's own
convention); each writer stores them the way its framework does, so a reader
that gets an axis order wrong disagrees with `reference_forward`.
"""

import json

import h5py
import numpy as np


def random_dncnn(seed, *, widths):
  """Random DnCNN weights: convs `w` [3, 3, in, out] and `b` [out]; middle layers add `bn`.

  Args:
    seed: numpy seed.
    widths: output channels of each conv (the last one is the image channels).

  Returns:
    A list of dicts; `bn` is [scale, bias, mean, var] (float32 vectors).
  """
  rng = np.random.default_rng(seed)
  layers, fan_in = [], 1
  for index, out in enumerate(widths):
    layer = {'w': rng.normal(0, (9 * fan_in) ** -0.5, (3, 3, fan_in, out)).astype(np.float32),
             'b': rng.normal(0, 0.1, out).astype(np.float32)}
    if 0 < index < len(widths) - 1:
      layer['bn'] = [rng.uniform(0.5, 1.5, out).astype(np.float32), rng.normal(0, 0.1, out).astype(np.float32),
                     rng.normal(0, 0.1, out).astype(np.float32), rng.uniform(0.5, 1.5, out).astype(np.float32)]
    layers.append(layer)
    fan_in = out
  return layers


def reference_forward(net, image, *, eps, middle_bias=True, norm=True):
  """DnCNN in numpy: zero-padded 3x3 cross-correlations, [BatchNorm], ReLU; returns image - noise.

  Args:
    net: from `random_dncnn`.
    image: [H, W, 1] float32.
    eps: BatchNorm epsilon.
    middle_bias: add the middle convs' biases (first and last always get theirs).
    norm: apply the middle layers' BatchNorms.

  Returns:
    The denoised image [H, W, 1].
  """
  x = image
  height, width = image.shape[:2]
  for index, layer in enumerate(net):
    padded = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    y = sum(padded[u:u + height, v:v + width] @ layer['w'][u, v] for u in range(3) for v in range(3))
    if middle_bias or index in (0, len(net) - 1):
      y = y + layer['b']
    if 'bn' in layer and norm:
      scale, bias, mean, var = layer['bn']
      y = scale * (y - mean) / np.sqrt(var + eps) + bias
    x = y if index == len(net) - 1 else np.maximum(y, 0)
  return image - x


def _matlab(group, name, array, matlab_class):
  """Stores `array` as MATLAB does: column-major, so axes appear reversed; trailing 1s dropped."""
  shape = list(array.shape)
  while len(shape) > 2 and shape[-1] == 1:
    shape.pop()
  dataset = group.create_dataset(name, data=np.ascontiguousarray(array.reshape(shape).T))
  dataset.attrs['MATLAB_class'] = np.bytes_(matlab_class)
  return dataset


def _matlab_cell(group, name, datasets):
  return _matlab(group, name, np.array([[d.ref for d in datasets]], h5py.ref_dtype), 'cell')


def _layer_structs(net, bnorm):
  """(type, weight arrays) of each SimpleNN layer; without bnorm the BatchNorms are left out."""
  structs = []
  for index, layer in enumerate(net):
    structs.append(('conv', [layer['w'], layer['b'][:, None]]))
    if bnorm and 'bn' in layer:
      scale, bias, mean, var = layer['bn']
      structs.append(('bnorm', [scale[:, None], bias[:, None], np.stack([mean, np.sqrt(var + 1e-4)], 1)]))
    if index < len(net) - 1:
      structs.append(('relu', []))
  return structs


def write_matconvnet(path, net, *, bnorm=False):
  """A MATLAB v7.3 MAT-file like the authors': `net.layers`, a cell of layer structs.

  Args:
    path: where to write.
    net: from `random_dncnn`.
    bnorm: write `bnorm` layers (moments hold sqrt(var + 1e-4)); the authors'
      release has none (BatchNorm folded into the conv biases).
  """
  with h5py.File(path, 'w', userblock_size=512) as file:
    refs, cells = file.create_group('#refs#'), []
    for number, (kind, arrays) in enumerate(_layer_structs(net, bnorm)):
      struct = refs.create_group(f's{number}')
      struct.attrs['MATLAB_class'] = np.bytes_('struct')
      for field, text in (('type', kind), ('name', f'layer{number + 1}')):
        chars = np.array([[ord(c) for c in text]], np.uint16)
        _matlab(struct, field, chars, 'char').attrs['MATLAB_int_decode'] = 2
      if kind == 'relu':
        _matlab(struct, 'leak', np.zeros((1, 1)), 'double')
        cells.append(struct)
        continue
      _matlab_cell(struct, 'weights', [_matlab(refs, f'w{number}_{i}', a, 'single') for i, a in enumerate(arrays)])
      for field in ('pad', 'stride') if kind == 'conv' else ():
        _matlab(struct, field, np.ones((1, 1)), 'double')
      empty = struct.create_dataset('opts', data=np.zeros(2, np.uint64))  # an empty cell, as MATLAB writes it
      empty.attrs['MATLAB_class'], empty.attrs['MATLAB_empty'] = np.bytes_('cell'), np.uint8(1)
      cells.append(struct)
    file.create_group('net').attrs['MATLAB_class'] = np.bytes_('struct')
    _matlab_cell(file['net'], 'layers', cells)
  with open(path, 'r+b') as raw:
    raw.write(b'MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .')


def write_keras(path, net, *, epsilon):
  """A Keras 2 weights-only .h5 and its architecture .json, laid out like the authors' release."""
  configs, names = [{'name': 'input0', 'class_name': 'InputLayer', 'config': {'name': 'input0'}}], ['input0']
  with h5py.File(path, 'w') as file:
    def add(kind, config, arrays=()):
      name = f'{kind.lower()[:4]}{len(names)}'
      group = file.create_group(name)
      group.attrs['weight_names'] = [np.bytes_(f'{name}/{key}:0') for key, _ in arrays]
      for key, value in arrays:
        group.create_dataset(f'{name}/{key}:0', data=value)
      configs.append({'name': name, 'class_name': kind, 'config': {'name': name, **config},
                      'inbound_nodes': [[[names[-1], 0, 0, {}]]]})
      names.append(name)
    for index, layer in enumerate(net):
      conv = {'padding': 'same', 'strides': [1, 1], 'activation': 'linear', 'use_bias': index == 0}
      add('Conv2D', conv, [('kernel', layer['w'])] + ([('bias', layer['b'])] if index == 0 else []))
      if 'bn' in layer:
        add('BatchNormalization', {'axis': 3, 'epsilon': epsilon},
            list(zip(('gamma', 'beta', 'moving_mean', 'moving_variance'), layer['bn'])))
      if index < len(net) - 1:
        add('Activation', {'activation': 'relu'})
    add('Subtract', {})
    configs[-1]['inbound_nodes'] = [[['input0', 0, 0, {}], [names[-2], 0, 0, {}]]]
    file.attrs['layer_names'] = [np.bytes_(name) for name in names]
    file.attrs['keras_version'], file.attrs['backend'] = np.bytes_('2.2.2'), np.bytes_('tensorflow')
  path.with_suffix('.json').write_text(json.dumps({'class_name': 'Model', 'config': {'layers': configs}}))


def kair_state_dict(net):
  """KAIR's sequential layout: model.{i}.weight [out, in, kh, kw], biases, BatchNorms; ReLUs hold nothing."""
  tensors, index = {}, 0
  for layer_index, layer in enumerate(net):
    tensors[f'model.{index}.weight'] = np.ascontiguousarray(layer['w'].transpose(3, 2, 0, 1))
    tensors[f'model.{index}.bias'] = layer['b']
    index += 1
    if 'bn' in layer:
      for key, value in zip(('weight', 'bias', 'running_mean', 'running_var'), layer['bn']):
        tensors[f'model.{index}.{key}'] = value
      tensors[f'model.{index}.num_batches_tracked'] = np.array(7, np.int64)
      index += 1
    index += layer_index < len(net) - 1  # the ReLU
  return tensors
