"""All orbax code: one CheckpointManager per workdir.

A checkpoint holds the train state, the resolved config (JSON) and the data
iterator state (grain's orbax handler). The state's `frozen` variables (e.g. a
loss network) are not saved: they never change, and the task supplies them
again on restore. The manager keeps the last
`train.keep_checkpoints` steps plus the best one by the task's validation
score (`Task.best_checkpoint`), saves asynchronously, and never executes code
on load (no pickle).
"""

import contextlib
import dataclasses
import os
import pathlib
import sys
import time
from typing import Any, Iterator

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy as policies

from cnnrecon.errors import CheckpointUnreadable, CnnreconError

# The checkpoint metric that picks the best step: the task's validation score, higher is better (PSNR, or
# minus the validation loss for tasks whose best checkpoint has the lowest loss).
SCORE_KEY = 'validation_score'
# Its name in workdirs written before the score was named for what it holds (for every task, PSNR or -loss).
LEGACY_SCORE_KEY = 'eval_psnr'


def _score(metrics: dict) -> float:
  return metrics[SCORE_KEY] if SCORE_KEY in metrics else metrics[LEGACY_SCORE_KEY]


def checkpoint_dir(workdir: str | pathlib.Path) -> pathlib.Path:
  """Where a workdir's checkpoints live."""
  return pathlib.Path(workdir).absolute() / 'checkpoints'


def saved_steps(workdir: str | pathlib.Path) -> list[int]:
  """The steps of a workdir's finished checkpoints, read from their folder names without orbax.

  orbax names a checkpoint's folder by its step once it is complete; its temporaries
  (`N.orbax-checkpoint-tmp`) are not digits. None readable: [].
  """
  with contextlib.suppress(OSError):
    return sorted(int(path.name) for path in checkpoint_dir(workdir).iterdir() if path.name.isdigit())
  return []


def open_manager(workdir: str | pathlib.Path, *, keep: int = 3, read_only: bool = False) -> ocp.CheckpointManager:
  """Opens (or creates) the workdir's CheckpointManager.

  Args:
    workdir: the experiment directory.
    keep: how many of the most recent checkpoints to keep (the best by
      validation score is kept in addition).
    read_only: open for restoring only (eval, denoise, export).

  Returns:
    The manager; call `.close()` (or use it as a context manager) when done.
  """
  preserve = policies.AnyPreservationPolicy([
      policies.LatestN(n=keep),
      policies.BestN(get_metric_fn=_score, n=1, keep_checkpoints_without_metrics=False),
  ])
  # Checkpoint folders are made in the calling thread: made asynchronously, a folder that cannot be
  # created (read-only, full disk) leaves orbax's writer threads waiting for its signal, and the next
  # save blocks for `timeout_secs` (20 minutes) instead of failing.
  options = ocp.CheckpointManagerOptions(
      preservation_policy=preserve, read_only=read_only, create=not read_only, best_fn=_score, best_mode='max',
      async_options=ocp.AsyncOptions(create_directories_asynchronously=False))
  try:
    return ocp.CheckpointManager(
        checkpoint_dir(workdir), options=options,
        item_handlers={'state': ocp.StandardCheckpointHandler(), 'config': ocp.JsonCheckpointHandler(),
                       'data': grain.checkpoint.CheckpointHandler()})
  except Exception as error:  # orbax raises assorted types for a damaged directory
    raise CnnreconError(f'cannot open checkpoints in {checkpoint_dir(workdir)}: {error}') from error


def save(manager: ocp.CheckpointManager, step: int, *, state: Any, config: dict,
         data_iterator: Any | None, validation_score: float | None = None) -> None:
  """Saves state, config and data iterator state at `step` (asynchronously).

  `validation_score` (higher is better) ranks the checkpoint for "best"; None for an unvalidated step.
  """
  items = {'state': ocp.args.StandardSave(_saved_fields(state)), 'config': ocp.args.JsonSave(config)}
  if data_iterator is not None:
    items['data'] = grain.checkpoint.CheckpointSave(data_iterator)
  metrics = None if validation_score is None else {SCORE_KEY: float(validation_score)}
  manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=True)


def _saved_fields(state: Any) -> dict[str, Any]:
  """The state's pytree fields as orbax stores them: a dict by field name, without `frozen`.

  Saving a dict rather than the dataclass keeps the on-disk tree of a state
  without `frozen` identical to the one written before that field existed, so
  older workdirs restore and resume.
  """
  return {field.name: getattr(state, field.name) for field in dataclasses.fields(state)
          if field.metadata.get('pytree_node', True) and field.name != 'frozen'}


@contextlib.contextmanager
def _damage_reported_once(settle_seconds: float = 0.5) -> Iterator[None]:
  """Sends fd 2 to /dev/null while a restore runs and, if it fails, while its reads settle.

  When one array of a checkpoint is damaged, orbax closes its event loop while
  tensorstore's other reads are still running; as they finish, tensorstore's
  C++ threads print an "Event loop is closed" traceback each, straight to fd 2,
  where no Python handler can catch them. The caller's one-line error is the
  report; the CLI then exits without interpreter shutdown (`cli.console_main`).
  """
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, 'wb') as devnull:
      os.dup2(devnull.fileno(), 2)
      try:
        yield
      except Exception:
        time.sleep(settle_seconds)
        raise
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def _unreadable(manager: ocp.CheckpointManager, step: int, error: Exception) -> CheckpointUnreadable:
  """One line naming the damaged checkpoint, the cause in brief, and the older steps to resume from."""
  detail = str(error).splitlines()[0] if str(error) else ''
  detail = detail.split(' [tensorstore_spec')[0]
  if len(detail) > 200:
    detail = detail[:200] + '...'
  older = [s for s in manager.all_steps() if s < step]
  fix = (f'resume from an earlier checkpoint with `cnnrecon train ... --from-step {max(older)}` (steps on disk: '
         f'{", ".join(map(str, sorted(manager.all_steps())))}), or train in a new --workdir' if older else
         'train in a new --workdir')
  return CheckpointUnreadable(f'checkpoint {manager.directory / str(step)} is unreadable ({type(error).__name__}: '
                       f'{detail}): {fix}')


def latest_step(manager: ocp.CheckpointManager) -> int | None:
  """The newest saved step, or None for a fresh workdir."""
  return manager.latest_step()


def best_step_and_score(manager: ocp.CheckpointManager) -> tuple[int, float] | None:
  """The best saved step by its `validation_score` (higher is better) and that score; None before any was scored."""
  step = manager.best_step()
  metrics = manager.metrics(step) if step is not None else None
  if not metrics:  # no checkpoint was validated: orbax falls back to the latest, which is no "best"
    return None
  return step, float(_score(metrics))


def has_training_state(manager: ocp.CheckpointManager, step: int) -> bool:
  """False for checkpoints written by `cnnrecon weights import` (no data iterator saved)."""
  return (manager.directory / str(step) / 'data').is_dir()


def restore_config(manager: ocp.CheckpointManager, step: int) -> dict:
  """Reads the config saved with `step`."""
  try:
    with _damage_reported_once():
      return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))['config']
  except Exception as error:
    raise _unreadable(manager, step, error) from error


def restore_state(manager: ocp.CheckpointManager, step: int, *, target: Any,
                  data_iterator: Any | None = None) -> Any:
  """Restores the train state saved at `step` into the structure of `target`.

  Args:
    manager: from `open_manager`.
    step: which checkpoint.
    target: a host state with the expected structure, shapes and dtypes; its
      `frozen` variables are put into the restored state as they are.
    data_iterator: when given, its position is restored in place too.

  Returns:
    The restored host state (numpy leaves).
  """
  items = {'state': ocp.args.StandardRestore(_saved_fields(target))}
  if data_iterator is not None:
    items['data'] = grain.checkpoint.CheckpointRestore(data_iterator)
  try:
    with _damage_reported_once():
      return target.replace(**manager.restore(step, args=ocp.args.Composite(**items))['state'])
  except Exception as error:
    raise _unreadable(manager, step, error) from error


def restore_arrays(manager: ocp.CheckpointManager, step: int) -> dict:
  """Restores the train state saved at `step` as nested dicts of arrays, without a target.

  Inference needs only `params` and `batch_stats`, so it need not rebuild the
  optimizer state's structure. The arrays land on this process's first device:
  restoring with the saved shardings fails on another topology ("Topology
  mismatch" for a run saved on 4 devices and read on 1).
  """
  try:
    with _damage_reported_once():
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      saved = manager.item_metadata(step)['state']
      target = jax.tree.map(lambda meta: jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=device), saved)
      return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))['state']
  except Exception as error:
    raise _unreadable(manager, step, error) from error


def best_or_latest_step(manager: ocp.CheckpointManager) -> int:
  """The best step by validation score, else the latest; explains an empty workdir."""
  step = manager.best_step()
  if step is None:
    step = manager.latest_step()
  if step is None:
    raise CnnreconError(f'no checkpoint in {manager.directory}: train first with '
                        '`cnnrecon train --config ... --workdir <this workdir>`')
  return step


def chosen_step(manager: ocp.CheckpointManager, step: int | str | None) -> int:
  """The saved step that `step` names: 'best' or None (best, else latest), 'latest', or a step number.

  Raises:
    CnnreconError: an empty workdir, or a step that is not saved (the message lists those that are).
  """
  saved = sorted(manager.all_steps())
  if not saved:
    raise CnnreconError(f'no checkpoint in {manager.directory}: train first with '
                        '`cnnrecon train --config ... --workdir <this workdir>`')
  if step in (None, 'best'):
    return best_or_latest_step(manager)
  if step == 'latest':
    return saved[-1]
  try:
    number = int(step)
  except ValueError:
    raise CnnreconError(f'--step {step!r} is not best, latest or a step number; saved steps: '
                        f'{", ".join(map(str, saved))}') from None
  if number not in saved:
    raise CnnreconError(f'step {number} is not saved in {manager.directory}: pick one of '
                        f'{", ".join(map(str, saved))}, best or latest')
  return number


def _check_has_checkpoints(workdir: str | pathlib.Path) -> None:
  if not checkpoint_dir(workdir).is_dir():
    raise CnnreconError(f'{workdir} holds no checkpoints: train first with '
                        f'`cnnrecon train --config ... --workdir {workdir}`')


def saved_step(workdir: str | pathlib.Path, step: int | str | None = 'latest') -> int:
  """The saved step that `step` names (`chosen_step`), without restoring anything."""
  _check_has_checkpoints(workdir)
  with open_manager(workdir, read_only=True) as manager:
    return chosen_step(manager, step)


def load_variables(workdir: str | pathlib.Path, *, step: int | str | None = None) -> tuple[int, dict, dict]:
  """Restores the model variables and config of a workdir's checkpoint.

  Args:
    workdir: a directory written by `cnnrecon train` (or a weights import).
    step: which checkpoint (`chosen_step`): the best by validation score
      (default, else the latest), 'latest', or a step number.

  Returns:
    `(step, config dict as saved, {'params', 'batch_stats'})`.
  """
  _check_has_checkpoints(workdir)
  with open_manager(workdir, read_only=True) as manager:
    step = chosen_step(manager, step)
    config = restore_config(manager, step)
    state = restore_arrays(manager, step)
  return step, config, {'params': state['params'], 'batch_stats': state.get('batch_stats') or {}}
