"""Stylizing with a trained AdaIN decoder: any style image, one encoder + decoder pass per image.

Training is the shared one (`cnnrecon train --config experiments/style_adain.py`):
task `adain` (`cnnrecon.style.tasks`) with the `adain_decoder` model. At test
time (Huang & Belongie 2017, section 7) styles blend in feature space,
t = sum_k w_k AdaIN(f(c), f(s_k)), and `alpha` trades style for content,
t = alpha t + (1 - alpha) f(c), before the decoder.
"""

import dataclasses
import functools
import pathlib
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import compiler
from cnnrecon.style import losses
from cnnrecon.models.adain import UPSAMPLING
from cnnrecon.models.registry import build_model
from cnnrecon.style import adain_loss
from cnnrecon.style.fast import load_style_workdir, reflect_pad_to_multiple

# relu4_1 is 1/8 of the image; its 3x3 reflection-padded convs need at least 2 pixels: the one rule for
# the images (content and style) in stylize (workdir or export) and in the export.
MIN_SIDE = 2 * UPSAMPLING


@dataclasses.dataclass(frozen=True)
class AdaINNet:
  """A trained AdaIN decoder, its config (encoder, training styles) and step."""

  config: ml_collections.ConfigDict
  variables: dict
  step: int

  @property
  def styles(self) -> tuple[str, ...]:
    """The style images, folders or painting names the decoder was trained with."""
    return tuple(self.config.task.adain.styles)

  @functools.cached_property
  def loss(self) -> adain_loss.AdaINLoss:
    """The training run's encoder and loss (without its style images: any style will do)."""
    return adain_loss.adain_loss(self.config.task.adain, seed=self.config.seed, with_styles=False)

  @functools.cached_property
  def _frozen(self) -> dict:
    return {'vgg': self.loss.network.variables}

  @functools.cached_property
  def _encode(self):
    return compiler.jit(self.loss.encode, cpu_conv=self.config.compile.cpu_conv)

  @functools.cached_property
  def _decode(self):
    model = build_model(self.config.model, channels=3)
    return compiler.jit(model.apply, cpu_conv=self.config.compile.cpu_conv)

  @functools.cached_property
  def _parts(self):
    return jax.jit(self.loss.parts)

  def encode(self, image: np.ndarray) -> dict[str, jax.Array]:
    """Encoder activations of one RGB image [H, W, 3] (sides padded to multiples of 8)."""
    return self._encode(jnp.asarray(reflect_pad_to_multiple(image, UPSAMPLING)), self._frozen)

  def target(self, content_features: dict, style_features: Sequence[dict], weights: Sequence[float],
             alpha: float) -> jax.Array:
    """t = alpha * sum_k w_k AdaIN(f(c), f(s_k)) + (1 - alpha) f(c) at the content layer."""
    layer = self.loss.content_layer
    content = content_features[layer]
    blended = sum(weight * losses.adain(content, style[layer]) for style, weight in zip(style_features, weights))
    return alpha * blended + (1.0 - alpha) * content

  def decode(self, target: jax.Array) -> jax.Array:
    """The decoder's image [1, 8h, 8w, 3] of a target t [1, h, w, C]."""
    return self._decode(self.variables, target)

  def __call__(self, content: np.ndarray, styles: Sequence[np.ndarray], weights: Sequence[float],
               alpha: float = 1.0) -> np.ndarray:
    """Stylizes one RGB image [H, W, 3] in [0, 1] with a blend of (any) style images; same shape out."""
    height, width = content.shape[:2]
    target = self.target(self.encode(content), [self.encode(style) for style in styles], weights, alpha)
    return np.asarray(self.decode(target))[0, :height, :width]

  def score(self, content: np.ndarray, styles: Sequence[np.ndarray], weights: Sequence[float],
            alpha: float = 1.0) -> tuple[np.ndarray, dict[str, float]]:
    """`(result, {'content', 'style', 'seconds'})` for one content image.

    `content` and `style` are the training loss's unweighted terms on the padded
    result: ||f(g(t)) - t||^2 and the `weights`-blend of the mean / std losses
    against each style. `seconds` times encoding, AdaIN and decoding after a
    first, compiling call of the same shapes.
    """
    self(content, styles, weights, alpha)  # compile for these shapes
    started = time.perf_counter()
    style_features = [self.encode(style) for style in styles]
    target = self.target(self.encode(content), style_features, weights, alpha)
    padded = jax.block_until_ready(self.decode(target))
    seconds = time.perf_counter() - started
    style_targets = [self.loss.style_features(features) for features in style_features]
    parts = self._parts(padded, target, style_targets, list(weights), self._frozen)
    height, width = content.shape[:2]
    return np.asarray(padded)[0, :height, :width], {**{k: float(v) for k, v in parts.items()}, 'seconds': seconds}


  def loss_terms(self, image: np.ndarray, content: np.ndarray, styles: Sequence[np.ndarray],
                 weights: Sequence[float], alpha: float = 1.0) -> dict[str, float]:
    """The training loss's unweighted `{'content', 'style'}` terms of any RGB image [H, W, 3] (another
    method's result, say) as a stylization of `content` with `styles`, padded as the decoder pads."""
    style_features = [self.encode(style) for style in styles]
    target = self.target(self.encode(content), style_features, weights, alpha)
    style_targets = [self.loss.style_features(features) for features in style_features]
    padded = jnp.asarray(reflect_pad_to_multiple(image, UPSAMPLING))
    parts = self._parts(padded, target, style_targets, list(weights), self._frozen)
    return {key: float(value) for key, value in parts.items()}


def load_adain_net(workdir: str | pathlib.Path) -> AdaINNet:
  """The best (lowest validation loss, else latest) decoder of a workdir trained for the `adain` task."""
  return load_style_workdir(workdir, task='adain', method='AdaIN style transfer', experiment='style_adain')
