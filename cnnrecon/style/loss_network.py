"""The loss network of style transfer: a frozen VGG with imported (or seeded random) weights.

`$CNNRECON_HOME/weights/` is where `cnnrecon weights fetch` and `weights import` put feature
weights; the flax VGG itself is `cnnrecon.models.vgg`.
"""

import dataclasses
import functools
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.models.vgg import VGG, load_feature_weights

DEFAULT_FEATURES = 'vgg16-hed'


def cnnrecon_home() -> pathlib.Path:
  """`$CNNRECON_HOME`, default `~/.cache/cnnrecon`: where fetched and imported weights live."""
  return pathlib.Path(os.environ.get('CNNRECON_HOME') or pathlib.Path('~/.cache/cnnrecon').expanduser())


def weights_path(name: str) -> pathlib.Path:
  """Where the feature weights named `name` are kept (`$CNNRECON_HOME/weights/NAME.safetensors`)."""
  return cnnrecon_home() / 'weights' / f'{name}.safetensors'


@dataclasses.dataclass(frozen=True)
class LossNetwork:
  """A VGG and its frozen variables, with the description every style command prints once."""

  vgg: VGG
  variables: Any
  description: str

  def __call__(self, images: jax.Array) -> dict[str, jax.Array]:
    """Named activations of NHWC images in [0, 1]; no gradient reaches the weights."""
    return self.vgg.apply(jax.lax.stop_gradient(self.variables), images)


def load_loss_network(features: str = DEFAULT_FEATURES, *, last_layer: str, pooling: str = 'avg',
                      seed: int = 0) -> LossNetwork:
  """The loss network `features` names.

  Args:
    features: 'random' (seeded VGG-16 init: a texture baseline), a name in
      `$CNNRECON_HOME/weights/` (e.g. 'vgg16-hed'), or a path to a cnnrecon
      feature-weights `.safetensors` file.
    last_layer: the deepest activation the losses use.
    pooling: 'avg' (Gatys et al.'s choice for synthesis) or 'max'.
    seed: the init seed for 'random'.
  """
  if features == 'random':
    vgg = VGG(depth=16, pooling=pooling, preprocessing='torchvision', last_layer=last_layer)
    return LossNetwork(vgg, _random_variables(last_layer, seed),
                       f'random VGG-16 weights (seed {seed}): a texture baseline')
  path = pathlib.Path(features) if features.endswith('.safetensors') else weights_path(features)
  if not path.is_file():
    raise CnnreconError(
        f'feature weights {features!r} not found at {path}: run `cnnrecon weights fetch {DEFAULT_FEATURES}`, or '
        'import a file you have with `cnnrecon weights import --format hed|torchvision|keras FILE`')
  variables, manifest = load_feature_weights(path)
  depth = int(manifest['architecture'].removeprefix('vgg'))
  vgg = VGG(depth=depth, pooling=pooling, preprocessing=manifest['preprocessing'], last_layer=last_layer)
  return LossNetwork(vgg, variables, f'{manifest["architecture"]} weights from {manifest["source"]} '
                     f'({manifest["preprocessing"]} preprocessing, sha256 {manifest["source_sha256"][:12]}...)')


@functools.cache
def _random_variables(last_layer: str, seed: int) -> Any:
  """Seeded VGG-16 variables up to `last_layer`, made once per process: compiling the init's ten
  random draws takes seconds on CPU, and training, reporting and stylizing each ask for them."""
  vgg = VGG(depth=16, last_layer=last_layer)  # the params do not depend on pooling or preprocessing
  return compiler.jit_run_once(vgg.init)(jax.random.key(seed), jnp.zeros((1, 32, 32, 3)))


@functools.cache
def deepest(layers: tuple[str, ...]) -> str:
  """The deepest of VGG layer names like 'relu4_2' (block, then index, then conv < relu)."""
  def order(name):
    kind = name.rstrip('0123456789_')
    block, _, index = name[len(kind):].partition('_')
    return int(block), int(index or 99), kind != 'conv'
  return max(layers, key=order)
