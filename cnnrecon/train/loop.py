"""`train`: the whole training run for one config and workdir (evaluation comes after, in
`cnnrecon.evaluation.train_and_evaluate`)."""

import contextlib
import functools
import pathlib
import time

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np
import tqdm

from cnnrecon import config as config_lib
from cnnrecon import compiler
from cnnrecon.data.pipeline import train_iterator, validation_batch
from cnnrecon.data.sources import load_source
from cnnrecon.errors import CnnreconError
from cnnrecon.io import write_file_atomic
from cnnrecon.losses import get_loss
from cnnrecon.models.registry import build_model
from cnnrecon.tasks import ReconstructionTask, build_task
from cnnrecon.train import checkpoint, parallel
from cnnrecon.train.metric_writer import MetricWriter, truncate_after
from cnnrecon.train.state import create_train_state, make_optimizer
from cnnrecon.train.step import eval_step, train_step

GRID_TAG = 'eval/observed_estimate_target'


def make_task(config: ml_collections.ConfigDict) -> ReconstructionTask:
  """The task `config.task` names, with the pixel loss `config.train.loss`."""
  return build_task(config.task, loss=get_loss(config.train.loss))


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Checks every user-settable value before any work starts (one-line errors)."""
  if config.data.channels not in (1, 3):
    raise CnnreconError(f'data.channels={config.data.channels} must be 1 (gray) or 3 (RGB)')
  for key in ('patch_size', 'batch_size', 'eval_crop'):
    if config.data[key] < 1:
      raise CnnreconError(f'data.{key}={config.data[key]} must be a positive integer')
  if config.train.steps < 1 or config.train.log_every < 1 or config.train.eval_every < 1:
    raise CnnreconError('train.steps, train.log_every and train.eval_every must be positive integers')
  make_task(config)
  compiler.check_cpu_conv(config.compile.cpu_conv)
  make_optimizer(config.optim, config.train.steps)
  parallel.STRATEGIES.get(config.parallel)
  build_model(config.model, channels=config.data.channels, image_size=config.data.patch_size)


def _check_resumable(workdir: pathlib.Path, config: ml_collections.ConfigDict, manager, *, force: bool):
  """Refuses to resume a workdir whose saved config differs, unless forced."""
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


def _load_sources(config: ml_collections.ConfigDict):
  """Opens the train and eval sources; process 0 prepares them before the others read."""
  data_dir = config.data.data_dir or None
  if jax.process_count() > 1:
    if jax.process_index() == 0:
      load_source(config.data.train, data_dir=data_dir)
      load_source(config.data.eval, data_dir=data_dir)
    multihost_utils.sync_global_devices('cnnrecon: data sources prepared')
  return load_source(config.data.train, data_dir=data_dir), load_source(config.data.eval, data_dir=data_dir)


def initialize_from(host_state, workdir: str):
  """Replaces a fresh state's params and BatchNorm statistics with those of another workdir.

  The optimizer state and step stay fresh: this starts fine-tuning, e.g. from
  published weights imported with `cnnrecon weights import`.
  """
  _, _, variables = checkpoint.load_variables(workdir)
  wanted = jax.tree_util.tree_flatten_with_path({'params': host_state.params, 'batch_stats': host_state.batch_stats})[0]
  found = dict(jax.tree_util.tree_flatten_with_path(variables)[0])
  for path, leaf in wanted:
    name = jax.tree_util.keystr(path)
    have = found.get(path)
    if have is None or np.shape(have) != np.shape(leaf):
      raise CnnreconError(f'train.init_from={workdir} does not fit this model: {name} is '
                          f'{"missing" if have is None else np.shape(have)} there, {np.shape(leaf)} here; '
                          'use the same model.* settings as that workdir')
  if len(found) != len(wanted):
    raise CnnreconError(f'train.init_from={workdir} has {len(found)} arrays but this model has {len(wanted)}: '
                        'use the same model.* settings as that workdir')
  return host_state.replace(params=jax.tree.map(np.asarray, variables['params']),
                            batch_stats=jax.tree.map(np.asarray, variables['batch_stats']))


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
          force: bool = False, stop_at: int | None = None, progress: bool = True) -> dict:
  """Trains (or resumes) the model of `config` in `workdir`.

  Args:
    config: the resolved experiment config (old key names are upgraded).
    workdir: where checkpoints and logs go; an existing run resumes.
    force: resume even when the saved config differs.
    stop_at: stop (with a checkpoint) after this step, e.g. to split a long run
      over several job allocations; the next call resumes.
    progress: show a progress bar.

  Returns:
    A summary dict: `step` (the last one), `start_step` (where this call
    began), the last train/eval metrics, `wall_time_s`, and `host_state` (the
    final state on the host).
  """
  config = config_lib.upgrade_config(config)
  validate_config(config)
  task = make_task(config)
  model = build_model(config.model, channels=config.data.channels, bn_axis_name=parallel.AXIS)
  workdir = pathlib.Path(workdir)
  data_parallel = parallel.DataParallel(config.parallel)
  local_batch = parallel.per_process_batch_size(config.data.batch_size)
  train_source, eval_source = _load_sources(config)
  workdir.mkdir(parents=True, exist_ok=True)

  optimizer = make_optimizer(config.optim, config.train.steps)
  sample_shape = (1, config.data.patch_size, config.data.patch_size, config.data.channels)
  host_state = create_train_state(model, optimizer, seed=config.seed, sample_shape=sample_shape,
                                  frozen=task.init_frozen())
  batches = train_iterator(train_source, seed=config.seed, patch_size=config.data.patch_size,
                           channels=config.data.channels, batch_size=local_batch,
                           augment=config.data.augment, num_threads=config.data.num_threads,
                           cache=config.data.cache)
  with checkpoint.open_manager(workdir, keep=config.train.keep_checkpoints) as manager:
    start = _check_resumable(workdir, config, manager, force=force)
    if start is not None:
      host_state = checkpoint.restore_state(manager, start, target=jax.device_get(host_state),
                                            data_iterator=batches)
      truncate_after(workdir / 'metrics.jsonl', start)
    elif config.train.init_from:
      host_state = initialize_from(jax.device_get(host_state), config.train.init_from)
    if jax.process_index() == 0:
      write_file_atomic(workdir / 'config.json', config_lib.config_to_json(config))
    run = _TrainingRun(config, task, workdir, data_parallel, manager, batches, progress=progress)
    summary = run.train(data_parallel.put_state(host_state), start or 0, stop_at or config.train.steps,
                        eval_batch=validation_batch(eval_source, seed=config.seed, crop=config.data.eval_crop,
                                                    channels=config.data.channels))
    manager.wait_until_finished()
  summary['start_step'] = start or 0
  return summary


class _TrainingRun:
  """The training loop's moving parts, so each phase stays a small method."""

  def __init__(self, config, task, workdir, data_parallel, manager, batches, *, progress):
    self.config, self.workdir, self.manager, self.batches = config, workdir, manager, batches
    self.data_parallel = data_parallel
    self.progress = progress and jax.process_index() == 0
    cpu_conv = config.compile.cpu_conv
    self.train_step = data_parallel.compile_train_step(train_step, cpu_conv=cpu_conv, task=task)
    self.eval_step = compiler.jit(functools.partial(eval_step, axis_name=None, task=task), cpu_conv=cpu_conv)
    self.writer = MetricWriter(workdir)

  def validate(self, step, state, eval_batch) -> dict[str, float]:
    """Scores the validation crops; logs their model input | estimate | target grid to TensorBoard."""
    metrics, images = jax.device_get(self.eval_step(self.data_parallel.single_copy(state), eval_batch))
    if self.writer.enabled:
      shown = slice(0, self.config.report.grid_examples)
      columns = [images['model_input'][shown], images['estimate'][shown], np.asarray(eval_batch['target'])[shown]]
      self.writer.write_image_columns(step, GRID_TAG, columns)
    return {f'eval/{name}': float(value) for name, value in metrics.items()}

  def save(self, step, state, eval_psnr=None):
    checkpoint.save(self.manager, step, state=self.data_parallel.for_checkpoint(state),
                    config=self.config.to_dict(), data_iterator=self.batches, eval_psnr=eval_psnr)

  def train(self, state, start: int, stop: int, *, eval_batch) -> dict:
    config = self.config.train
    eval_batch = self.data_parallel.put_for_jit(eval_batch)
    last = {'step': start}
    started = time.perf_counter()
    window_start, window_steps = started, 0
    bar = tqdm.tqdm(total=stop, initial=start, disable=not self.progress, unit='step', dynamic_ncols=True)
    with contextlib.closing(self.writer), bar:
      batch = self.data_parallel.put_batch(next(self.batches)) if start < stop else None
      for step in range(start + 1, stop + 1):
        state, metrics = self.train_step(state, batch)
        window_steps += 1
        if step % config.log_every == 0 or step == stop:
          scalars = {f'train/{k}': v for k, v in self.data_parallel.get_metrics(metrics).items()}
          elapsed = time.perf_counter() - window_start
          scalars['train/images_per_s'] = window_steps * self.config.data.batch_size / max(elapsed, 1e-9)
          self.writer.write_scalars(step, scalars)
          bar.set_postfix(loss=f"{scalars['train/loss']:.2e}", psnr=f"{scalars['train/psnr']:.2f}",
                          img_s=f"{scalars['train/images_per_s']:.0f}")
          last.update(scalars)
          window_start, window_steps = time.perf_counter(), 0
        eval_psnr = None
        if step % config.eval_every == 0 or step == config.steps:
          scalars = self.validate(step, state, eval_batch)
          self.writer.write_scalars(step, scalars)
          last.update(scalars)
          eval_psnr = scalars['eval/psnr']
          window_start = time.perf_counter()
        if eval_psnr is not None or step == stop:
          self.save(step, state, eval_psnr)
        bar.update(1)
        last['step'] = step
        if step < stop:
          batch = self.data_parallel.put_batch(next(self.batches))
    last['wall_time_s'] = time.perf_counter() - started
    last['host_state'] = self.data_parallel.host_state(state)
    return last
