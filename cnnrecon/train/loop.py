"""`train`: the whole training run for one config and workdir (evaluation comes after, in
`cnnrecon.evaluation.train_and_evaluate`).

Safety (`cnnrecon.safety`): one writer per workdir (a lock), SIGTERM / SIGINT
save the current step and stop, a checkpoint at least every
`train.checkpoint_every` steps / `checkpoint_every_minutes`, and a non-finite
loss or gradient norm stops the run (exit status 3) before anything
non-finite is saved.
"""

import contextlib
import pathlib

import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from cnnrecon import config as config_lib
from cnnrecon.data.pipeline import validation_batch
from cnnrecon.data.sources import load_source
from cnnrecon.errors import CnnreconError
from cnnrecon.io import write_file_atomic
from cnnrecon.models.registry import build_model
from cnnrecon.safety import PreemptionSignals, WorkdirLock, check_workdir_usable, stop_if_signalled
from cnnrecon.train import checkpoint, parallel, provenance
from cnnrecon.tasks import build_task
from cnnrecon.train.batches import make_batches, resolve_sampler
from cnnrecon.train.checks import check_resumable, check_sizes, discard_checkpoints_after, validate_config
from cnnrecon.train.metric_writer import truncate_after, wall_time_logged
from cnnrecon.train.state import create_train_state, make_optimizer
from cnnrecon.train.training_run import TrainingRun

__all__ = ['initialize_from', 'train', 'validate_config', 'workdir_lock']


def workdir_lock(workdir: pathlib.Path):
  """The workdir's lock, held by process 0 (the one that writes logs and reports)."""
  return WorkdirLock(workdir) if jax.process_index() == 0 else contextlib.nullcontext()


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
          force: bool = False, stop_at: int | None = None, from_step: int | None = None,
          progress: bool = True) -> dict:
  """Trains (or resumes) the model of `config` in `workdir`.

  Args:
    config: the resolved experiment config (old key names are upgraded).
    workdir: where checkpoints and logs go; an existing run resumes.
    force: resume even when the saved config differs.
    stop_at: stop (with a checkpoint) after this step, e.g. to split a long run
      over several job allocations; the next call resumes.
    from_step: resume from this checkpoint instead of the latest (e.g. when the
      latest is damaged); newer ones move to `<workdir>/discarded_checkpoints/`.
    progress: show a progress bar.

  Returns:
    A summary dict: `step` (the last one), `start_step` (where this call
    began), the last train/eval metrics, `wall_time_s` (over all segments of
    the run), `host_state` (the final state on the host), and `stopped_by`
    ('SIGTERM' / 'SIGINT') when a signal stopped it.

  Raises:
    CnnreconError: bad config or data, a busy or foreign workdir.
    TrainingDiverged: a non-finite loss or gradient norm (nothing non-finite
      is saved).
  """
  config = config_lib.upgrade_config(config)
  validate_config(config, stop_at=stop_at)
  workdir = pathlib.Path(workdir)
  check_workdir_usable(workdir)
  with workdir_lock(workdir):
    return _train_locked(config, workdir, force=force, stop_at=stop_at, from_step=from_step, progress=progress)


def _stop_if_signalled(while_doing: str) -> None:
  """Start-up stops between phases on a recorded signal; with several processes only the loop stops
  (all processes agree on the step there: one process stopping alone here would hang the others)."""
  if jax.process_count() == 1:
    stop_if_signalled(while_doing)


def _train_locked(config, workdir, *, force, stop_at, from_step, progress) -> dict:
  task = build_task(config)
  model = build_model(config.model, channels=config.data.channels, bn_axis_name=parallel.AXIS, operator=task.forward_operator())
  data_parallel = parallel.make_data_parallel(config.parallel)
  local_batch = parallel.per_process_batch_size(config.data.batch_size)
  _stop_if_signalled('building the task and model')
  train_source, eval_source = _load_sources(config)
  check_sizes(config, train_source, eval_source)
  _stop_if_signalled('loading the data')
  if from_step is not None:
    discard_checkpoints_after(workdir, from_step)

  skip_nonfinite = config.train.on_nonfinite == 'skip_step'
  optimizer = make_optimizer(config.optim, config.train.steps, skip_nonfinite=skip_nonfinite)
  sample_shape = (1, config.data.patch_size, config.data.patch_size, config.data.channels)
  host_state = create_train_state(model, optimizer, seed=config.seed, sample_shape=sample_shape,
                                  frozen=task.init_frozen(), sample_input=task.sample_model_input(sample_shape))
  _stop_if_signalled('initialising the model')
  with checkpoint.open_manager(workdir, keep=config.train.keep_checkpoints) as manager:
    latest = checkpoint.latest_step(manager)
    resumable = latest is not None and checkpoint.has_training_state(manager, latest)
    saved = checkpoint.restore_config(manager, latest) if resumable else None
    config = _with_sampler(config, resolve_sampler(config, saved, train_source))
    start = check_resumable(workdir, config, manager, force=force)
    batches = make_batches(config.data.sampler, config, train_source, data_parallel, local_batch=local_batch)
    _stop_if_signalled('placing the training images')
    if start is not None:
      host_state = checkpoint.restore_state(manager, start, target=jax.device_get(host_state),
                                            data_iterator=batches.checkpointed)
    elif config.train.init_from:
      host_state = initialize_from(jax.device_get(host_state), config.train.init_from)
    _stop_if_signalled('restoring the checkpoint' if start is not None else 'opening the checkpoints')
    metrics_path = workdir / 'metrics.jsonl'
    if jax.process_index() == 0:
      truncate_after(metrics_path, start or 0)  # lines of steps after the restored one (or all, fresh)
      provenance.start_session(workdir, config, start_step=start or 0)
    # config.json describes the checkpoints: a fresh run writes it now; a resume (maybe --force with another
    # config) once its first checkpoint is saved, so a resume that fails first leaves the old one in place.
    record_config = lambda: write_file_atomic(workdir / 'config.json', config_lib.config_to_json(config))
    if jax.process_index() == 0 and start is None:
      record_config()
    run = TrainingRun(config, task, workdir, data_parallel, manager, batches, progress=progress,
                      skip_nonfinite=skip_nonfinite,
                      after_first_save=record_config if jax.process_index() == 0 and start is not None else None)
    with _session_recorded(workdir) as record, PreemptionSignals() as signals:
      summary = run.train(data_parallel.put_state(host_state), start or 0, stop_at or config.train.steps,
                          eval_batch=validation_batch(eval_source, seed=config.seed, crop=config.data.eval_crop,
                                                      channels=config.data.channels, gray=config.data.gray),
                          signals=signals, wall_time_offset=wall_time_logged(metrics_path))
      manager.wait_until_finished()
      record.update(step=summary['step'], outcome=summary.get('stopped_by') or (
          'finished' if summary['step'] >= config.train.steps else 'stopped (--stop-at)'))
  summary['start_step'] = start or 0
  return summary


def _with_sampler(config: ml_collections.ConfigDict, sampler: str) -> ml_collections.ConfigDict:
  """A copy of `config` naming the sampler this run uses (what config.json and checkpoints record)."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.data.sampler = sampler
  return config


@contextlib.contextmanager
def _session_recorded(workdir: pathlib.Path):
  """Yields a dict for the session's end (`step`, `outcome`); closes `run.json`'s session on any exit."""
  record = {'step': None, 'outcome': 'interrupted'}
  try:
    yield record
  except Exception as error:
    record['outcome'] = f'failed: {str(error).splitlines()[0] if str(error) else type(error).__name__}'
    raise
  finally:
    if jax.process_index() == 0:
      provenance.end_session(workdir, step=record['step'], outcome=record['outcome'])
