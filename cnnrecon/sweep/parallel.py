"""`cnnrecon sweep --max-parallel N`: worker processes on one machine share a sweep through the run locks.

The parent starts at most one worker per run left to claim (and at most one
per CPU core), runs them in their own process group and passes SIGINT and
SIGTERM on to each, so a signal reaches every worker exactly once, whoever
sends it. A worker dies with its parent (`die_with_parent`): a SIGKILLed
parent leaves no orphan finishing the sweep alone.
"""

import ctypes
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Iterable

from cnnrecon.errors import CnnreconError
from cnnrecon.sweep.run import left_to_claim, prepare_sweep, read_status, run_name
from cnnrecon.train.checkpoint import saved_steps

_PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>
_CLEAN_ENDS = (0, 130)  # a worker's exit statuses when it ended its runs (or stopped one with a checkpoint)


def worker_limit() -> int:
  """The most workers this machine runs at once: one per CPU core this process may use.

  Each worker needs a core for its input pipeline and for dispatch; workers
  share an accelerator (they do not preallocate its memory), so devices do
  not bound them further, and jax is not initialised here to count them.
  """
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return os.cpu_count() or 1


def run_sweep_parallel(spec: str, root: str | pathlib.Path, *, workers: int, only: Iterable[str] = (),
                       shard: tuple[int, int] = (0, 1), retry_failed: bool = False, echo=print) -> dict[str, Any]:
  """Runs this invocation's share of a sweep in up to `workers` processes on this machine.

  Each worker is a `cnnrecon sweep` of the same runs: it claims a free run
  through the workdir lock and skips those another worker holds, so every run
  trains once, on whichever worker is free first. Only as many workers start
  as there are runs left to claim. Workers do not preallocate GPU memory
  (`XLA_PYTHON_CLIENT_PREALLOCATE=false`), so several share a GPU. SIGTERM
  and SIGINT sent to this process are passed on to every worker, which stop
  their runs with a checkpoint; afterwards one line says what each unfinished
  run kept.

  Returns:
    Counts over this shard's runs once every worker has ended: `finished`,
    `failed`, `remaining`, `total` and `workers` (started); `stopped_by`, the
    signal passed on ('SIGINT', 'SIGTERM') or None; `failed_runs`, the names
    of the failed runs.

  Raises:
    CnnreconError: `workers` is below 1 or above `worker_limit()`, or the sweep is refused
      (`run.prepare_sweep`); nothing is started or written then.
  """
  limit = worker_limit()
  if not 1 <= workers <= limit:
    raise CnnreconError(f'--max-parallel {workers}: pass 1 to {limit}, one worker per CPU core this machine '
                        'gives cnnrecon (each trains one run at a time)')
  root = pathlib.Path(root)
  started = time.time()
  _, runs = prepare_sweep(spec, root, only=only, shard=shard)
  left = [run for run in runs if left_to_claim(root / run_name(run), retry_failed=retry_failed, started=started)]
  command = [sys.executable, '-m', 'cnnrecon.cli', 'sweep', spec, '--root', str(root), '--shard',
             f'{shard[0]}/{shard[1]}', '--no-progress', '--no-report', f'--parent-pid={os.getpid()}',
             *(f'--only={item}' for item in only),
             *(['--retry-failed', f'--started={started!r}'] if retry_failed else [])]
  with _PassSignalsOn() as signals:
    ends = _run_workers(command, min(workers, len(left)), signals, echo)
  statuses = {run_name(overrides): read_status(root / run_name(overrides)) for overrides in runs}
  failed = [name for name, status in statuses.items() if status and status['status'] == 'failed']
  finished = sum(bool(status) and status['status'] == 'finished' for status in statuses.values())
  stopped_by = signal.Signals(signals.received).name if signals.received else None
  unclean = {index: end for index, end in enumerate(ends) if end not in _CLEAN_ENDS}
  if stopped_by or unclean:
    echo(_what_was_kept(root, [name for name, status in statuses.items() if status is None], stopped_by, unclean))
  return {'finished': finished, 'failed': len(failed), 'remaining': len(runs) - finished - len(failed),
          'total': len(runs), 'workers': len(ends), 'stopped_by': stopped_by, 'failed_runs': failed}


class _PassSignalsOn:
  """Inside the block, SIGINT and SIGTERM are passed on to `processes` instead of stopping this process.

  `received` is the first signal. The workers run in their own process group,
  so a terminal's Ctrl-C reaches them only through this, once.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.processes: list[subprocess.Popen] = []
    self.received: int | None = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    self.received = self.received or signum
    for process in self.processes:
      process.send_signal(signum)  # a no-op for a worker already reaped

  def __enter__(self) -> '_PassSignalsOn':
    for signum in self.SIGNALS:
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)


def _run_workers(command: list[str], count: int, signals: _PassSignalsOn, echo) -> list[int]:
  """Starts `count` workers (none after a signal), relays their output; returns their exit statuses."""
  env = {**os.environ, 'XLA_PYTHON_CLIENT_PREALLOCATE': 'false', 'PYTHONUNBUFFERED': '1'}
  relays = []
  for index in range(count):
    if signals.received:
      break
    process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, process_group=0)
    signals.processes.append(process)
    if signals.received:  # arrived while this one was starting
      process.send_signal(signals.received)
    relays.append(threading.Thread(target=_relay, args=(process, f'[worker {index}] ', echo), daemon=True))
    relays[-1].start()
  ends = [process.wait() for process in signals.processes]
  for relay in relays:
    relay.join()
  return ends


def _relay(process: subprocess.Popen, prefix: str, echo) -> None:
  """Echoes a worker's output lines with its prefix."""
  for line in process.stdout:
    echo(prefix + line.rstrip('\n'))


def _what_was_kept(root: pathlib.Path, unfinished: list[str], stopped_by: str | None,
                   unclean: dict[int, int]) -> str:
  """One honest line, read from the runs' folders once every worker has ended: what each unfinished run kept."""
  ends = [f'worker {index} ' + (f'was killed by {signal.Signals(-end).name}' if end < 0 else f'exited with {end}')
          for index, end in unclean.items()]
  cause = f'{stopped_by}, passed on to every worker' if stopped_by else 'a worker ended early'
  what = f"{cause}: the workers have ended{' (' + '; '.join(ends) + ')' if ends else ''}"
  kept = [f'{name} at step {steps[-1]}' for name in unfinished if (steps := saved_steps(root / name))]
  fresh = len(unfinished) - len(kept)
  if kept:
    rest = f' ({fresh} more not started)' if fresh else ''
    return f"{what}; checkpoints to resume from: {', '.join(kept)}{rest}; rerun the same command to resume"
  if unfinished:
    return f'{what}; no unfinished run had saved a checkpoint yet; rerun the same command to start them'
  return f'{what}; every run had ended before'


def die_with_parent(parent_pid: int) -> None:
  """Makes this worker get SIGTERM when its parent dies, so that an orphan stops its run with a checkpoint.

  A SIGKILLed parent cannot pass anything on: on Linux the kernel sends the
  parent-death signal (prctl); elsewhere a thread watches the parent. A parent
  that died before this call is noticed here (the worker ends at once). Output
  to the dead parent's pipe is dropped instead of raising, so the run's last
  messages cannot turn its clean stop into a traceback.

  Args:
    parent_pid: the process that started this worker.
  """
  sys.stdout, sys.stderr = _DropWhenPipeCloses(sys.stdout), _DropWhenPipeCloses(sys.stderr)
  if sys.platform.startswith('linux'):
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
  else:
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
  if os.getppid() != parent_pid:  # it died before the prctl: no signal would ever come
    os.kill(os.getpid(), signal.SIGTERM)


def _watch_parent(parent_pid: int) -> None:
  while os.getppid() == parent_pid:
    time.sleep(1)
  os.kill(os.getpid(), signal.SIGTERM)


class _DropWhenPipeCloses:
  """A text stream that turns into /dev/null, instead of raising, once the pipe it writes to is closed."""

  def __init__(self, stream):
    self._stream = stream

  def _swap(self) -> None:
    self._stream = open(os.devnull, 'w', encoding='utf-8')  # pylint: disable=consider-using-with

  def write(self, text: str) -> int:
    try:
      return self._stream.write(text)
    except BrokenPipeError:
      self._swap()
      return len(text)

  def flush(self) -> None:
    try:
      self._stream.flush()
    except BrokenPipeError:
      self._swap()

  def __getattr__(self, name: str):
    return getattr(self._stream, name)
