"""Model registry: `config.model.name` -> flax module, with architecture checks.

Every model takes `depth`, `features`, `dtype` and `bn_axis_name`; options of
one model live in `config.model.<name>` (e.g. `model.dncnn.space_to_depth`).
A new model is one file in this folder plus one `MODELS.register` line here.
"""

import inspect
from typing import Any

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from cnnrecon.errors import CnnreconError
from cnnrecon.models.adain import AdaINDecoder
from cnnrecon.models.dncnn import DnCNN
from cnnrecon.models.fbpconvnet import FBPConvNet
from cnnrecon.models.edsr import EDSR
from cnnrecon.models.seed_stack import ConvPoolAutoencoder
from cnnrecon.models.srcnn import SRCNN
from cnnrecon.models.transform_net import TransformNet
from cnnrecon.models.unet import UNet
from cnnrecon.registry import Registry

MODELS: Registry = Registry('model.name')
MODELS.register('seed_stack')(ConvPoolAutoencoder)
MODELS.register('dncnn')(DnCNN)
MODELS.register('unet')(UNet)
MODELS.register('fbpconvnet')(FBPConvNet)
MODELS.register('transform_net')(TransformNet)
MODELS.register('adain_decoder')(AdaINDecoder)
MODELS.register('srcnn')(SRCNN)
MODELS.register('edsr')(EDSR)

DTYPES: Registry = Registry('model.dtype')
DTYPES.register('float32')(jnp.float32)
DTYPES.register('bfloat16')(jnp.bfloat16)
DTYPES.register('float16')(jnp.float16)


# What a model takes as input (its class's `TAKES`): the task's initial estimate, an image the size of the
# clean one (DnCNN, U-Net, SRCNN on the bicubic image), or the observation itself (EDSR upsamples the
# low-resolution image inside the net).
MODEL_INPUTS = ('initial_estimate', 'observation')


def model_takes(model_config: ml_collections.ConfigDict) -> str:
  """'initial_estimate' or 'observation': the input the model `model_config` names takes (`TAKES`)."""
  takes = getattr(MODELS.get(model_config.name), 'TAKES', 'initial_estimate')
  if takes not in MODEL_INPUTS:
    raise ValueError(f'{model_config.name}.TAKES={takes!r}: use one of {MODEL_INPUTS}')
  return takes


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


def side_multiple(model_config: ml_collections.ConfigDict) -> int:
  """What the model's input sides must be multiples of: 2 to the number of 2x2 poolings (1 for none)."""
  return 2 ** (model_config.depth * getattr(MODELS.get(model_config.name), 'POOLINGS_PER_DEPTH', 0))


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


def _check_shared_options(model_config: ml_collections.ConfigDict, model_class: Any, channels: int) -> None:
  """Checks the options every model takes."""
  for field in ('depth', 'features'):
    value = model_config.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
      raise CnnreconError(
          f'model.{field}={value!r} must be a positive integer; '
          f'set --config.model.{field} to 1 or more.')
  min_depth = getattr(model_class, 'MIN_DEPTH', 1)
  if model_config.depth < min_depth:
    raise CnnreconError(
        f'model.depth={model_config.depth} is too shallow for {model_config.name}: it needs at least '
        f'{min_depth} layers; set --config.model.depth to {min_depth} or more.')
  if channels < 1:
    raise CnnreconError(
        f'images have {channels} channels; models need 1 (grayscale) or more.')


def build_model(model_config: ml_collections.ConfigDict, *, channels: int,
                image_size: int | None = None,
                bn_axis_name: str | None = None, operator: Any = None) -> nn.Module:
  """Builds the model a config names, after checking the architecture fits.

  Config fields: `name` (a key of MODELS), `depth` and `features` (ints >= 1),
  `dtype` ('float32' | 'bfloat16' | 'float16': the compute dtype; params stay
  float32), and the model's own options in `model.<name>` (dncnn:
  `space_to_depth`, `bn_epsilon`).

  Args:
    model_config: the `model` section of an experiment config.
    channels: image channels (models infer them from their input at call
      time; given here so impossible values fail before any compile).
    image_size: training patch side; when given, pooling models check that
      `depth` pools fit it.
    bn_axis_name: mesh axis for BatchNorm statistics in data-parallel steps.
    operator: the task's forward operator (`cnnrecon.ops`), handed to models
      that declare an `operator` attribute (e.g. unrolled networks, which apply
      it and its adjoint; EDSR reads the scale from it); other models never see it.

  Models that declare `out_channels` get `channels` there: the estimate has the
  image's channels even when the model input has more (an inpainting mask).

  Returns:
    An unbound flax module; call it as `model.apply(variables, x, train=...)`.

  Raises:
    CnnreconError: unknown name or dtype, a bad or foreign option, or a
      depth that cannot fit `image_size`.
  """
  name = model_config.get('name')
  model_class = MODELS.get(name)
  _check_shared_options(model_config, model_class, channels)
  if getattr(model_class, 'POOLINGS_PER_DEPTH', 0) and image_size is not None:
    _check_pooling_fits(name, model_config.depth * model_class.POOLINGS_PER_DEPTH, image_size)
  options = model_config.get(name)
  declared = inspect.signature(model_class).parameters
  extra = {key: value for key, value in (('operator', operator), ('out_channels', channels)) if key in declared}
  return MODELS.build(name, options, depth=model_config.depth, features=model_config.features,
                      dtype=DTYPES.get(model_config.get('dtype')), bn_axis_name=bn_axis_name, **extra)
