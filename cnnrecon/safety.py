"""Rules that keep runs from losing work or data, shared by every command.

- `WorkdirLock`: one writer per workdir (an `fcntl` advisory lock the OS
  releases when the process dies, so a crashed run never leaves it stale).
- `check_workdir_usable`: `train` writes only into an empty folder or a
  cnnrecon workdir.
- `record_signals` / `stop_if_signalled` / `PreemptionSignals`: SIGTERM /
  SIGINT are recorded from a training command's start; start-up stops
  between its phases, the loop after the current step (a second signal
  changes nothing).
- `output_paths` / `new_results_dir` / `check_output_dir`: outputs never
  overwrite inputs, earlier results, or each other.
"""

import contextlib
import datetime
import errno
import fcntl
import os
import pathlib
import re
import signal
import socket
from typing import Iterator, Sequence

from cnnrecon.errors import CnnreconError, FileSystemRefused

LOCK_NAME = '.cnnrecon.lock'
# Files that make a folder recognisably a cnnrecon workdir (older ones have no lock file).
WORKDIR_MARKERS = (LOCK_NAME, 'checkpoints', 'config.json', 'metrics.jsonl')


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
    if entries and not any(marker in entries for marker in WORKDIR_MARKERS):
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


class Interrupted(CnnreconError):
  """A signal arrived before training could stop with a checkpoint (start-up): the run stops, nothing changed."""

  def __init__(self, signum: int, while_doing: str):
    self.signal_name = signal.Signals(signum).name
    super().__init__(f'{self.signal_name} during start-up (acted on after {while_doing}): stopped before the '
                     'first training step of this command and no checkpoint was written; rerun the same command '
                     'to continue')
    # The shell's status for SIGINT; SIGTERM (a scheduler's preemption) stops like a finished segment.
    self.exit_status = 130 if signum == signal.SIGINT else 0


class _SignalRecorder:
  """The process's SIGTERM / SIGINT handler from a command's start to the end of its training loop.

  Python's default turns Ctrl-C into a KeyboardInterrupt wherever the
  interpreter happens to be (inside an import, a C++ callback, a garbage
  collector hook that swallows it, or a thread about to shut down, which
  crashed the process), and SIGTERM kills it silently. Recording the first
  signal instead lets start-up stop between its phases (`stop_if_signalled`)
  and the loop stop after the current step; further signals are ignored so
  that a second Ctrl-C cannot interrupt the final save.
  """

  def __init__(self):
    self.received: int | None = None
    self._previous: dict[int, object] = {}

  def _record(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum

  def install(self) -> None:
    """Starts recording; does nothing outside the main thread (e.g. a test thread).

    Called again, it takes the signals back from whatever replaced it, e.g. the
    SIGTERM handler `jax.distributed.initialize` installs in C++.
    """
    with contextlib.suppress(ValueError):  # not the main thread
      for signum in PreemptionSignals.SIGNALS:
        # Always set: a handler installed in C++ is invisible to `signal.getsignal`, which still
        # answers with the last Python handler.
        previous = signal.signal(signum, self._record)
        self._previous.setdefault(signum, previous)

  def uninstall(self) -> None:
    """Gives the signals back to the handlers from before `install`; forgets what was received."""
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()
    self.received = None


SIGNALS = _SignalRecorder()


def record_signals(*, then_interrupt: bool = False) -> None:
  """From now on SIGTERM / SIGINT are recorded, not acted on, until a training loop has used them.

  The CLI calls this first thing for commands that train, so a signal during
  imports, data loading or compilation is never lost (see `stop_if_signalled`).

  Args:
    then_interrupt: once the loop has ended, both signals raise
      KeyboardInterrupt (instead of SIGTERM killing the process silently), so
      the final evaluation stops at once and the CLI says so in one line.
  """
  SIGNALS.install()
  if then_interrupt:
    for signum in PreemptionSignals.SIGNALS:
      SIGNALS._previous[signum] = signal.default_int_handler  # pylint: disable=protected-access


def current_handlers() -> dict[int, object]:
  """The Python handlers of SIGTERM / SIGINT now (for `restore_handlers`)."""
  return {signum: signal.getsignal(signum) for signum in PreemptionSignals.SIGNALS}


def restore_handlers(handlers: dict[int, object]) -> None:
  """Puts back handlers saved by `current_handlers` (main thread only; elsewhere nothing changed)."""
  with contextlib.suppress(ValueError, TypeError):  # not the main thread; a handler set outside Python
    for signum, handler in handlers.items():
      signal.signal(signum, handler)


def stop_if_signalled(while_doing: str) -> None:
  """Raises `Interrupted` if a signal was recorded; start-up calls it between its phases.

  Compilation in XLA cannot be interrupted: a signal that arrives during it
  is acted on right after, at the next call.
  """
  if SIGNALS.received is not None:
    raise Interrupted(SIGNALS.received, while_doing)


class PreemptionSignals:
  """Turns SIGTERM / SIGINT into a request the training loop polls between steps.

  Inside the `with` block the first signal is recorded (`received`); further
  signals are ignored, so a second Ctrl-C during the final save cannot
  interrupt it. A signal recorded since `record_signals` (start-up) counts as
  received. On exit the handlers from before the command come back, so a
  Ctrl-C during the final evaluation interrupts it at once. Only the main
  thread can install handlers; elsewhere (e.g. a test thread) this does nothing.
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  @property
  def received(self) -> int | None:
    """The first signal since start-up or since entering the block (None while there is none)."""
    return SIGNALS.received

  def __enter__(self) -> 'PreemptionSignals':
    SIGNALS.install()
    return self

  def __exit__(self, *exc_info) -> None:
    SIGNALS.uninstall()

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


def _file_key(path: str | os.PathLike) -> tuple:
  """What makes two paths the same file: its device and inode (so hard and symbolic links match), else the path.

  A path that does not exist yet is compared by its resolved path.
  """
  try:
    status = os.stat(path)  # follows symbolic links
  except OSError:
    return ('path', pathlib.Path(path).resolve())
  return ('inode', status.st_dev, status.st_ino)


def _replaced_input(target: pathlib.Path, source: str | os.PathLike, *, also: bool) -> CnnreconError:
  """The refusal of an output that is one of the command's inputs, naming both."""
  how = ('' if os.path.abspath(target) == os.path.abspath(source) else
         ' (the same file under another name: a hard or symbolic link)')
  what = f'{source}, which this command reads too' if also else f'the input {source}'
  return CnnreconError(f'writing {target} would replace {what}{how}: pass a different --out')


def output_paths(inputs: Sequence[str | os.PathLike], out: pathlib.Path, *, suffix: str = '.png',
                 overwrite: bool = False, also_inputs: Sequence[str | os.PathLike] = ()) -> list[pathlib.Path]:
  """One output file per input in `out`, never an input itself, never shared, never an existing file.

  Same-named inputs from different folders (a/x.png, b/x.png) get x.png and
  x-2.png, in input order. Files are compared by identity (device and inode),
  so an output that is a hard or symbolic link to an input is refused too.

  Args:
    inputs: the files that each get an output.
    out: the output folder.
    suffix: appended to each input's stem.
    overwrite: allow replacing existing files (never inputs).
    also_inputs: further files the command reads (e.g. style images), which
      must not be replaced either.

  Raises:
    CnnreconError: an output would replace one of the inputs, or an existing
      file (unless `overwrite`); the message names the output and the input.
  """
  check_output_dir(out)
  # Inputs last: a file given both as an input and as an also-input is named as the input.
  sources: dict[tuple, tuple[str | os.PathLike, bool]] = {}
  for path, also in [*((path, True) for path in also_inputs), *((path, False) for path in inputs)]:
    sources[_file_key(path)] = (path, also)
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
    if _file_key(target) in sources:
      source, also = sources[_file_key(target)]
      raise _replaced_input(target, source, also=also)
    if target.exists() and not overwrite:
      raise CnnreconError(f'{target} already exists: pass another --out, or --overwrite to replace it')
    outputs.append(target)
  return outputs


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


# How tensorstore (under orbax) reports an OS error: a ValueError naming the file (or the directory it
# failed to create, e.g. when OCDBT merges a checkpoint's files) and the errno.
_TENSORSTORE_OS_ERROR = re.compile(
    r'(?:local file|Failed to create directory:) "(?P<file>[^"]+)".*\[os_error_code=\'(?P<errno>\d+)\'\]')


_PYTHON_OS_ERROR = re.compile(r'\[Errno (?P<errno>\d+)\]')


def _as_os_error(error: BaseException) -> OSError | None:
  if isinstance(error, OSError):
    return error
  match = _TENSORSTORE_OS_ERROR.search(str(error)) or _PYTHON_OS_ERROR.search(str(error))
  if match is None:
    return None
  number = int(match['errno'])
  return OSError(number, os.strerror(number), match.groupdict().get('file'))


def _os_error_in(error: BaseException | None) -> OSError | None:
  """The first OS error of a refusing file system in `error` or its causes (libraries wrap them)."""
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    found = _as_os_error(error)
    if found is not None and found.errno in _NOT_WRITABLE + _DISK_FULL:
      return found
    error = error.__cause__ or error.__context__
  return None


def is_file_system_refusal(message: str, error: BaseException | None = None) -> bool:
  """True for a library's log message (or its exception) about a folder that is not writable or a full disk."""
  return _os_error_in(Exception(message)) is not None or _os_error_in(error) is not None


def file_system_refusal(error: BaseException, *, workdir: str | os.PathLike | None = None,
                        last_step: int | None = None) -> FileSystemRefused | None:
  """One line for a folder that is not writable or a full disk found in `error` (None for any other error).

  Args:
    error: what a command raised.
    workdir: the training workdir, when training: the line then names its
      last checkpoint, which an atomic orbax save leaves intact.
    last_step: that checkpoint's step (`train.checkpoint.saved_steps`); None when there is none.
  """
  found = _os_error_in(error)
  if found is None:
    return None
  path = pathlib.Path(found.filename) if found.filename else None
  if found.errno in _DISK_FULL:
    where = path or (f'into {workdir}' if workdir is not None else 'a file')
    problem, fix = f'the disk is full: writing {where} failed', 'free space there'
  elif path is not None and not path.exists():  # creating it failed: its folder is what refuses
    folder = next((parent for parent in path.parents if parent.exists()), path.parent)
    problem, fix = f'{folder} is not writable (creating {path} failed: {found.strerror})', 'make it writable'
  else:
    problem, fix = f'{path or "a file"} is not writable ({found.strerror})', 'make it writable'
  if workdir is None:
    return FileSystemRefused(f'{problem}: {fix} (or pick another folder) and rerun the same command')
  if last_step is None:
    return FileSystemRefused(f'{problem}; no checkpoint was written: {fix} and rerun the same command')
  return FileSystemRefused(f'{problem}; the last checkpoint (step {last_step}) is intact: {fix} and rerun the '
                           'same command to resume')


@contextlib.contextmanager
def explain_disk_full(what: str, needed_bytes: int | None = None) -> Iterator[None]:
  """Turns 'no space left on device' while writing `what` into one line with the size needed."""
  try:
    yield
  except OSError as error:
    if error.errno not in _DISK_FULL:
      raise
    size = f' (about {needed_bytes / 2**20:.0f} MiB)' if needed_bytes else ''
    raise FileSystemRefused(f'the disk is full: writing {what}{size} failed; free space there and rerun '
                            'the same command (it resumes)') from None
