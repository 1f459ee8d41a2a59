"""Model registry: config name -> flax module, with architecture validation."""

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from cnnrecon.errors import CnnreconError
from cnnrecon.models.dncnn import DnCNN
from cnnrecon.models.seed_stack import SeedStack
from cnnrecon.models.unet import UNet

MODELS: dict[str, Callable[..., nn.Module]] = {
    'seed_stack': SeedStack,
    'dncnn': DnCNN,
    'unet': UNet,
}

DTYPES: dict[str, Any] = {
    'float32': jnp.float32,
    'bfloat16': jnp.bfloat16,
    'float16': jnp.float16,
}

# Models that pool `depth` times and so need sides divisible by 2**depth.
_POOLING_MODELS = ('seed_stack', 'unet')


def max_pooling_depth(image_size: int) -> int:
  """Returns how many 2x2 stride-2 poolings an image side survives exactly.

  Args:
    image_size: the side length in pixels.

  Returns:
    The number of times `image_size` halves while staying an integer >= 1.
  """
  depth = 0
  while image_size >= 2 and image_size % 2 == 0:
    image_size //= 2
    depth += 1
  return depth


def _check_pooling_fits(name: str, depth: int, image_size: int) -> None:
  if image_size % 2**depth == 0:
    return
  fits = max_pooling_depth(image_size)
  size = f'{image_size}x{image_size}'
  fix = (f'Set --config.model.depth to at most {fits}.' if fits >= 1 else
         f'Use training patches whose side is a multiple of {2**depth} '
         '(--config.data.patch_size).')
  raise CnnreconError(
      f'model.depth={depth} is impossible for {name} on {size} inputs: '
      f'{depth} 2x2 max-pools need sides divisible by {2**depth}; '
      f'the largest depth that fits {size} is {fits}. {fix}')


def _validate(model_config: ml_collections.ConfigDict, channels: int,
              image_size: int | None) -> None:
  name = model_config.get('name')
  if name not in MODELS:
    raise CnnreconError(
        f'unknown model.name={name!r}; known models: {", ".join(MODELS)}. '
        'Set --config.model.name to one of them.')
  for field in ('depth', 'features'):
    value = model_config.get(field)
    if not isinstance(value, int) or value < 1:
      raise CnnreconError(
          f'model.{field}={value!r} must be a positive integer; '
          f'set --config.model.{field} to 1 or more.')
  if name == 'dncnn' and model_config.depth < 2:
    raise CnnreconError(
        f'model.depth={model_config.depth} is too shallow for dncnn: it needs '
        'a first and a last conv; set --config.model.depth to 2 or more '
        '(17 in the paper).')
  space_to_depth = model_config.get('space_to_depth', 1)
  if not isinstance(space_to_depth, int) or space_to_depth < 1:
    raise CnnreconError(
        f'model.space_to_depth={space_to_depth!r} must be a positive integer '
        '(1 = full resolution, 2 = FFDNet-style half-resolution body).')
  dtype = model_config.get('dtype')
  if dtype not in DTYPES:
    raise CnnreconError(
        f'unknown model.dtype={dtype!r}; known dtypes: '
        f'{", ".join(DTYPES)}. Set --config.model.dtype to one of them.')
  if channels < 1:
    raise CnnreconError(
        f'images have {channels} channels; models need 1 (grayscale) or more.')
  if name in _POOLING_MODELS and image_size is not None:
    _check_pooling_fits(name, model_config.depth, image_size)


def build_model(model_config: ml_collections.ConfigDict, *, channels: int,
                image_size: int | None = None,
                bn_axis_name: str | None = None) -> nn.Module:
  """Builds the model a config names, after checking the architecture fits.

  Config fields: `name` (a key of MODELS), `depth` and `features` (ints >= 1),
  `dtype` ('float32' | 'bfloat16' | 'float16': the compute dtype; params stay
  float32), and optionally `bn_epsilon` (float, dncnn only; default 1e-5) and
  `space_to_depth` (int >= 1, dncnn only: FFDNet-style downsampled body).

  Args:
    model_config: the `model` section of an experiment config.
    channels: image channels (models infer them from their input at call
      time; given here so impossible values fail before any compile).
    image_size: training patch side; when given, pooling models check that
      `depth` pools fit it.
    bn_axis_name: mesh axis for BatchNorm statistics in data-parallel steps.

  Returns:
    An unbound flax module; call it as `model.apply(variables, x, train=...)`.

  Raises:
    CnnreconError: unknown name or dtype, depth/features < 1, or a depth
      that cannot fit `image_size`.
  """
  _validate(model_config, channels, image_size)
  kwargs = dict(depth=model_config.depth, features=model_config.features,
                dtype=DTYPES[model_config.dtype], bn_axis_name=bn_axis_name)
  if model_config.name == 'dncnn':
    kwargs['bn_epsilon'] = float(model_config.get('bn_epsilon', 1e-5))
    kwargs['space_to_depth'] = int(model_config.get('space_to_depth', 1))
  return MODELS[model_config.name](**kwargs)
