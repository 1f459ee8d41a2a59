"""The exceptions the CLI turns into one line and an exit status.

The CLI prints a `CnnreconError` as a single line (no traceback) and exits
with its `exit_status`: 2 for user mistakes, 3 when training diverged (so a
scheduler can tell "diverged" from "bad input"). The message says what is
wrong and how to fix it.

Exit statuses: 1 a sweep finished with failed runs (`RunsFailed`), 2 a user
mistake, 3 training diverged, 4 the file system refused (not writable, disk
full: `FileSystemRefused`), 130 interrupted by SIGINT (Ctrl-C).
"""

EXIT_RUNS_FAILED = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_FILE_SYSTEM = 4


class CnnreconError(Exception):
  """A user mistake: bad config value, unreadable file, impossible architecture."""

  exit_status = EXIT_USAGE


class TrainingDiverged(CnnreconError):
  """A non-finite loss or gradient norm stopped training; nothing non-finite was saved."""

  exit_status = EXIT_DIVERGED


class CheckpointUnreadable(CnnreconError):
  """A damaged checkpoint (the message names it and the older steps to resume from)."""


class FileSystemRefused(CnnreconError):
  """A folder is not writable or the disk is full: nothing the user typed is wrong, the machine refused."""

  exit_status = EXIT_FILE_SYSTEM


class RunsFailed(CnnreconError):
  """A sweep ended with failed runs (the message names them)."""

  exit_status = EXIT_RUNS_FAILED
