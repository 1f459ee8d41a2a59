"""What an exported model computes, per task: a jax function with the weights closed over, and its inputs.

A reconstruction net maps observations to estimates (the task's initial
estimate, then the model); a fast style net maps content images and a mix of
its trained styles to stylizations; an AdaIN net maps a content image, a style
image and the style strength alpha to a stylization (VGG encoder, AdaIN and
decoder in one function).
"""

import dataclasses
import pathlib
from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnrecon import losses
from cnnrecon.config import config_from_dict
from cnnrecon.evaluation.restore import TrainedModel
from cnnrecon.evaluation.workdir import task_of
from cnnrecon.models.adain import UPSAMPLING
from cnnrecon.models.registry import MODELS, build_model
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.fast import SIDE_MULTIPLE, FastNet
from cnnrecon.train import checkpoint

STYLE_TASKS = ('fast_style', 'adain')


@dataclasses.dataclass(frozen=True)
class Input:
  """One argument of an exported function.

  `kind` is 'image' (NHWC float32 in [0, 1] with `size` channels; its height
  and width are named `<prefix>h`, `<prefix>w`), 'mix' (one weight per
  trained style, `size` of them, per batch element) or 'scalar'.
  """

  name: str
  kind: str
  size: int = 0
  prefix: str = ''


@dataclasses.dataclass(frozen=True)
class Signature:
  """An inference function and everything its manifest says about it.

  Attributes:
    function: `(*inputs) -> output` in jax; the weights are constants in it.
    inputs: its arguments, in order.
    multiple: image sides must be multiples of this (2^poolings, strides).
    min_side: and at least this many pixels.
    task: the task's name and options (sigma, mask, styles, ...).
    output: what the function returns, in words.
    model: the in-memory model the function was built from.
    step: the checkpoint's step.
  """

  function: Callable
  inputs: tuple[Input, ...]
  multiple: int
  min_side: int
  task: dict
  output: str
  model: Any
  step: int

  @property
  def config(self):
    """The trained run's config."""
    return self.model.config

  def dimension_names(self) -> list[str]:
    """The symbolic dimensions: the batch `b`, then `h`, `w` (`style_h`, `style_w`, ...) per image input."""
    prefixes = [item.prefix for item in self.inputs if item.kind == 'image']
    return ['b'] + [f'{prefix}{side}' for prefix in prefixes for side in 'hw']

  def constraints(self) -> list[str]:
    """Lower bounds on the side variables, so that sides `multiple * h` are at least `min_side`."""
    low = -(-self.min_side // self.multiple)
    return [f'{name} >= {low}' for name in self.dimension_names()[1:]]

  def symbolic_specs(self, image_size: tuple[int, int] | None = None) -> list[jax.ShapeDtypeStruct]:
    """Argument specs for `jax.export`: a symbolic batch `b`, symbolic sides `multiple*h` (or `image_size`)."""
    names = self.dimension_names() if image_size is None else ['b']  # fixed sides: only the batch is symbolic
    dims = jax.export.symbolic_shape(', '.join(names), constraints=self.constraints() if image_size is None else ())
    by_name = dict(zip(names, dims))
    specs = []
    for item in self.inputs:
      if item.kind == 'image':
        if image_size is None:
          sides = tuple(self.multiple * by_name[f'{item.prefix}{side}'] for side in 'hw')
        else:
          sides = image_size
        shape = (by_name['b'], *sides, item.size)
      else:
        shape = (by_name['b'], item.size) if item.kind == 'mix' else ()
      specs.append(jax.ShapeDtypeStruct(shape, jnp.float32))
    return specs


def _task_options(config) -> dict:
  name = config.task.name
  section = config.task.get(name)
  return {'name': name, **(section.to_dict() if section is not None else {})}


def _reconstruction(model: TrainedModel) -> Signature:
  config = model.config
  network = build_model(config.model, channels=config.data.channels)
  initial_estimate = jax.vmap(task_of(config).operator.initial_estimate)
  variables = model.variables

  def restore(observed):
    return network.apply(variables, initial_estimate(observed), train=False)

  pools = config.model.depth if getattr(MODELS.get(config.model.name), 'DOWNSAMPLES_PER_DEPTH', False) else 0
  return Signature(function=restore, inputs=(Input('observed', 'image', config.data.channels),),
                   multiple=2**pools, min_side=2**pools, task=_task_options(config),
                   output='the estimate of the clean image (not clipped; clip to [0, 1] to save it)',
                   model=model, step=model.step)


def _fast_style(net: FastNet) -> Signature:
  network = build_model(net.config.model, channels=3)
  variables = net.variables

  def stylize(content, style_mix):
    return network.apply(variables, {'image': content, 'style': style_mix})

  # Reflection padding of the 9x9 first conv and of the 3x3 convs after two stride-2 convs
  # needs sides of at least 2 * SIDE_MULTIPLE.
  return Signature(function=stylize, inputs=(Input('content', 'image', 3), Input('style_mix', 'mix', len(net.styles))),
                   multiple=SIDE_MULTIPLE, min_side=2 * SIDE_MULTIPLE, task=_task_options(net.config),
                   output='the stylized content image; style_mix weighs the trained styles (summing to 1)',
                   model=net, step=net.step)


def _adain(net: AdaINNet) -> Signature:
  decoder = build_model(net.config.model, channels=3)
  variables, frozen, layer = net.variables, {'vgg': net.loss.network.variables}, net.loss.content_layer

  def stylize(content, style, alpha):
    content_features = net.loss.encode(content, frozen)[layer]
    target = losses.adain(content_features, net.loss.encode(style, frozen)[layer])
    return decoder.apply(variables, alpha * target + (1.0 - alpha) * content_features)

  # relu4_1 is 1/8 of the image; its 3x3 reflection-padded convs need at least 2 pixels.
  return Signature(function=stylize, inputs=(Input('content', 'image', 3), Input('style', 'image', 3, 'style_'),
                                             Input('alpha', 'scalar')),
                   multiple=UPSAMPLING, min_side=2 * UPSAMPLING, task=_task_options(net.config),
                   output='the content image in the style of the style image; alpha in [0, 1] is the style strength',
                   model=net, step=net.step)


def signature_of(workdir: str | pathlib.Path, *, step: int | str | None = None) -> Signature:
  """The inference signature of a workdir's checkpoint (`step`: best (default), latest or a number)."""
  step, saved, variables = checkpoint.load_variables(workdir, step=step)
  config = config_from_dict(saved)
  if config.task.name == 'fast_style':
    return _fast_style(FastNet(config=config, variables=variables, step=step))
  if config.task.name == 'adain':
    return _adain(AdaINNet(config=config, variables=variables, step=step))
  return _reconstruction(TrainedModel(config=config, variables=variables, step=step))


def signature_of_model(model: TrainedModel | FastNet | AdaINNet) -> Signature:
  """The inference signature of a model already in memory (e.g. from `cnnrecon.load_model`)."""
  if isinstance(model, FastNet):
    return _fast_style(model)
  if isinstance(model, AdaINNet):
    return _adain(model)
  return _reconstruction(model)
