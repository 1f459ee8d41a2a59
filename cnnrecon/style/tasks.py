"""Style transfer as trainable tasks, registered like any other: `fast_style` and `adain`.

The clean examples of the data pipeline are the content images.

`FastStyleTask` (Johnson et al. 2016; several styles: Dumoulin et al. 2017):
each example is given one of the task's styles, drawn from its own key (so it
is the same on 1 or N devices and after a resume); the model sees
`{'image', 'style'}` with the style as a one-hot mix over the styles
(`models.transform_net`). The loss is Gatys' (`perceptual.GramPerceptualLoss`):
a frozen VGG compares the output with the content (content loss) and the
style's Gram matrices (style loss), plus total variation.

`AdaINTask` (Huang & Belongie 2017) trains a decoder instead: its model input
is AdaIN(f(content), f(style)) for one random style crop per example, so the
net learns to render any style, trained or not.

A style net has no clean target to compute a PSNR against: its best
checkpoint has the lowest validation loss, and its evaluation reports the
loss's terms per style (`style.evaluation`).
"""

import dataclasses
from typing import Any, Callable, ClassVar, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import metrics as metrics_lib
from cnnrecon.errors import CnnreconError
from cnnrecon.inference import task_name
from cnnrecon.registry import call_with_options
from cnnrecon.style import adain_loss, evaluation, exported, perceptual
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.fast import SIDE_MULTIPLE, FastNet
from cnnrecon.tasks import (BestCheckpoint, EvaluationRequest, Labels, Results, Signature, Task, register_task,
                            task_options)
from cnnrecon.tasks.base import Example, Image

STYLE_LABELS = Labels(observed='content', estimate='stylized', target='content')
LOWEST_LOSS = BestCheckpoint(metric='loss', higher_is_better=False)


def _check_rgb_model(config: ml_collections.ConfigDict, model: str) -> None:
  if config.model.name != model or config.data.channels != 3:
    raise CnnreconError(f'task {config.task.name} trains an RGB {model}: set --config.model.name={model} and '
                        f'--config.data.channels=3 (now {config.model.name}, {config.data.channels} channel(s))')


def _refuse_restore(model: Any) -> Callable[[np.ndarray], np.ndarray]:
  """`cnnrecon denoise` / `restore` of a style net, from a workdir or an export: one line naming `stylize`."""
  task = task_name(model)
  method = 'fast' if task == 'fast_style' else task
  # A params export loads as the same net as its workdir, so the line names both ways of giving it.
  raise CnnreconError(f'this is a style net ({task}), which stylizes rather than restores: use `cnnrecon stylize '
                      f'CONTENT --method {method} --workdir RUN --out OUT` for a style workdir, or --exported DIR '
                      'instead of --workdir for its export')


class _StyleTask(Task):
  """What both style tasks share: labels, best checkpoint, evaluation, the content as the "no model" image.

  A style task names its trained net (`net_class`), its training report (`report`) and its export
  function (`signature`).
  """

  labels = STYLE_LABELS
  best_checkpoint = LOWEST_LOSS
  net_class: ClassVar[type]
  report: ClassVar[Callable[[Any, Sequence[Image]], Results]]
  signature: ClassVar[Callable[[Any], Signature]]

  @classmethod
  def inference_model(cls, config: ml_collections.ConfigDict, variables: dict, step: int) -> Any:
    """The trained net (`FastNet`, `AdaINNet`), which stylizes with its own encoder or loss network."""
    return cls.net_class(config=config, variables=variables, step=step)

  @classmethod
  def evaluate(cls, model: Any, images: Sequence[Image], request: EvaluationRequest) -> Results:
    """The training loss's terms per image and style (`style.evaluation`)."""
    return evaluation.evaluate_style_net(model, images, request)

  @classmethod
  def final_report(cls, model: Any, images: Sequence[Image]) -> Results:
    """Stylizations of the validation crops, with the loss's terms per style."""
    return cls.report(model, images)

  @classmethod
  def export_signature(cls, model: Any) -> Signature:
    """The net's inference function (`style.exported`)."""
    return cls.signature(model)

  @classmethod
  def restorer(cls, model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Style nets stylize: `cnnrecon restore` refuses them and names `cnnrecon stylize`."""
    return _refuse_restore(model)

  def no_model_estimate(self, example: Example) -> jax.Array:
    """The "no model" image of tables and grids: the content itself."""
    return example['observed']

  def eval_metrics(self, estimate: jax.Array, example: Example) -> dict[str, jax.Array]:
    """PSNR against the content: how close the stylization stays to it (no ground truth here)."""
    return {'psnr': jnp.mean(metrics_lib.psnr(jnp.clip(estimate, 0.0, 1.0), example['target']))}

  def describe(self) -> str:
    """The loss network and styles, for reports."""
    return self.loss.description

  def init_frozen(self) -> dict:
    """The loss network's variables and the styles' targets."""
    return self.loss.init_frozen()


def _fast_style_options(*, styles, style_size, features, content_weight, style_weight, tv_weight, content_layers,
                        style_layers) -> None:
  """The options of `config.task.fast_style`, named so that an unknown one is refused."""
  del styles, style_size, features, content_weight, style_weight, tv_weight, content_layers, style_layers


@register_task('fast_style')
@dataclasses.dataclass(frozen=True)
class FastStyleTask(_StyleTask):
  """Feed-forward style transfer in the task's trained styles (see the module docstring)."""

  loss: perceptual.GramPerceptualLoss
  net_class = FastNet
  report = evaluation.fast_style_report
  signature = exported.fast_style_signature

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """Options, styles, the transform net and its side multiple; no weights or images are read."""
    call_with_options(_fast_style_options, task_options(config), section='task.fast_style')
    perceptual.check_fast_style_options(config.task.fast_style)
    styles = len(config.task.fast_style.styles)
    _check_rgb_model(config, 'transform_net')
    if config.model.transform_net.styles != styles:
      raise CnnreconError(f'model.transform_net.styles={config.model.transform_net.styles} but task.fast_style has '
                          f'{styles} style(s): set --config.model.transform_net.styles={styles}')
    if config.data.patch_size % SIDE_MULTIPLE:
      raise CnnreconError(f'data.patch_size={config.data.patch_size}: the transform net needs a multiple of '
                          f'{SIDE_MULTIPLE} (two stride-2 convs, then two x2 upsamplings)')

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'FastStyleTask':
    """Reads the VGG weights and style images into the perceptual loss."""
    call_with_options(_fast_style_options, task_options(config), section='task.fast_style')
    return cls(loss=perceptual.fast_style_loss(config.task.fast_style, seed=config.seed))

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

  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """The perceptual loss of the stylized batch."""
    return self.loss(estimate, example['target'], example['style_mix'], frozen)


def random_style_crops(keys: jax.Array, styles: jax.Array, height: int, width: int) -> jax.Array:
  """One random style image per key, randomly cropped to `height` x `width`, [B, height, width, 3]."""

  def crop(key):
    index_key, top_key, left_key = jax.random.split(key, 3)
    index = jax.random.randint(index_key, (), 0, styles.shape[0])
    top = jax.random.randint(top_key, (), 0, styles.shape[1] - height + 1)
    left = jax.random.randint(left_key, (), 0, styles.shape[2] - width + 1)
    return jax.lax.dynamic_slice(styles[index], (top, left, 0), (height, width, styles.shape[3]))

  return jax.vmap(crop)(keys)


def _adain_options(*, styles, style_size, features, style_weight, content_layer, style_layers) -> None:
  """The options of `config.task.adain`, named so that an unknown one is refused."""
  del styles, style_size, features, style_weight, content_layer, style_layers


@register_task('adain')
@dataclasses.dataclass(frozen=True)
class AdaINTask(_StyleTask):
  """Arbitrary-style transfer by adaptive instance normalisation (Huang & Belongie 2017).

  A fixed VGG encoder f maps the content c and a style s to features; the
  model (`models.adain.AdaINDecoder`) learns to decode t = AdaIN(f(c), f(s))
  to an image g(t). It never sees a style's identity, only its statistics, so
  it renders styles it was not trained on.
  """

  loss: adain_loss.AdaINLoss
  net_class = AdaINNet
  report = evaluation.adain_report
  signature = exported.adain_signature

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """Options, styles, layers, the decoder and its side multiple; no weights are read."""
    call_with_options(_adain_options, task_options(config), section='task.adain')
    adain_loss.check_adain_options(config.task.adain)
    _check_rgb_model(config, 'adain_decoder')
    for key in ('patch_size', 'eval_crop'):
      if config.data[key] % 8:
        raise CnnreconError(f'data.{key}={config.data[key]}: the AdaIN decoder needs a multiple of 8 (it inverts '
                            f'three VGG poolings): set --config.data.{key}={config.data[key] // 8 * 8 or 8}')

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'AdaINTask':
    """Reads the VGG encoder and the training style images into the loss."""
    call_with_options(_adain_options, task_options(config), section='task.adain')
    return cls(loss=adain_loss.adain_loss(config.task.adain, seed=config.seed))

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

  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """Content loss against t plus the weighted mean / std style loss."""
    return self.loss(estimate, example['model_input'], example['style_features'], frozen)
