"""Trained models from a workdir, ready for inference."""

import dataclasses
import functools
import pathlib
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import compiler
from cnnrecon.config import config_from_dict
from cnnrecon.models.registry import build_model
from cnnrecon.train import checkpoint


@dataclasses.dataclass(frozen=True)
class TrainedModel:
  """A model and its variables restored from a workdir."""

  config: ml_collections.ConfigDict
  variables: dict[str, Any]
  step: int

  @functools.cached_property
  def apply(self):
    """The jitted inference function `images (NHWC) -> estimates` (retraces per shape)."""
    model = build_model(self.config.model, channels=self.config.data.channels)
    # Workdirs written before `compile.cpu_conv` existed get the default.
    cpu_conv = self.config.get('compile', {}).get('cpu_conv', 'eigen')
    return compiler.jit(lambda variables, images: model.apply(variables, images, train=False), cpu_conv=cpu_conv)

  def __call__(self, images: np.ndarray) -> np.ndarray:
    return np.asarray(self.apply(self.variables, jnp.asarray(images, jnp.float32)))


def load_trained(workdir: str | pathlib.Path, *, step: int | str | None = None) -> TrainedModel:
  """Restores the best (else latest) checkpoint of a workdir for inference.

  Args:
    workdir: a directory written by `cnnrecon train` (or a weights import).
    step: 'latest' or a step number instead of the best one.

  Returns:
    The TrainedModel; its config has today's key names (old ones upgraded).
  """
  step, config, variables = checkpoint.load_variables(workdir, step=step)
  return TrainedModel(config=config_from_dict(config), variables=variables, step=step)
