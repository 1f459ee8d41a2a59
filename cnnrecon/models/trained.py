"""A trained model in memory: the flax module a config names, its variables and the step they are from."""

import dataclasses
import functools
from typing import Any, Callable

import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import compiler
from cnnrecon.models.registry import build_model


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """A reconstruction model and its variables (from a workdir or a params export; see `cnnrecon.inference`).

  Attributes:
    config: the run's config (today's key names).
    variables: `{'params', 'batch_stats'}`.
    step: the checkpoint's step.
    operator: the task's forward operator, for models that ask for it.
    to_model_input: one observation -> the model's input (the task's; by
      default the operator's initial estimate).
  """

  config: ml_collections.ConfigDict
  variables: dict[str, Any]
  step: int
  operator: Any = None
  to_model_input: Callable | None = None

  @functools.cached_property
  def apply(self):
    """The jitted inference function `(variables, model inputs (NHWC)) -> estimates` (retraces per shape)."""
    model = build_model(self.config.model, channels=self.config.data.channels, operator=self.operator)
    # Workdirs written before `compile.cpu_conv` existed get the default.
    cpu_conv = self.config.get('compile', {}).get('cpu_conv', 'eigen')
    return compiler.jit(lambda variables, images: model.apply(variables, images, train=False), cpu_conv=cpu_conv)

  @property
  def observation_channels(self) -> int:
    """The channels of the images the model was trained on (its observations', for image observations)."""
    return self.config.data.channels

  def __call__(self, images: np.ndarray) -> np.ndarray:
    """The estimates of a batch of model inputs (e.g. the task's initial estimates), as numpy."""
    return np.asarray(self.apply(self.variables, jnp.asarray(images, jnp.float32)))

  def restore(self, observed: np.ndarray) -> np.ndarray:
    """The estimate of one observation: the model on its model input (e.g. the operator's initial estimate)."""
    to_model_input = self.to_model_input or self.operator.initial_estimate
    return self(np.asarray(to_model_input(jnp.asarray(observed)))[None])[0]
