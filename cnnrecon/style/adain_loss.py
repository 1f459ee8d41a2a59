"""AdaIN's encoder and loss (Huang & Belongie 2017): content against the AdaIN target, mean / std style terms."""

import dataclasses
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon.style import losses
from cnnrecon.data.images import list_images, style_image_path
from cnnrecon.data.pipeline import center_crop
from cnnrecon.errors import CnnreconError
from cnnrecon.style.loss_network import LossNetwork, deepest, load_loss_network
from cnnrecon.models.vgg import layer_names
from cnnrecon.style.perceptual import read_styles


def adain_defaults() -> ml_collections.ConfigDict:
  """`config.task.adain`: `styles` are image files, folders of them (every image inside) or shipped
  paintings, resized to `style_size` on their short side (center squares; each example gets a random
  crop of one); a decoder learns to invert AdaIN at `content_layer` of the `features` VGG; loss =
  content + style_weight * mean/std loss at `style_layers`."""
  return ml_collections.ConfigDict({
      'styles': ('starry_night', 'the_scream', 'shipwreck'), 'style_size': 512, 'features': 'vgg16-hed',
      'style_weight': 10.0, 'content_layer': 'relu4_1', 'style_layers': ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1')})


def style_files(styles) -> list[pathlib.Path]:
  """Every style image `styles` names: files, shipped painting names, or folders (all their images)."""
  files = []
  for style in styles:
    path = style_image_path(style)
    if path.is_dir():
      files += list_images(path)
    elif path.is_file():
      files.append(path)
    else:
      raise CnnreconError(f'style image {style!r} not found: give an image file, a folder of them or a shipped '
                          'painting (starry_night, the_scream, shipwreck, woman_with_hat_matisse)')
  return files


@dataclasses.dataclass(frozen=True)
class AdaINLoss:
  """The encoder and loss of AdaIN training (Huang & Belongie 2017, eq. 11-13).

  `content_weight` is 1: content ||f(g(t)) - t||^2 (mean) at `content_layer`,
  plus `style_weight` x the sum over `style_layers` of the mean / std loss.

  Attributes:
    network: the VGG encoder (its variables go to the train state's `frozen`).
    style_images: RGB squares of side `style_size` in [0, 1] (empty when only stylizing).
    content_layer: the layer AdaIN is applied at and the decoder inverts.
    style_layers: VGG layer names of the style loss.
    style_weight: the style term's weight (the paper's lambda = 10).
  """

  network: LossNetwork
  style_images: tuple[np.ndarray, ...]
  content_layer: str
  style_layers: tuple[str, ...]
  style_weight: float

  @property
  def num_styles(self) -> int:
    """How many training style images the loss holds."""
    return len(self.style_images)

  @property
  def description(self) -> str:
    """What the loss compares with, for reports."""
    return f'{self.num_styles} style image(s); encoder: {self.network.description}'

  def init_frozen(self) -> dict:
    """`{'vgg': encoder variables, 'style_images': [styles, side, side, 3]}`."""
    return {'vgg': self.network.variables, 'style_images': jnp.asarray(np.stack(self.style_images))}

  def encode(self, images: jax.Array, frozen: Any) -> dict[str, jax.Array]:
    """Named VGG activations of NHWC images in [0, 1]; no gradient reaches the weights."""
    return self.network.vgg.apply(jax.lax.stop_gradient(frozen['vgg']), images)

  def style_features(self, features: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """The style layers' activations, the targets of the style loss."""
    return {layer: features[layer] for layer in self.style_layers}

  def transfer(self, content: jax.Array, style: jax.Array, frozen: Any) -> tuple[jax.Array, dict]:
    """`(AdaIN(f(content), f(style)), style layers' features of style)`, both without gradients."""
    style_features = jax.lax.stop_gradient(self.encode(style, frozen))
    content_features = jax.lax.stop_gradient(self.encode(content, frozen)[self.content_layer])
    return losses.adain(content_features, style_features[self.content_layer]), self.style_features(style_features)

  def feature_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of the content layer's features (the decoder's input) for images of `image_shape`."""
    shape = jax.eval_shape(lambda images: self.encode(images, {'vgg': self.network.variables})[self.content_layer],
                           jax.ShapeDtypeStruct(image_shape, jnp.float32))
    return tuple(shape.shape)

  def parts(self, estimate: jax.Array, target: jax.Array, style_features: Sequence[dict],
            weights: Sequence[float], frozen: Any) -> dict:
    """The unweighted `{'content', 'style'}` terms; the style term is the `weights`-blend over styles."""
    features = self.encode(estimate, frozen)
    style = sum(weight * sum(losses.mean_std_loss(features[layer], targets[layer]) for layer in self.style_layers)
                for targets, weight in zip(style_features, weights))
    return {'content': losses.content_loss(features[self.content_layer], target), 'style': style}

  def __call__(self, estimate: jax.Array, target: jax.Array, style_features: dict, frozen: Any) -> jax.Array:
    parts = self.parts(estimate, target, [style_features], [1.0], frozen)
    return parts['content'] + self.style_weight * parts['style']


def check_adain_options(options: ml_collections.ConfigDict) -> None:
  """One-line errors for bad `task.adain` options (before any weights are loaded)."""
  if not options.styles:
    raise CnnreconError('task.adain.styles is empty: give style images, folders of them or shipped paintings, e.g. '
                        "--config.task.adain.styles=\"('starry_night', 'the_scream')\"")
  style_files(options.styles)
  names = layer_names(16)
  unknown = [l for l in (options.content_layer, *options.style_layers) if l not in names]
  if unknown:
    raise CnnreconError(f'VGG-16 has no layer {unknown[0]!r}: use names like relu1_1, relu4_1, conv3_1')
  if not options.content_layer.startswith(('relu4_', 'conv4_')):
    raise CnnreconError(f'task.adain.content_layer={options.content_layer!r}: the decoder upsamples x8, so use a '
                        'block-4 layer (relu4_1, the paper\'s)')
  if not options.style_layers:
    raise CnnreconError('task.adain.style_layers is empty: give e.g. "(\'relu1_1\', \'relu2_1\', \'relu3_1\', '
                        '\'relu4_1\')"')
  if isinstance(options.style_size, bool) or not isinstance(options.style_size, int) or options.style_size < 16:
    raise CnnreconError(f'task.adain.style_size={options.style_size!r} must be an integer >= 16')
  if not options.style_weight >= 0:
    raise CnnreconError(f'task.adain.style_weight={options.style_weight!r} must be >= 0 (the paper uses 10)')


def adain_encoder(options: ml_collections.ConfigDict, *, seed: int = 0) -> LossNetwork:
  """The VGG encoder `config.task.adain` names, up to its deepest content or style layer.

  Max pooling, as the paper's encoder (VGG-19 up to relu4_1) pools; `seed` seeds 'random' weights.
  """
  layers = (options.content_layer, *options.style_layers)
  return load_loss_network(options.features, last_layer=deepest(layers), pooling='max', seed=seed)


def adain_loss(options: ml_collections.ConfigDict, *, seed: int = 0, with_styles: bool = True) -> AdaINLoss:
  """The AdaIN encoder and loss `config.task.adain` describes.

  Args:
    options: `config.task.adain`.
    seed: `config.seed` (seeds `features='random'`).
    with_styles: read the training style images (resized to `style_size` on their short side, center
      squares); stylizing needs only the encoder, and its styles may no longer exist.
  """
  if with_styles:
    check_adain_options(options)
    side = options.style_size
    styles = tuple(center_crop(image, side) for image in read_styles(style_files(options.styles), side))
  else:
    styles = ()
  return AdaINLoss(network=adain_encoder(options, seed=seed), style_images=styles,
                   content_layer=options.content_layer, style_layers=tuple(options.style_layers),
                   style_weight=float(options.style_weight))
