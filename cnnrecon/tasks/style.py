"""Style transfer as a trainable task: a net learns to render content images in trained styles.

The clean examples of the data pipeline are the content images. Each example
is given one of the task's styles, drawn from its own key (so it is the same
on 1 or N devices and after a resume); the model sees `{'image', 'style'}`
with the style as a one-hot mix over the styles (`models.transform_net`).

The loss is perceptual: a frozen VGG compares the model's output with the
content image (content loss) and the style's Gram matrices (style loss).
Models and losses lie to the right of tasks in the data flow, so the loss
arrives here as a `PerceptualLoss`, built by `cnnrecon.train.perceptual`,
together with the frozen variables it needs (VGG weights, style Grams).

`AdaINTask` (Huang & Belongie 2017) trains a decoder instead: its model input
is AdaIN(f(content), f(style)) for one random style crop per example, so the
net learns to render any style, trained or not.
"""

import dataclasses
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from cnnrecon.tasks.base import Example, Labels, MetricConvention

STYLE_LABELS = Labels(observed='content', estimate='stylized', target='content')


class PerceptualLoss(Protocol):
  """What a style task needs from its loss network (built in `cnnrecon.train.perceptual`)."""

  num_styles: int
  description: str

  def __call__(self, estimate: jax.Array, content: jax.Array, style_mix: jax.Array, frozen: Any) -> jax.Array:
    """The weighted content + style + TV loss of a batch, for the [B, styles] style mix."""

  def init_frozen(self) -> dict:
    """The loss network's variables and the styles' targets (never optimised)."""


@dataclasses.dataclass(frozen=True)
class FastStyleTask:
  """Feed-forward style transfer (Johnson et al. 2016; several styles: Dumoulin et al. 2017)."""

  loss: PerceptualLoss
  labels: Labels = STYLE_LABELS
  classical_sigma: float | None = None
  convention: MetricConvention = MetricConvention()
  is_style_task: bool = True

  def prepare(self, keys: jax.Array, clean: jax.Array, frozen: Any = None) -> Example:
    """Content images -> model input `{'image', 'style'}` with one style per example."""
    del frozen
    styles = jax.vmap(lambda key: jax.random.randint(key, (), 0, self.loss.num_styles))(keys)
    style_mix = jax.nn.one_hot(styles, self.loss.num_styles, dtype=jnp.float32)
    return {'observed': clean, 'model_input': {'image': clean, 'style': style_mix}, 'target': clean,
            'style_mix': style_mix}

  def sample_model_input(self, image_shape: tuple[int, ...]) -> jax.Array:
    """What the transform net is initialised on: a zero image (style 0)."""
    return jnp.zeros(image_shape, jnp.float32)

  def no_model_estimate(self, example: Example) -> jax.Array:
    """The "no model" image of tables and grids: the content itself."""
    return example['observed']

  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """The perceptual loss of the stylized batch."""
    return self.loss(estimate, example['target'], example['style_mix'], frozen)

  def describe(self) -> str:
    """The loss network and styles, for reports."""
    return self.loss.description

  def init_frozen(self) -> dict:
    """VGG variables and style targets."""
    return self.loss.init_frozen()


def fast_style(*, styles, style_size, features, content_weight, style_weight, tv_weight, content_layers,
               style_layers, loss: PerceptualLoss) -> FastStyleTask:
  """The fast-style task. Its options (`config.task.fast_style`) are named here so that an unknown
  one is refused; `cnnrecon.train.perceptual` has already read them into `loss`."""
  del styles, style_size, features, content_weight, style_weight, tv_weight, content_layers, style_layers
  return FastStyleTask(loss=loss)



# ----------------------------------------------------------------------------- AdaIN (arbitrary style)

class AdaINStyleLoss(Protocol):
  """What the AdaIN task needs from its encoder and loss (built in `cnnrecon.train.perceptual`)."""

  num_styles: int
  description: str

  def transfer(self, content: jax.Array, style: jax.Array, frozen: Any) -> tuple[jax.Array, dict]:
    """`(t, style_features)`: AdaIN of the images' encodings, and the style layers' features of `style`."""

  def feature_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape of `t` for a batch of images of `image_shape`."""

  def __call__(self, estimate: jax.Array, target: jax.Array, style_features: dict, frozen: Any) -> jax.Array:
    """content loss ||f(estimate) - t||^2 + style_weight * the mean / std loss against the style features."""

  def init_frozen(self) -> dict:
    """`{'vgg': encoder variables, 'style_images': [styles, side, side, 3]}`."""


def random_style_crops(keys: jax.Array, styles: jax.Array, height: int, width: int) -> jax.Array:
  """One random style image per key, randomly cropped to `height` x `width`, [B, height, width, 3]."""

  def crop(key):
    index_key, top_key, left_key = jax.random.split(key, 3)
    index = jax.random.randint(index_key, (), 0, styles.shape[0])
    top = jax.random.randint(top_key, (), 0, styles.shape[1] - height + 1)
    left = jax.random.randint(left_key, (), 0, styles.shape[2] - width + 1)
    return jax.lax.dynamic_slice(styles[index], (top, left, 0), (height, width, styles.shape[3]))

  return jax.vmap(crop)(keys)


@dataclasses.dataclass(frozen=True)
class AdaINTask:
  """Arbitrary-style transfer by adaptive instance normalisation (Huang & Belongie 2017).

  A fixed VGG encoder f maps the content c and a style s to features; the
  model (`models.adain.AdaINDecoder`) learns to decode t = AdaIN(f(c), f(s))
  to an image g(t). It never sees a style's identity, only its statistics, so
  it renders styles it was not trained on.
  """

  loss: AdaINStyleLoss
  labels: Labels = STYLE_LABELS
  classical_sigma: float | None = None
  convention: MetricConvention = MetricConvention()
  is_style_task: bool = True

  def prepare(self, keys: jax.Array, clean: jax.Array, frozen: Any = None) -> Example:
    """Content images -> model input t = AdaIN(f(content), f(style)), one random style crop per example.

    Style crops are as large as the content (or the whole stored style image, if smaller), drawn
    from each example's own key like the fast task's style index.
    """
    styles = frozen['style_images']
    height, width = min(clean.shape[1], styles.shape[1]), min(clean.shape[2], styles.shape[2])
    style = random_style_crops(keys, styles, height, width)
    features, style_features = self.loss.transfer(clean, style, frozen)
    return {'observed': clean, 'model_input': features, 'target': clean, 'style_features': style_features}

  def sample_model_input(self, image_shape: tuple[int, ...]) -> jax.Array:
    """What the decoder is initialised on: zero features of the shape `t` has for such images."""
    return jnp.zeros(self.loss.feature_shape(image_shape), jnp.float32)

  def no_model_estimate(self, example: Example) -> jax.Array:
    """The "no model" image of tables and grids: the content itself."""
    return example['observed']

  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """Content loss against t plus the weighted mean / std style loss."""
    return self.loss(estimate, example['model_input'], example['style_features'], frozen)

  def describe(self) -> str:
    """The encoder and styles, for reports."""
    return self.loss.description

  def init_frozen(self) -> dict:
    """Encoder variables and the style images."""
    return self.loss.init_frozen()


def adain(*, styles, style_size, features, style_weight, content_layer, style_layers,
          loss: AdaINStyleLoss) -> AdaINTask:
  """The AdaIN task. Its options (`config.task.adain`) are named here so that an unknown one is
  refused; `cnnrecon.train.perceptual` has already read them into `loss`."""
  del styles, style_size, features, style_weight, content_layer, style_layers
  return AdaINTask(loss=loss)
