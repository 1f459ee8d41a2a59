"""Scores estimates against clean images: per-image PSNR/SSIM and per-method rows.

Metrics are the library's own (`cnnrecon.metrics`, dm-pix), applied with the
task's `MetricConvention` (all channels or the Y channel, border crop);
tests cross-check them with `skimage.metrics`. Protocol: estimates (model
and baselines) are clipped to [0, 1] before scoring, as a saved image would
be; the observed row is NOT clipped, so it measures the actual degradation
fed to the model (clipping noise would make the noisy PSNR look better than
the input really is).

Results are plain dicts `rows[method][image] = {"psnr": float, "ssim": float}`
in display order: the initial-estimate row first (the model's input, named
by the task's `labels.no_model`), then the task's baselines, 'model' last.
"""

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon import metrics
from cnnrecon.tasks.base import MetricConvention

MODEL = 'model'

Rows = dict[str, dict[str, dict[str, float]]]


@functools.partial(jax.jit, static_argnames=('convention',))
def _psnr_ssim(clean: jax.Array, estimate: jax.Array, convention: MetricConvention) -> tuple[jax.Array, jax.Array]:
  if convention.y_channel:
    clean, estimate = metrics.rgb_to_y(clean), metrics.rgb_to_y(estimate)
  clean, estimate = metrics.crop_border(clean, convention.crop), metrics.crop_border(estimate, convention.crop)
  return metrics.psnr(clean, estimate), metrics.ssim(clean, estimate)


def image_metrics(clean: np.ndarray, estimate: np.ndarray, *, clip_estimate: bool = True,
                  convention: MetricConvention = MetricConvention()) -> dict[str, float]:
  """PSNR and SSIM of one HxWxC image against its clean reference.

  Args:
    clean: reference image HxWxC in [0, 1].
    estimate: image to score, same shape.
    clip_estimate: clip `estimate` to [0, 1] first; pass False for the
      observed row (see module docstring).
    convention: channel and border convention.

  Returns:
    {"psnr": dB, "ssim": in [-1, 1]}; PSNR is inf for an exact match.
  """
  estimate = np.asarray(estimate, np.float32)
  if clip_estimate:
    estimate = np.clip(estimate, 0.0, 1.0)
    if convention.quantize:
      estimate = np.round(estimate * 255.0) / np.float32(255.0)
  psnr, ssim = _psnr_ssim(jnp.asarray(clean, jnp.float32), jnp.asarray(estimate), convention)
  return {'psnr': float(psnr), 'ssim': float(ssim)}


def prepare_image(task, clean: np.ndarray, *, seed: int, index: int, prepare=None) -> dict[str, np.ndarray]:
  """Observes one HWC image with the key `fold_in(key(seed), index)` (reproducible per image).

  Args:
    prepare: `task.prepare` or a jitted copy of it to reuse across images (`score_images` passes one).

  Returns:
    `{'observed', 'initial_estimate', 'model_input', 'target'}` for this image (see `ReconstructionTask.prepare`).
  """
  key = jax.random.fold_in(jax.random.key(seed), index)
  example = (prepare or task.prepare)(key[None], jnp.asarray(clean[None], jnp.float32))
  return {name: np.asarray(value[0]) for name, value in example.items()}


def score_images(model: Callable[[np.ndarray], np.ndarray], images: Sequence[tuple[str, np.ndarray]], *, task,
                 seed: int, with_baselines: bool = True) -> tuple[Rows, list[tuple[np.ndarray, ...]]]:
  """Observes, reconstructs and scores every image against its target (the clean image, as the task sees it).

  Args:
    model: maps a batch of model inputs to estimates (a `TrainedModel`).
    images: (name, clean HWC float image) pairs; the task's `evaluation_image`
      (e.g. a crop to a multiple of the SR scale) is applied first.
    task: a `ReconstructionTask`: how images are observed, labelled and scored.
    seed: observation seed; image i uses `fold_in(key(seed), i)`.
    with_baselines: also run the task's classical baselines.

  Returns:
    `rows` ({method: {image: {psnr, ssim}}}, the initial-estimate row labelled
    `task.labels.no_model`) and (initial estimate, estimate, target) triplets for
    image grids (all the target's shape).
  """
  baselines = task.baselines if with_baselines else {}
  no_model = task.labels.no_model
  rows = {no_model: {}, **{name: {} for name in baselines}, MODEL: {}}
  score = functools.partial(image_metrics, convention=task.convention)
  triplets = []
  # One program per image size instead of op-by-op dispatch (an iterative fill or a Radon transform
  # costs seconds per image eagerly).
  prepare = jax.jit(task.prepare)
  for index, (name, image) in enumerate(images):
    example = prepare_image(task, task.evaluation_image(image), seed=seed, index=index, prepare=prepare)
    clean = example['target']  # what the task scores against (e.g. the luma of an RGB image)
    initial_estimate = example['initial_estimate']
    estimate = np.clip(model(example['model_input'][None])[0], 0.0, 1.0)
    rows[no_model][name] = score(clean, task.scored_initial_estimate(initial_estimate), clip_estimate=False)
    for method, baseline in baselines.items():
      rows[method][name] = score(clean, baseline(example))
    rows[MODEL][name] = score(clean, estimate)
    triplets.append((initial_estimate, estimate, clean))
  return rows, triplets


def summarize(rows: Rows) -> dict[str, dict[str, float]]:
  """Mean PSNR and SSIM over images, per method (in the rows' order)."""
  return {method: {key: float(np.mean([m[key] for m in per_image.values()])) for key in ('psnr', 'ssim')}
          for method, per_image in rows.items()}


def mean_over_seeds(rows_per_seed: Sequence[Rows]) -> Rows:
  """Per-image metrics averaged over observation seeds (same structure as one seed's rows)."""
  first = rows_per_seed[0]
  return {method: {image: {key: float(np.mean([rows[method][image][key] for rows in rows_per_seed]))
                           for key in first[method][image]}
                   for image in first[method]}
          for method in first}


def summarize_seeds(rows_per_seed: Sequence[Rows]) -> dict[str, dict[str, float]]:
  """Mean and spread over observation seeds of the per-seed image averages.

  Returns:
    `{method: {"psnr_mean", "psnr_std", "ssim_mean", "ssim_std"}}`; std is the
    sample standard deviation (ddof=1) across seeds, 0.0 for a single seed.
  """
  if not rows_per_seed:
    raise ValueError('summarize_seeds needs the rows of at least one seed')
  summaries = [summarize(rows) for rows in rows_per_seed]
  out = {}
  for method in summaries[0]:
    out[method] = {}
    for key in ('psnr', 'ssim'):
      values = np.array([s[method][key] for s in summaries])
      out[method][f'{key}_mean'] = float(values.mean())
      out[method][f'{key}_std'] = float(values.std(ddof=1) if len(values) > 1 else 0)
  return out
