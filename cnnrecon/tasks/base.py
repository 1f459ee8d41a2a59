"""What a task is: how clean examples become model input and target, and how results are named.

A task wraps a forward operator (`cnnrecon.ops`) with everything the generic
train and eval steps and the evaluation layer need to know about it:

- `prepare(keys, clean, frozen)`: observation, model input (the operator's
  initial estimate) and target for a batch, one key per example;
- `sample_model_input(image_shape)`: what the model's params are initialised on
  (a zero image; AdaIN's decoder reads VGG feature maps instead);
- `no_model_estimate(example)`: the image tables and grids show as the "no
  model" estimate (the model input for reconstruction);
- `compute_loss(estimate, example, frozen)`: the training loss. The pixel loss
  is chosen by `config.train.loss` and handed in when the task is built (losses
  lie to the right of tasks in the data flow); `frozen` holds variables the
  optimizer never touches (e.g. a loss network), empty for reconstruction;
- `labels`: names of the observation, the estimate and the target in tables and
  image grids ('noisy' | 'denoised' | 'clean'). The observation's initial
  estimate is the table's "no model" row;
- `classical_sigma`: the Gaussian noise level (0..1 scale) classical denoisers
  may be given as baselines, or None when they do not apply;
- `convention`: how tables score estimates (Y channel or all, border crop).
"""

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnrecon.ops.base import ForwardOperator, observe_batch

Loss = Callable[[jax.Array, jax.Array], jax.Array]
Example = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class Labels:
  """Display names of a task's images."""

  observed: str
  estimate: str
  target: str = 'clean'


@dataclasses.dataclass(frozen=True)
class MetricConvention:
  """How estimates are scored: on which channel, after removing which border.

  Attributes:
    y_channel: score the luma Y (ITU-R BT.601, as MATLAB's rgb2ycbcr) of RGB
      images instead of all channels (the super-resolution convention).
    crop: pixels removed from each side before scoring (SR: the scale factor).
  """

  y_channel: bool = False
  crop: int = 0

  def describe(self) -> str:
    """The convention in words, for every table."""
    channels = 'Y channel (BT.601) of RGB images' if self.y_channel else 'all channels'
    border = f'{self.crop}-pixel border removed' if self.crop else 'full image'
    return f'PSNR (data range 1) and SSIM (11x11 Gaussian window, sigma 1.5) on {channels}, {border}'


@dataclasses.dataclass(frozen=True)
class ReconstructionTask:
  """Recover a clean image from its observation through `operator`.

  Attributes:
    operator: the forward operator that makes observations.
    loss: `loss(estimate, target) -> scalar` (from `config.train.loss`).
    labels: display names ('noisy' | 'denoised' | 'clean').
    classical_sigma: AWGN standard deviation (0..1) for classical-denoiser
      baselines, or None.
    convention: how evaluation scores estimates.
  """

  operator: ForwardOperator
  loss: Loss
  labels: Labels
  classical_sigma: float | None = None
  convention: MetricConvention = MetricConvention()
  is_style_task: bool = False

  def prepare(self, keys: jax.Array, clean: jax.Array, frozen: Any = None) -> Example:
    """Observes a batch of clean images.

    Args:
      keys: one typed PRNG key per example [B].
      clean: images [B, H, W, C] in [0, 1].
      frozen: the state's frozen variables (unused by reconstruction tasks).

    Returns:
      `{'observed', 'model_input', 'target'}`; `model_input` is the
      operator's initial estimate of every observation.
    """
    del frozen
    observed = observe_batch(self.operator, keys, clean)
    return {'observed': observed, 'model_input': jax.vmap(self.operator.initial_estimate)(observed),
            'target': clean}

  def sample_model_input(self, image_shape: tuple[int, ...]) -> jax.Array:
    """What the model is initialised on: a zero image of `image_shape` (NHWC)."""
    return jnp.zeros(image_shape, jnp.float32)

  def no_model_estimate(self, example: Example) -> jax.Array:
    """The "no model" estimate: the model input (the operator's initial estimate)."""
    return example['model_input']

  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """The training loss of the model's estimate (`frozen` is unused here)."""
    del frozen
    return self.loss(estimate, example['target'])

  def describe(self) -> str:
    """The operator's description, for tables and reports."""
    return self.operator.describe()

  def init_frozen(self) -> dict:
    """Variables the optimizer must not touch (none for reconstruction)."""
    return {}
