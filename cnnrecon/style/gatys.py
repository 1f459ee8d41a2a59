"""Gatys et al. (2016) style transfer: optimise the pixels of an image against VGG losses.

The loss is `content_weight * sum_l content_loss(F_l(x), F_l(content))
+ style_weight * sum_l style_loss(F_l(x), blended Gram of the styles)
+ tv_weight * total_variation(x)` with Johnson-normalised Gram matrices
(`cnnrecon.losses`). One `jax.jit`-compiled step serves every iteration (and every
image of the same size);
Adam (`optax.adam`) or L-BFGS (`optax.lbfgs`, with its zoom line search).
"""

import dataclasses
import functools
import time
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tqdm

from cnnrecon.errors import CnnreconError
from cnnrecon.models.vgg import layer_names
from cnnrecon.style import losses
from cnnrecon.style.loss_network import LossNetwork
from cnnrecon.style.perceptual import CONTENT_LAYERS, GATYS_DEFAULTS, STYLE_LAYERS, gatys_terms

OPTIMIZERS = ('adam', 'lbfgs')
INITS = ('content', 'style', 'noise')


@dataclasses.dataclass(frozen=True)
class GatysSettings:
  """Weights, layers and optimiser of one optimisation (defaults: `perceptual.GATYS_DEFAULTS`)."""

  content_weight: float = GATYS_DEFAULTS['content_weight']
  style_weight: float = GATYS_DEFAULTS['style_weight']
  tv_weight: float = GATYS_DEFAULTS['tv_weight']
  content_layers: tuple[str, ...] = CONTENT_LAYERS
  style_layers: tuple[str, ...] = STYLE_LAYERS
  style_layer_weights: tuple[float, ...] | None = None  # one per style layer; None = all 1
  gram_normalisation: str = 'johnson'  # or 'gatys' (see losses.style_loss)
  optimizer: str = 'adam'
  learning_rate: float = 0.02
  steps: int = 200
  init: str = 'content'
  seed: int = 0

  def __post_init__(self):
    if self.optimizer not in OPTIMIZERS:
      raise CnnreconError(f'unknown optimizer {self.optimizer!r}: use adam or lbfgs')
    if self.init not in INITS:
      raise CnnreconError(f'unknown init {self.init!r}: use content, style or noise')
    if self.steps < 1:
      raise CnnreconError(f'steps={self.steps} must be >= 1')
    if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
      raise CnnreconError(f'{len(self.style_layer_weights)} style layer weights for {len(self.style_layers)} style '
                          'layers: give one weight per layer')
    unknown = [layer for layer in self.content_layers + self.style_layers if layer not in layer_names(19)]
    if unknown:
      raise CnnreconError(f'VGG has no layer {unknown[0]!r}: use names like relu1_1, relu4_2, conv3_1, pool2')
    if self.gram_normalisation not in losses.GRAM_NORMALISATIONS:
      raise CnnreconError(f'unknown Gram normalisation {self.gram_normalisation!r}: use johnson or gatys')

  @property
  def layer_weights(self) -> tuple[float, ...]:
    """The weight of each style layer."""
    return self.style_layer_weights or (1.0,) * len(self.style_layers)


def blended_grams(network: LossNetwork, styles: Sequence[np.ndarray], blend: Sequence[float],
                  layers: Sequence[str], *, normalisation: str = 'johnson') -> dict[str, jax.Array]:
  """The blend-weighted Gram matrices of several style images.

  With 'johnson' normalisation style images of any size mix; with 'gatys' (plain
  sums) they should share the content's size, since the loss divides by the
  optimised image's size.
  """
  grams = {layer: 0.0 for layer in layers}
  for style, weight in zip(styles, blend):
    style_grams = _grams(network.vgg, tuple(layers), normalisation, network.variables,
                         jnp.asarray(style[None], jnp.float32))
    for layer in layers:
      grams[layer] = grams[layer] + weight * style_grams[layer]
  return grams


# The jitted functions below take the VGG's weights and the targets as arguments, not as constants
# captured by a closure: one compiled program per image size and loss settings then serves every
# content and style image (a folder of contents, a pyramid's styles, a second call), and the VGG's
# weights are not embedded in the program as constants.
def _activations(vgg, variables, images: jax.Array) -> dict[str, jax.Array]:
  """`LossNetwork.__call__` with the weights as an argument: named activations, no gradient to the weights."""
  return vgg.apply(jax.lax.stop_gradient(variables), images)


_features = jax.jit(_activations, static_argnums=0)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _grams(vgg, layers: tuple[str, ...], normalisation: str, variables, images: jax.Array) -> dict[str, jax.Array]:
  features = _activations(vgg, variables, images)
  return {layer: losses.gram_matrix(features[layer], normalisation=normalisation) for layer in layers}


def _loss_settings(settings: GatysSettings) -> GatysSettings:
  """`settings` without the fields a step does not read (steps, init, seed), so they share a compiled step."""
  return dataclasses.replace(settings, steps=1, init='content', seed=0)


def _loss(vgg, settings: GatysSettings, variables, targets, image: jax.Array
          ) -> tuple[jax.Array, dict[str, jax.Array]]:
  content_targets, style_grams = targets
  parts = gatys_terms(image, _activations(vgg, variables, image), content_targets, style_grams,
                      content_layers=settings.content_layers, style_layers=settings.style_layers,
                      style_layer_weights=settings.layer_weights, normalisation=settings.gram_normalisation)
  total = (settings.content_weight * parts['content'] + settings.style_weight * parts['style']
           + settings.tv_weight * parts['tv'])
  return total, parts


_jitted_loss = jax.jit(_loss, static_argnums=(0, 1))


def make_loss(network: LossNetwork, content: np.ndarray, style_grams: dict, settings: GatysSettings
              ) -> Callable[[jax.Array], tuple[jax.Array, dict[str, jax.Array]]]:
  """`loss(image) -> (total, {'content', 'style', 'tv'})` for an image [1, H, W, 3] (jitted)."""
  return functools.partial(_jitted_loss, network.vgg, _loss_settings(settings), network.variables,
                           _targets(network, content, style_grams))


def _targets(network: LossNetwork, content: np.ndarray, style_grams: dict) -> tuple[dict, dict]:
  """(the content image's VGG activations, the style Gram targets): what a step compares with."""
  return _features(network.vgg, network.variables, jnp.asarray(content[None], jnp.float32)), style_grams


def _initial_image(content: np.ndarray, style: np.ndarray, settings: GatysSettings) -> jax.Array:
  if settings.init == 'content':
    return jnp.asarray(content[None], jnp.float32)
  if settings.init == 'style':
    return jax.image.resize(jnp.asarray(style[None], jnp.float32), (1, *content.shape), 'bilinear')
  return jax.random.uniform(jax.random.key(settings.seed), (1, *content.shape))


def _optimizer(settings: GatysSettings) -> optax.GradientTransformationExtraArgs:
  return optax.adam(settings.learning_rate) if settings.optimizer == 'adam' else optax.lbfgs()


@functools.partial(jax.jit, static_argnums=(0, 1))
def _adam_step(vgg, settings: GatysSettings, variables, targets, image: jax.Array, state):
  loss = functools.partial(_loss, vgg, settings, variables, targets)
  (_, parts), grad = jax.value_and_grad(loss, has_aux=True)(image)
  updates, state = _optimizer(settings).update(grad, state, image)
  return jnp.clip(optax.apply_updates(image, updates), 0.0, 1.0), state, parts


@functools.partial(jax.jit, static_argnums=(0, 1))
def _lbfgs_step(vgg, settings: GatysSettings, variables, targets, image: jax.Array, state):
  loss = functools.partial(_loss, vgg, settings, variables, targets)
  total = lambda image: loss(image)[0]
  value, grad = optax.value_and_grad_from_state(total)(image, state=state)
  updates, state = _optimizer(settings).update(grad, state, image, value=value, grad=grad, value_fn=total)
  image = jnp.clip(optax.apply_updates(image, updates), 0.0, 1.0)
  return image, state, loss(image)[1]


def stylize(network: LossNetwork, content: np.ndarray, styles: Sequence[np.ndarray], *,
            blend: Sequence[float] | None = None, settings: GatysSettings = GatysSettings(),
            initial: np.ndarray | None = None, progress: bool = True) -> tuple[np.ndarray, list[dict[str, float]]]:
  """Optimises an image with the content of `content` and the style of `styles`.

  Args:
    network: the VGG loss network (`models.loss_network.load_loss_network`).
    content: HxWx3 float image in [0, 1].
    styles: HxWx3 float images in [0, 1] (any sizes).
    blend: one weight per style, summing to 1 (default: equal).
    settings: weights, layers, optimiser, steps, init.
    initial: a starting image of the content's shape (e.g. a coarser level's
      result, upsampled), instead of `settings.init`.
    progress: show a progress bar with the losses.

  Returns:
    The stylised HxWx3 image and the per-step losses (content, style, tv, total,
    seconds since the start, the first entry being the initial image).
  """
  blend = list(blend) if blend is not None else [1.0 / len(styles)] * len(styles)
  grams = blended_grams(network, styles, blend, settings.style_layers, normalisation=settings.gram_normalisation)
  targets = _targets(network, content, grams)
  loss_settings = _loss_settings(settings)
  step = functools.partial(_adam_step if settings.optimizer == 'adam' else _lbfgs_step, network.vgg, loss_settings,
                           network.variables, targets)
  image = _initial_image(content, styles[0], settings) if initial is None else jnp.asarray(initial[None], jnp.float32)
  # optax.lbfgs' initial state holds weakly typed scalars that its update returns strongly typed:
  # without this cast the jitted step compiles twice (about 4 s for VGG-16 at 64 px on 2 cores).
  state = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype=jnp.result_type(leaf)),
                       _optimizer(settings).init(image))
  history = [_record(_jitted_loss(network.vgg, loss_settings, network.variables, targets, image)[1], settings, 0.0)]
  started = time.perf_counter()
  with tqdm.trange(settings.steps, disable=not progress, unit='step', dynamic_ncols=True) as bar:
    for _ in bar:
      image, state, parts = step(image, state)
      history.append(_record(parts, settings, time.perf_counter() - started))
      bar.set_postfix(content=f"{history[-1]['content']:.3g}", style=f"{history[-1]['style']:.3g}")
  if not np.isfinite(history[-1]['total']):
    raise CnnreconError('the optimisation diverged (non-finite loss): lower the learning rate or the weights')
  return np.asarray(image[0]), history


def _record(parts: dict, settings: GatysSettings, seconds: float) -> dict[str, float]:
  values = {name: float(value) for name, value in parts.items()}
  values['total'] = (settings.content_weight * values['content'] + settings.style_weight * values['style']
                     + settings.tv_weight * values['tv'])
  values['seconds'] = seconds
  return values


def resize_image(image: np.ndarray, height_width: tuple[int, int]) -> np.ndarray:
  """An HWC image resampled to `height_width` (Lanczos-3, antialiased), clipped to [0, 1]."""
  shape = (*height_width, image.shape[2])
  return np.asarray(jax.image.resize(jnp.asarray(image), shape, 'lanczos3', antialias=True).clip(0, 1))


def stylize_pyramid(network: LossNetwork, content: np.ndarray, styles: Sequence[np.ndarray], *, levels: int,
                    blend: Sequence[float] | None = None, settings: GatysSettings = GatysSettings(),
                    progress: bool = True) -> tuple[np.ndarray, list[dict[str, float]]]:
  """Coarse to fine: optimise at 1/2^(levels-1) of the size first, then upsample the result and go on.

  Each level runs `settings.steps` steps; the styles keep their given size at
  every level (their Gram matrices do not depend on the image size), and the
  history gets a `level` entry (0 = coarsest).
  """
  if levels < 1:
    raise CnnreconError(f'--pyramid {levels} must be >= 1 (1 = no pyramid)')
  result, history = None, []
  for level in range(levels):
    scale = 2 ** (levels - 1 - level)
    shape = (max(16, content.shape[0] // scale), max(16, content.shape[1] // scale), content.shape[2])
    content_level = resize_image(content, shape[:2])
    initial = None if result is None else np.asarray(jax.image.resize(jnp.asarray(result), shape, 'bilinear'))
    result, level_history = stylize(network, content_level, styles, blend=blend, settings=settings,
                                    initial=initial, progress=progress)
    history += [{**entry, 'level': level} for entry in level_history]
  return result, history
