"""The exceptions the CLI turns into one line and an exit status.

The CLI prints a `CnnreconError` as a single line (no traceback) and exits
with its `exit_status`: 2 for user mistakes, 3 when training diverged (so a
scheduler can tell "diverged" from "bad input"). The message says what is
wrong and how to fix it.
"""

EXIT_USAGE = 2
EXIT_DIVERGED = 3


class CnnreconError(Exception):
  """A user mistake: bad config value, unreadable file, impossible architecture."""

  exit_status = EXIT_USAGE


class TrainingDiverged(CnnreconError):
  """A non-finite loss or gradient norm stopped training; nothing non-finite was saved."""

  exit_status = EXIT_DIVERGED


class CheckpointUnreadable(CnnreconError):
  """A damaged checkpoint (the message names it and the older steps to resume from)."""
