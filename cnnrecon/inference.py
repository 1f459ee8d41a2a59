"""Trained models from a workdir: restore, denoise, and evaluate with baselines.

Shared by `cnnrecon eval`, `cnnrecon denoise` and the end-of-training report.
"""

import dataclasses
import functools
import pathlib
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import baselines, compiler, evaluate
from cnnrecon.config import config_from_dict
from cnnrecon.errors import CnnreconError
from cnnrecon.models.registry import build_model
from cnnrecon.ops.degrade import make_degradation
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


def load_trained(workdir: str | pathlib.Path, *, step: int | None = None) -> TrainedModel:
  """Restores the best (else latest) checkpoint of a workdir for inference.

  Args:
    workdir: a directory written by `cnnrecon train` (or a weights import).
    step: a specific step instead of the best one.

  Returns:
    The TrainedModel.
  """
  if not checkpoint.checkpoint_dir(workdir).is_dir():
    raise CnnreconError(f'{workdir} holds no checkpoints: train first with '
                        f'`cnnrecon train --config ... --workdir {workdir}`')
  with checkpoint.open_manager(workdir, read_only=True) as manager:
    step = checkpoint.best_or_latest_step(manager) if step is None else step
    config = config_from_dict(checkpoint.restore_config(manager, step))
    state = checkpoint.restore_arrays(manager, step)
  variables = {'params': state['params'], 'batch_stats': state.get('batch_stats') or {}}
  return TrainedModel(config=config, variables=variables, step=step)


def degrade_image(degradation_config: ml_collections.ConfigDict, clean: np.ndarray, *, seed: int,
                  index: int) -> np.ndarray:
  """Degrades one HWC image with the key `fold_in(key(seed), index)` (reproducible per image)."""
  key = jax.random.fold_in(jax.random.key(seed), index)
  observed = make_degradation(degradation_config)(key[None], jnp.asarray(clean[None], jnp.float32))
  return np.asarray(observed[0])


def evaluate_images(model: TrainedModel, images: Sequence[tuple[str, np.ndarray]], *,
                    degradation_config: ml_collections.ConfigDict, seed: int,
                    with_baselines: bool = True) -> tuple[dict, list[tuple[np.ndarray, ...]]]:
  """Degrades, restores and scores every image against the clean one.

  Args:
    model: from `load_trained` (or built around a live train state).
    images: (name, clean HWC float image) pairs.
    degradation_config: how to degrade (e.g. AWGN at config.degradation.sigma).
    seed: noise seed; image i uses `fold_in(key(seed), i)`.
    with_baselines: also run scikit-image's classical denoisers (gaussian noise only).

  Returns:
    `rows` as `evaluate.write_tables` expects ({method: {image: {psnr, ssim}}})
    and (observed, estimate, clean) triplets for image grids.
  """
  run_baselines = with_baselines and degradation_config.name == 'gaussian'
  denoisers = baselines.classical_denoisers() if run_baselines else {}
  rows = {'model': {}, 'noisy': {}, **{name: {} for name in denoisers}}
  triplets = []
  for index, (name, clean) in enumerate(images):
    observed = degrade_image(degradation_config, clean, seed=seed, index=index)
    estimate = np.clip(model(observed[None])[0], 0.0, 1.0)
    rows['model'][name] = evaluate.image_metrics(clean, estimate)
    rows['noisy'][name] = evaluate.image_metrics(clean, observed, clip_estimate=False)
    for method, denoise in denoisers.items():
      rows[method][name] = evaluate.image_metrics(clean, denoise(observed, degradation_config.sigma / 255.0))
    triplets.append((observed, estimate, clean))
  return rows, triplets
