"""Checks that run before any training work: config values, sizes against the data and memory, resumability."""

import math
import os
import pathlib
import shutil
from typing import Sequence

import jax
import ml_collections
import numpy as np

from cnnrecon import compiler
from cnnrecon import config as config_lib
from cnnrecon.data.images import GRAY_CONVERSIONS
from cnnrecon.errors import CnnreconError
from cnnrecon.metrics import SSIM_WINDOW
from cnnrecon.models.registry import build_model
from cnnrecon.tasks import task_class
from cnnrecon.train import checkpoint, parallel
from cnnrecon.train.batches import SAMPLERS
from cnnrecon.train.state import make_optimizer

ON_NONFINITE = ('stop', 'skip_step')
# Images read to find the largest one (a bound, so a huge TFDS source is not decoded twice).
_SIZE_SCAN_LIMIT = 5000
# Bytes of activations kept per pixel, per feature and per layer in a train step (output, BatchNorm
# and ReLU results kept for the backward pass, plus its gradients): a deliberately low estimate,
# so that only configs that cannot fit are refused.
_BYTES_PER_ACTIVATION = 2 * 4


def _positive_int(value, key: str) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise CnnreconError(f'{key}={value!r} must be a positive integer')


def validate_config(config: ml_collections.ConfigDict, *, stop_at: int | None = None) -> None:
  """Checks every user-settable value before any work starts (one-line errors)."""
  if config.data.channels not in (1, 3):
    raise CnnreconError(f'data.channels={config.data.channels} must be 1 (gray) or 3 (RGB)')
  if config.data.gray not in GRAY_CONVERSIONS:
    raise CnnreconError(f'data.gray={config.data.gray!r}: use {" or ".join(GRAY_CONVERSIONS)}')
  for key in ('patch_size', 'batch_size', 'eval_crop'):
    _positive_int(config.data[key], f'data.{key}')
  if config.data.sampler not in SAMPLERS:
    raise CnnreconError(f'data.sampler={config.data.sampler!r}: use {", ".join(SAMPLERS)} '
                        '(e.g. --config.data.sampler=host)')
  workers = config.data.workers
  if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
    raise CnnreconError(f'data.workers={workers!r} must be 0 (no worker processes) or more: set e.g. '
                        '--config.data.workers=2')
  crop = config.report.get('crop', 0)
  if isinstance(crop, bool) or not isinstance(crop, int) or (crop != 0 and crop < SSIM_WINDOW):
    raise CnnreconError(f'report.crop={crop!r} must be 0 (whole images) or at least {SSIM_WINDOW} px (SSIM\'s '
                        'window): set e.g. --config.report.crop=64')
  memory = config.data.device_memory_mb
  if isinstance(memory, bool) or not isinstance(memory, (int, float)) or not memory > 0:
    raise CnnreconError(f'data.device_memory_mb={memory!r} must be a positive number of MiB: set e.g. '
                        '--config.data.device_memory_mb=2048')
  for key in ('steps', 'log_every', 'eval_every', 'checkpoint_every', 'keep_checkpoints'):
    _positive_int(config.train[key], f'train.{key}')
  if not config.train.checkpoint_every_minutes > 0:
    raise CnnreconError(f'train.checkpoint_every_minutes={config.train.checkpoint_every_minutes} must be > 0')
  if config.train.on_nonfinite not in ON_NONFINITE:
    raise CnnreconError(f'unknown train.on_nonfinite={config.train.on_nonfinite!r}: use stop or skip_step')
  if isinstance(config.seed, bool) or not isinstance(config.seed, int) or not 0 <= config.seed < 2**32:
    raise CnnreconError(f'seed={config.seed!r} must be an integer in [0, 2**32): set e.g. --config.seed=0')
  if stop_at is not None and not 1 <= stop_at <= config.train.steps:
    raise CnnreconError(f'--stop-at {stop_at} is outside the run (train.steps={config.train.steps}): '
                        f'pass a step from 1 to {config.train.steps}')
  task_class(config).check_config(config)
  if config.train.loss == 'ssim' and config.data.patch_size < SSIM_WINDOW:
    raise CnnreconError(f'train.loss=ssim needs patches of at least {SSIM_WINDOW}x{SSIM_WINDOW} (its window); '
                        f'data.patch_size is {config.data.patch_size}: raise it or use --config.train.loss=mse')
  compiler.check_cpu_conv(config.compile.cpu_conv)
  make_optimizer(config.optim, config.train.steps)
  parallel.STRATEGIES.get(config.parallel)
  build_model(config.model, channels=config.data.channels, image_size=config.data.patch_size)


def largest_image_side(source: Sequence) -> int:
  """The longest side among (up to `_SIZE_SCAN_LIMIT` of) a source's images."""
  return max(max(np.shape(source[i]['image'])[:2]) for i in range(min(len(source), _SIZE_SCAN_LIMIT)))


def _available_memory_bytes() -> int:
  """Memory one device can use: the accelerator's limit, or the host's physical memory."""
  stats = jax.local_devices()[0].memory_stats() if jax.default_backend() != 'cpu' else None
  if stats and stats.get('bytes_limit'):
    return int(stats['bytes_limit'])
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def _check_whole_images(config: ml_collections.ConfigDict, source: Sequence) -> None:
  """A task that trains on whole images needs every training image to be data.patch_size square."""
  for i in range(min(len(source), _SIZE_SCAN_LIMIT)):
    shape = np.shape(source[i]['image'])[:2]
    if shape != (config.data.patch_size,) * 2:
      raise CnnreconError(f'task {config.task.name} trains on whole images, but image {i} of {config.data.train} '
                          f'is {shape[0]}x{shape[1]} px: use images of one size and set --config.data.patch_size '
                          'to their side')


def check_sizes(config: ml_collections.ConfigDict, train_source: Sequence, eval_source: Sequence) -> None:
  """Refuses patches or crops larger than every image, and steps whose activations cannot fit in memory."""
  if task_class(config).trains_on == 'images':
    _check_whole_images(config, train_source)
  for key, source, spec in (('patch_size', train_source, config.data.train),
                            ('eval_crop', eval_source, config.data.eval)):
    largest = largest_image_side(source)
    if config.data[key] > largest:
      raise CnnreconError(f'data.{key}={config.data[key]} is larger than every image of {spec} (the largest '
                          f'side is {largest} px): set --config.data.{key} to {largest} or less')
  per_device_batch = math.ceil(config.data.batch_size / jax.device_count())
  activations = (per_device_batch * config.data.patch_size**2 * config.model.features * config.model.depth
                 * _BYTES_PER_ACTIVATION)
  available = _available_memory_bytes()
  if activations > available:
    raise CnnreconError(
        f'a train step would need at least {activations / 2**30:.1f} GiB of activations (batch '
        f'{per_device_batch} per device x {config.data.patch_size}^2 px x {config.model.features} features x '
        f'{config.model.depth} layers) but a device has {available / 2**30:.1f} GiB: lower data.batch_size '
        'or data.patch_size')


def discard_checkpoints_after(workdir: pathlib.Path, step: int) -> list[int]:
  """Moves checkpoints newer than `step` to `<workdir>/discarded_checkpoints/` (kept, not deleted)."""
  directory = checkpoint.checkpoint_dir(workdir)
  steps = sorted(int(path.name) for path in directory.iterdir() if path.name.isdigit()) if directory.is_dir() else []
  if step not in steps:
    raise CnnreconError(f'--from-step {step}: no checkpoint at that step in {directory} '
                        f'(steps on disk: {", ".join(map(str, steps)) or "none"})')
  newer = [s for s in steps if s > step]
  for newer_step in newer:
    target = workdir / 'discarded_checkpoints' / str(newer_step)
    if target.exists():
      target = target.with_name(f'{newer_step}-{len(list(target.parent.iterdir()))}')
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(directory / str(newer_step)), str(target))
  return newer


def check_resumable(workdir: pathlib.Path, config: ml_collections.ConfigDict, manager, *,
                    force: bool) -> int | None:
  """The step to resume from (None for a fresh run); refuses a differing config unless forced."""
  step = checkpoint.latest_step(manager)
  if step is None:
    return None
  if not checkpoint.has_training_state(manager, step):
    raise CnnreconError(f'{workdir} holds imported weights, not a training run: to fine-tune them, train in '
                        f'a new --workdir with --config.train.init_from={workdir}')
  differing = config_lib.differing_keys(checkpoint.restore_config(manager, step), config.to_dict())
  if differing and not force:
    raise CnnreconError(f'{workdir} was trained with a different config (differs in: {", ".join(differing)}): '
                        'use the same config to resume, a new --workdir, or --force to resume anyway')
  return step
