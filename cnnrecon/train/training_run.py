"""The step loop of one training segment: log, validate, checkpoint, guard against non-finite values and signals."""

import contextlib
import functools
import math
import time

import jax
from jax.experimental import multihost_utils
import numpy as np
import tqdm

from cnnrecon import compiler
from cnnrecon.errors import TrainingDiverged
from cnnrecon.safety import explain_disk_full
from cnnrecon.train import checkpoint
from cnnrecon.train.metric_writer import MetricWriter
from cnnrecon.train.step import eval_step, train_step

GRID_TAG = 'eval/observed_estimate_target'
MAX_SKIPPED_IN_A_ROW = 10


def _agreed(flag: bool) -> bool:
  """True when any process says so (every process must call this at the same step)."""
  if jax.process_count() == 1:
    return flag
  return bool(np.any(multihost_utils.process_allgather(np.asarray(flag))))


class TrainingRun:
  """The training loop's moving parts, so each phase stays a small method."""

  def __init__(self, config, task, workdir, data_parallel, manager, batches, *, progress, skip_nonfinite=False,
               after_first_save=None):
    self.config, self.workdir, self.manager, self.batches = config, workdir, manager, batches
    # Called once this segment's first checkpoint is on disk (e.g. to record the config it was saved with).
    self.after_first_save = after_first_save
    self.data_parallel = data_parallel
    self.progress = progress and jax.process_index() == 0
    self.skip_nonfinite = skip_nonfinite
    self.skipped, self.skipped_in_a_row = 0, 0
    cpu_conv = config.compile.cpu_conv
    static = {'skip_nonfinite': True} if skip_nonfinite else {}
    self.task = task
    self.train_step = data_parallel.compile_train_step(train_step, cpu_conv=cpu_conv, task=task, **static)
    self.eval_step = compiler.jit(functools.partial(eval_step, axis_name=None, task=task), cpu_conv=cpu_conv)
    self.writer = MetricWriter(workdir)

  def check_finite(self, step: int, metrics) -> dict[str, float]:
    """Fetches a step's metrics; stops the run on a non-finite loss or gradient norm (or skips it)."""
    values = self.data_parallel.get_metrics(metrics)
    if math.isfinite(values['loss']) and math.isfinite(values['grad_norm']):
      self.skipped_in_a_row = 0
      return values
    if self.skip_nonfinite:
      self.skipped += 1
      self.skipped_in_a_row += 1
      if self.skipped_in_a_row < MAX_SKIPPED_IN_A_ROW:
        return values
    self.manager.wait_until_finished()  # finite checkpoints still being written are kept
    in_a_row = f' ({self.skipped_in_a_row} steps in a row skipped)' if self.skip_nonfinite else ''
    or_skip = '' if self.skip_nonfinite else ', or set --config.train.on_nonfinite=skip_step'
    raise TrainingDiverged(
        f'training diverged at step {step}: loss {values["loss"]}, gradient norm {values["grad_norm"]}{in_a_row}; '
        f'nothing non-finite was saved; {self.checkpoints_to_resume_from()}{or_skip}')

  def checkpoints_to_resume_from(self) -> str:
    """After a divergence: the latest checkpoint (a plain rerun's), the best by validation score, how to resume.

    The latest is finite but not necessarily good (it may follow updates at the very learning rate
    that diverged), so the best is named too.
    """
    latest = checkpoint.latest_step(self.manager)
    fix = 'lower --config.optim.learning_rate and rerun with --force'
    if latest is None:
      return f'no checkpoint was written: {fix}'
    where = f'in {checkpoint.checkpoint_dir(self.workdir)}'
    best = checkpoint.best_step_and_score(self.manager)
    if best is None:
      return (f'the latest checkpoint is step {latest} {where} (no checkpoint was validated yet), which a plain '
              f'rerun resumes from: {fix}')
    metric = self.task.best_checkpoint
    shown = f'validation {metric.metric} {best[1] if metric.higher_is_better else -best[1]:.4g}'
    if best[0] == latest:
      return (f'the latest checkpoint, step {latest} {where}, which a plain rerun resumes from, is also the best by '
              f'validation score ({shown}): {fix}')
    return (f'a plain rerun resumes from the latest checkpoint, step {latest} {where}; the best by validation score '
            f'is step {best[0]} ({shown}): {fix}, adding --from-step {best[0]} to resume from the best (newer '
            'checkpoints move to discarded_checkpoints/)')

  def validate(self, step, state, eval_batch) -> dict[str, float]:
    """Scores the validation crops; logs their model input | estimate | target grid to TensorBoard."""
    metrics, images = jax.device_get(self.eval_step(self.data_parallel.single_copy(state), eval_batch))
    if self.writer.enabled:
      shown = slice(0, self.config.report.grid_examples)
      columns = [images['model_input'][shown], images['estimate'][shown], np.asarray(eval_batch['target'])[shown]]
      # A diverging model's estimates can be non-finite a step before its loss is: shown as 0, not warned about.
      shown_finite = [np.nan_to_num(column, nan=0.0, posinf=1.0, neginf=0.0) for column in columns]
      self.writer.write_image_columns(step, GRID_TAG, shown_finite)
    return {f'eval/{name}': float(value) for name, value in metrics.items()}

  def confirm_saved(self) -> None:
    """Waits for the asynchronous save; after this segment's first one, runs `after_first_save` once."""
    self.manager.wait_until_finished()
    if self.after_first_save is not None:
      self.after_first_save()
      self.after_first_save = None

  def save(self, step, state, validation_score=None):
    """Saves asynchronously; a non-finite validation score never makes a checkpoint "best"."""
    if validation_score is not None and not math.isfinite(validation_score):
      validation_score = -math.inf
    with explain_disk_full(f'checkpoint {step} into {checkpoint.checkpoint_dir(self.workdir)}'):
      checkpoint.save(self.manager, step, state=self.data_parallel.for_checkpoint(state),
                      config=self.config.to_dict(), data_iterator=self.batches.checkpointed,
                      validation_score=validation_score)

  def train(self, state, start: int, stop: int, *, eval_batch, signals, wall_time_offset: float = 0.0) -> dict:
    """Runs steps `start + 1 .. stop`; returns the last metrics and the final host state."""
    config = self.config.train
    eval_batch = self.data_parallel.put_for_jit(eval_batch)
    last = {'step': start}
    started = last_save = time.perf_counter()
    window_start, window_steps = started, 0
    pending = None  # the previous step's metrics, checked once the next step is dispatched
    save_in_flight = False
    bar = tqdm.tqdm(total=stop, initial=start, disable=not self.progress, unit='step', dynamic_ncols=True)
    with contextlib.closing(self.writer), bar:
      batch = self.batches.next() if start < stop else None
      for step in range(start + 1, stop + 1):
        state, metrics = self.train_step(state, batch)
        if save_in_flight:
          # The previous step's asynchronous save has had one step to finish; confirming it here bounds
          # what a SIGKILL can lose to `checkpoint_every` + 1 steps.
          self.confirm_saved()
          save_in_flight = False
        if pending is not None:
          self.check_finite(*pending)
        pending = (step, metrics)
        window_steps += 1
        log = step % config.log_every == 0 or step == stop
        evaluate = step % config.eval_every == 0 or step == config.steps
        stopping = _agreed(signals.received is not None)
        minutes_up = log and _agreed(time.perf_counter() - last_save >= 60 * config.checkpoint_every_minutes)
        save = evaluate or stopping or step == stop or step % config.checkpoint_every == 0 or minutes_up
        if log or save:
          values = self.check_finite(step, metrics)
          pending = None
        if log:
          # A step skipped for non-finite values (skip_step) logs only what is finite.
          scalars = {f'train/{k}': v for k, v in values.items() if math.isfinite(v)}
          elapsed = time.perf_counter() - window_start
          scalars['train/images_per_s'] = window_steps * self.config.data.batch_size / max(elapsed, 1e-9)
          scalars['train/wall_time_s'] = wall_time_offset + time.perf_counter() - started
          if self.skip_nonfinite:
            scalars['train/skipped_steps'] = self.skipped
          self.writer.write_scalars(step, scalars)
          bar.set_postfix(loss=f"{values['loss']:.2e}", psnr=f"{values['psnr']:.2f}",
                          img_s=f"{scalars['train/images_per_s']:.0f}")
          last.update(scalars)
          window_start, window_steps = time.perf_counter(), 0
        validation_score = None
        if evaluate:
          scalars = self.validate(step, state, eval_batch)
          # Only finite values are logged, as for training; the score below turns a NaN into "never best".
          self.writer.write_scalars(step, {name: value for name, value in scalars.items() if math.isfinite(value)})
          last.update(scalars)
          # Ranks the checkpoint for "best" by the task's metric (PSNR, or a style task's loss).
          validation_score = self.task.best_checkpoint.score(
              {name.removeprefix('eval/'): value for name, value in scalars.items()})
          window_start = time.perf_counter()
        if save:
          self.save(step, state, validation_score)
          last_save, save_in_flight = time.perf_counter(), True
        bar.update(1)
        last['step'] = step
        if stopping:
          last['stopped_by'] = signals.name or 'another process'
          break
        if step < stop:
          batch = self.batches.next()
    with explain_disk_full(f'checkpoints into {checkpoint.checkpoint_dir(self.workdir)}'):
      self.confirm_saved()
    last['wall_time_s'] = wall_time_offset + time.perf_counter() - started
    last['host_state'] = self.data_parallel.host_state(state)
    return last
