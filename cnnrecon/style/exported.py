"""Style nets in exports: the functions an export holds (`*_signature`), and exports behind the interface
`cnnrecon stylize` uses for trained nets (`FastNet`, `AdaINNet`).

A `params` export loads as the trained net itself. A StableHLO export has no
loss network, so its results come without loss terms (only the seconds).
"""

import dataclasses
import pathlib
import time
from typing import Sequence

import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.inference import ExportedModel, load_export, task_name
from cnnrecon.models.adain import UPSAMPLING
from cnnrecon.models.registry import build_model
from cnnrecon.style import adain, fast, losses
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.fast import SIDE_MULTIPLE, FastNet, reflect_pad_to_multiple
from cnnrecon.tasks import Input, Signature
from cnnrecon.tasks.base import task_record


def fast_style_signature(net: FastNet) -> Signature:
  """(content images, style mix) -> stylized images: the transform net."""
  network = build_model(net.config.model, channels=3)
  variables = net.variables

  def stylize(content, style_mix):
    return network.apply(variables, {'image': content, 'style': style_mix})

  inputs = (Input('content', 'image', channels=3, value_range=(0.0, 1.0)),
            Input('style_mix', 'mix', length=len(net.styles)))
  return Signature(function=stylize, inputs=inputs, multiple=SIDE_MULTIPLE, min_side=fast.MIN_SIDE,
                   task=task_record(net.config),
                   output='the stylized content image; style_mix weighs the trained styles (summing to 1)',
                   model=net, step=net.step)


def adain_signature(net: AdaINNet) -> Signature:
  """(content image, style image, alpha) -> stylized image: VGG encoder, AdaIN and decoder in one function."""
  decoder = build_model(net.config.model, channels=3)
  variables, frozen, layer = net.variables, {'vgg': net.loss.network.variables}, net.loss.content_layer

  def stylize(content, style, alpha):
    content_features = net.loss.encode(content, frozen)[layer]
    target = losses.adain(content_features, net.loss.encode(style, frozen)[layer])
    return decoder.apply(variables, alpha * target + (1.0 - alpha) * content_features)

  inputs = (Input('content', 'image', channels=3, value_range=(0.0, 1.0)),
            Input('style', 'image', channels=3, prefix='style_', value_range=(0.0, 1.0)),
            Input('alpha', 'scalar', value_range=(0.0, 1.0)))
  return Signature(function=stylize, inputs=inputs, multiple=UPSAMPLING, min_side=adain.MIN_SIDE,
                   task=task_record(net.config),
                   output='the content image in the style of the style image; alpha in [0, 1] is the style strength',
                   model=net, step=net.step)


@dataclasses.dataclass(frozen=True)
class ExportedFastNet:
  """A StableHLO fast style net: `net(image, style_mix)` as `FastNet` does it."""

  model: ExportedModel

  @property
  def styles(self) -> tuple[str, ...]:
    """The styles the net was trained on, in its style_mix order."""
    return tuple(self.model.manifest['task']['styles'])

  @property
  def step(self) -> int:
    """The exported checkpoint's step."""
    return self.model.manifest['source']['step']

  def __call__(self, image: np.ndarray, style_mix: Sequence[float]) -> np.ndarray:
    """Stylizes one RGB image [H, W, 3] (reflect-padded to the net's side multiple, then cropped back)."""
    height, width = image.shape[:2]
    padded = reflect_pad_to_multiple(image, self.model.manifest['spatial']['multiple'])
    return self.model(padded, np.asarray([style_mix], np.float32))[0, :height, :width]


@dataclasses.dataclass(frozen=True)
class ExportedAdaINNet:
  """A StableHLO AdaIN net (encoder, AdaIN, decoder): one style image at a time."""

  model: ExportedModel

  @property
  def step(self) -> int:
    """The exported checkpoint's step."""
    return self.model.manifest['source']['step']

  def score(self, content: np.ndarray, styles: Sequence[np.ndarray], weights: Sequence[float],
            alpha: float = 1.0) -> tuple[np.ndarray, dict[str, float]]:
    """`(result [H, W, 3], {'seconds'})` as `AdaINNet.score`, without the loss terms (no encoder loss here)."""
    if len(styles) != 1:
      raise CnnreconError(f'an exported AdaIN net takes one --style image, not {len(styles)}: blend styles with '
                          'the workdir or a params export')
    multiple = self.model.manifest['spatial']['multiple']
    height, width = content.shape[:2]
    inputs = reflect_pad_to_multiple(content, multiple), reflect_pad_to_multiple(styles[0], multiple), np.float32(alpha)
    self.model(*inputs)  # compile for these shapes, as AdaINNet.score does
    started = time.perf_counter()
    result = self.model(*inputs)
    return result[0, :height, :width], {'seconds': time.perf_counter() - started}


def load_style_net(directory: str | pathlib.Path, method: str):
  """The style net of an export for `cnnrecon stylize --method fast|adain --exported DIR`."""
  loaded = load_export(directory)
  task = task_name(loaded)
  expected = {'fast': 'fast_style', 'adain': 'adain'}.get(method)
  if task != expected:
    raise CnnreconError(f'{directory} holds a {task} model, not a --method {method} style net: '
                        + ('use `cnnrecon denoise --exported`' if task not in ('fast_style', 'adain') else
                           f'use --method {"fast" if task == "fast_style" else "adain"}'))
  if isinstance(loaded, (FastNet, AdaINNet)):
    return loaded
  return ExportedFastNet(loaded) if task == 'fast_style' else ExportedAdaINNet(loaded)
