"""Gatys et al.'s perceptual loss: a frozen VGG, Gram-matrix style terms, content and TV terms, one set of defaults.

`gatys_terms` is the loss's one definition: the fast-style task trains on it
(`GramPerceptualLoss`) and `cnnrecon.style.gatys` optimises single images
against it, so a fast net and an image optimisation are scored on the same
loss. `GATYS_DEFAULTS` are the weights and layers of both (and of
`config.task.fast_style`, `fast_style_defaults`). AdaIN's encoder and loss are
in `adain_loss.py`.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import skimage.transform

from cnnrecon.style import losses
from cnnrecon.data.images import read_image, style_image_path
from cnnrecon.errors import CnnreconError
from cnnrecon.style.loss_network import LossNetwork, deepest, load_loss_network
from cnnrecon.models.vgg import layer_names


CONTENT_LAYERS = ('relu4_2',)
STYLE_LAYERS = ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1')
# Weights and layers of Gatys' loss, measured on the VGG-16 hed weights.
GATYS_DEFAULTS = {'content_weight': 1.0, 'style_weight': 1e3, 'tv_weight': 1e-5,
                  'content_layers': CONTENT_LAYERS, 'style_layers': STYLE_LAYERS}


def fast_style_defaults() -> ml_collections.ConfigDict:
  """`config.task.fast_style`: the styles (image files or names of the paintings shipped in
  cnnrecon/data/paintings), resized to `style_size` on their short side, and Gatys' loss on the
  `features` VGG (`GATYS_DEFAULTS`)."""
  return ml_collections.ConfigDict({'styles': ('starry_night',), 'style_size': 256, 'features': 'vgg16-hed',
                                    **GATYS_DEFAULTS})


def gatys_terms(image: jax.Array, features: dict, content_targets: dict, style_grams: dict, *,
                content_layers, style_layers, style_layer_weights, normalisation: str = 'johnson') -> dict:
  """The unweighted `{'content', 'style', 'tv'}` terms of Gatys' loss for a batch of images.

  Args:
    image: the images [B, H, W, 3] being scored (or optimised).
    features: their named VGG activations.
    content_targets: the content images' activations (targets of the content term).
    style_grams: per style layer, the target Gram matrices ([B or 1, C, C], `normalisation`).
    content_layers, style_layers, style_layer_weights: the layers and the style layers' weights.
    normalisation: of the Gram matrices ('johnson' or 'gatys', see `losses.style_loss`).
  """
  return {
      'content': sum(losses.content_loss(features[l], content_targets[l]) for l in content_layers),
      'style': sum(weight * losses.style_loss(features[l], style_grams[l], normalisation=normalisation)
                   for l, weight in zip(style_layers, style_layer_weights)),
      'tv': losses.total_variation(image),
  }


def resize_short_side(image: np.ndarray, side: int) -> np.ndarray:
  """`image` [H, W, C] resized (anti-aliased) so its shorter side is `side` pixels."""
  scale = side / min(image.shape[:2])
  shape = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)), image.shape[2])
  return skimage.transform.resize(image, shape, anti_aliasing=scale < 1, preserve_range=True).astype(np.float32)


def read_styles(styles, side: int) -> list[np.ndarray]:
  """The style images (paths or shipped painting names), RGB in [0, 1], short side `side`."""
  return [resize_short_side(read_image(style_image_path(style), channels=3), side) for style in styles]


@dataclasses.dataclass(frozen=True)
class GramPerceptualLoss:
  """content_weight * content + style_weight * sum_l w_l style_l + tv_weight * TV, per Gatys et al.

  Attributes:
    network: the VGG (its variables go to the train state's `frozen`).
    style_images: RGB style images in [0, 1]; their Gram matrices are the targets.
    content_layers, style_layers, style_layer_weights: VGG layer names and weights.
    content_weight, style_weight, tv_weight: the terms' weights.
  """

  network: LossNetwork
  style_images: tuple[np.ndarray, ...]
  content_layers: tuple[str, ...]
  style_layers: tuple[str, ...]
  style_layer_weights: tuple[float, ...]
  content_weight: float
  style_weight: float
  tv_weight: float

  @property
  def num_styles(self) -> int:
    """How many styles the loss holds targets for."""
    return len(self.style_images)

  @property
  def description(self) -> str:
    """What the loss compares with, for reports."""
    return f'{self.num_styles} style(s); loss network: {self.network.description}'

  def init_frozen(self) -> dict:
    """`{'vgg': VGG variables, 'grams': {layer: [styles, C, C]}}` (Johnson-normalised Grams)."""
    grams = {layer: [] for layer in self.style_layers}
    for image in self.style_images:
      features = self.network(jnp.asarray(image[None]))
      for layer in self.style_layers:
        grams[layer].append(losses.gram_matrix(features[layer])[0])
    return {'vgg': self.network.variables, 'grams': {layer: jnp.stack(g) for layer, g in grams.items()}}

  def parts(self, estimate: jax.Array, content: jax.Array, style_mix: jax.Array, frozen: Any) -> dict:
    """The unweighted `{'content', 'style', 'tv'}` terms of a batch, against the `style_mix` blend of Grams."""
    variables = jax.lax.stop_gradient(frozen['vgg'])
    features = self.network.vgg.apply(variables, estimate)
    targets = jax.lax.stop_gradient(self.network.vgg.apply(variables, content))
    grams = {layer: jnp.einsum('bs,sij->bij', style_mix, frozen['grams'][layer]) for layer in self.style_layers}
    return gatys_terms(estimate, features, targets, grams, content_layers=self.content_layers,
                       style_layers=self.style_layers, style_layer_weights=self.style_layer_weights)

  def __call__(self, estimate: jax.Array, content: jax.Array, style_mix: jax.Array, frozen: Any) -> jax.Array:
    parts = self.parts(estimate, content, style_mix, frozen)
    return (self.content_weight * parts['content'] + self.style_weight * parts['style']
            + self.tv_weight * parts['tv'])


def check_fast_style_options(options: ml_collections.ConfigDict) -> None:
  """One-line errors for bad `task.fast_style` options (before anything is loaded)."""
  if not options.styles:
    raise CnnreconError('task.fast_style.styles is empty: give one or more style images, e.g. '
                        "--config.task.fast_style.styles=\"('starry_night',)\"")
  for style in options.styles:
    if not style_image_path(style).is_file():
      raise CnnreconError(f'style image {style!r} not found: give an image file or a shipped painting '
                          '(starry_night, the_scream, shipwreck, woman_with_hat_matisse)')
  unknown = [l for l in tuple(options.content_layers) + tuple(options.style_layers) if l not in layer_names(16)]
  if unknown:
    raise CnnreconError(f'VGG-16 has no layer {unknown[0]!r}: use names like relu1_1, relu4_2, conv3_1')
  if not isinstance(options.style_size, int) or options.style_size < 16:
    raise CnnreconError(f'task.fast_style.style_size={options.style_size!r} must be an integer >= 16')


def fast_style_loss(options: ml_collections.ConfigDict, *, seed: int = 0) -> GramPerceptualLoss:
  """The perceptual loss `config.task.fast_style` describes (reads the VGG weights and style images)."""
  check_fast_style_options(options)
  layers = tuple(options.content_layers) + tuple(options.style_layers)
  network = load_loss_network(options.features, last_layer=deepest(layers), seed=seed)
  return GramPerceptualLoss(
      network=network, style_images=tuple(read_styles(options.styles, options.style_size)),
      content_layers=tuple(options.content_layers), style_layers=tuple(options.style_layers),
      style_layer_weights=(1.0,) * len(options.style_layers), content_weight=float(options.content_weight),
      style_weight=float(options.style_weight), tv_weight=float(options.tv_weight))
