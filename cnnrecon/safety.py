"""Rules that keep runs from losing work or data, shared by every command.

- `WorkdirLock`: one writer per workdir (an `fcntl` advisory lock the OS
  releases when the process dies, so a crashed run never leaves it stale).
- `check_workdir_usable`: `train` writes only into an empty folder or a
  cnnrecon workdir.
- `PreemptionSignals`: SIGTERM / SIGINT ask the loop to stop after the
  current step (a second signal changes nothing).
- `output_paths` / `new_results_dir` / `check_output_dir`: outputs never
  overwrite inputs, earlier results, or each other.
"""

import contextlib
import datetime
import errno
import fcntl
import os
import pathlib
import signal
import socket
from typing import Iterator, Sequence

from cnnrecon.errors import CnnreconError

LOCK_NAME = '.cnnrecon.lock'
# Files that make a folder recognisably a cnnrecon workdir (older ones have no lock file).
_WORKDIR_MARKERS = (LOCK_NAME, 'checkpoints', 'config.json', 'metrics.jsonl')


def _file_on_path(folder: pathlib.Path) -> pathlib.Path | None:
  """The first of `folder` and its parents that exists but is not a folder (None if there is none)."""
  return next((path for path in [folder, *folder.parents] if path.exists() and not path.is_dir()), None)


def check_workdir_usable(workdir: pathlib.Path) -> None:
  """Refuses a path that is a file, lies under a file, or is a non-empty non-cnnrecon folder."""
  blocker = _file_on_path(workdir)
  if blocker is not None:
    where = 'is' if blocker == workdir else f'lies under {blocker}, which is'
    raise CnnreconError(f'--workdir {workdir} {where} a file, not a folder: pick another --workdir')
  if workdir.is_dir():
    entries = sorted(path.name for path in workdir.iterdir())
    if entries and not any(marker in entries for marker in _WORKDIR_MARKERS):
      shown = ', '.join(entries[:3]) + (', ...' if len(entries) > 3 else '')
      raise CnnreconError(f'--workdir {workdir} is not empty and is not a cnnrecon workdir (it holds {shown}): '
                          'train into a new or empty folder')


class WorkdirLock:
  """An exclusive, non-blocking lock on `<workdir>/.cnnrecon.lock`, holding the owner's PID and host.

  Use as a context manager; the OS drops the lock when the process exits in
  any way, so a lock file left behind by a crash does not block anyone.
  Re-entrant within a process (`train_and_evaluate` holds it around `train`).
  """

  _held: dict[pathlib.Path, list] = {}  # lock path -> [depth, open file], this process only

  def __init__(self, workdir: str | os.PathLike):
    self.path = (pathlib.Path(workdir) / LOCK_NAME).absolute()

  def __enter__(self) -> 'WorkdirLock':
    if self.path in self._held:
      self._held[self.path][0] += 1
      return self
    self.path.parent.mkdir(parents=True, exist_ok=True)
    file = open(self.path, 'a+', encoding='utf-8')  # pylint: disable=consider-using-with
    try:
      fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
      file.seek(0)
      holder = file.read().strip() or 'another process'
      file.close()
      if error.errno not in (errno.EAGAIN, errno.EACCES):
        raise
      raise CnnreconError(f'{self.path.parent} is in use by {holder}: wait for that run to finish, or use '
                          'another --workdir') from None
    file.seek(0)
    file.truncate()
    started = datetime.datetime.now().isoformat(timespec='seconds')
    file.write(f'PID {os.getpid()} on host {socket.gethostname()} (since {started})\n')
    file.flush()
    self._held[self.path] = [1, file]
    return self

  def __exit__(self, *exc_info) -> None:
    entry = self._held[self.path]
    entry[0] -= 1
    if entry[0] == 0:
      del self._held[self.path]
      fcntl.flock(entry[1], fcntl.LOCK_UN)
      entry[1].close()


class PreemptionSignals:
  """Turns SIGTERM / SIGINT into a request the training loop polls between steps.

  Inside the `with` block the first signal is recorded (`received`); further
  signals are ignored, so a second Ctrl-C during the final save cannot
  interrupt it. The previous handlers come back on exit. Only the main thread
  can install handlers; elsewhere (e.g. a test thread) this does nothing.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum

  def __enter__(self) -> 'PreemptionSignals':
    with contextlib.suppress(ValueError):  # not the main thread
      for signum in self.SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  @property
  def name(self) -> str | None:
    """'SIGTERM' / 'SIGINT' once one was received."""
    return None if self.received is None else signal.Signals(self.received).name


def check_output_dir(out: pathlib.Path) -> None:
  """Refuses an output folder that is a file or lies under one."""
  blocker = _file_on_path(out)
  if blocker is not None:
    raise CnnreconError(f'--out {out}: {blocker} is a file, not a folder: pass a folder for --out')


def new_results_dir(workdir: pathlib.Path, prefix: str = 'eval') -> pathlib.Path:
  """A fresh `<workdir>/<prefix>-N` folder (N = 1, 2, ...), created atomically so runs never share one."""
  for number in range(1, 100_000):
    candidate = workdir / f'{prefix}-{number}'
    try:
      candidate.mkdir(parents=True)
      return candidate
    except FileExistsError:
      continue
  raise CnnreconError(f'{workdir} holds too many {prefix}-N folders: pass --out')


def check_results_dir(out: pathlib.Path, names: Sequence[str], *, overwrite: bool) -> None:
  """Refuses to replace result files already in `out` unless `overwrite`."""
  check_output_dir(out)
  existing = [name for name in names if (out / name).exists()]
  if existing and not overwrite:
    raise CnnreconError(f'{out} already holds {", ".join(existing)}: pass another --out, or --overwrite to '
                        'replace them')


def output_paths(inputs: Sequence[str | os.PathLike], out: pathlib.Path, *, suffix: str = '.png',
                 overwrite: bool = False, also_inputs: Sequence[str | os.PathLike] = ()) -> list[pathlib.Path]:
  """One output file per input in `out`, never an input itself, never shared, never an existing file.

  Same-named inputs from different folders (a/x.png, b/x.png) get x.png and
  x-2.png, in input order.

  Args:
    inputs: the files that each get an output.
    out: the output folder.
    suffix: appended to each input's stem.
    overwrite: allow replacing existing files (never inputs).
    also_inputs: further files the command reads (e.g. style images), which
      must not be replaced either.

  Raises:
    CnnreconError: an output would replace one of the inputs, or an existing
      file (unless `overwrite`).
  """
  check_output_dir(out)
  sources = {pathlib.Path(path).resolve() for path in [*inputs, *also_inputs]}
  taken: set[str] = set()
  outputs = []
  for path in inputs:
    stem, number = pathlib.Path(path).stem, 1
    name = f'{stem}{suffix}'
    while name in taken:
      number += 1
      name = f'{stem}-{number}{suffix}'
    taken.add(name)
    target = out / name
    if target.resolve() in sources:
      raise CnnreconError(f'writing {target} would replace the input {path}: pass a different --out')
    if target.exists() and not overwrite:
      raise CnnreconError(f'{target} already exists: pass another --out, or --overwrite to replace it')
    outputs.append(target)
  return outputs


@contextlib.contextmanager
def explain_disk_full(what: str, needed_bytes: int | None = None) -> Iterator[None]:
  """Turns 'no space left on device' while writing `what` into one line with the size needed."""
  try:
    yield
  except OSError as error:
    if error.errno != errno.ENOSPC:
      raise
    size = f' (about {needed_bytes / 2**20:.0f} MiB)' if needed_bytes else ''
    raise CnnreconError(f'the disk is full: writing {what}{size} failed; free space there and rerun '
                        'the same command (it resumes)') from None
