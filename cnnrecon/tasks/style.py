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

