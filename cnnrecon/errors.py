"""The one exception type for user mistakes.

The CLI prints a `CnnreconError` as a single line (no traceback) and exits
with status 2. Its message says what is wrong and how to fix it.
"""


class CnnreconError(Exception):
  """A user mistake: bad config value, unreadable file, impossible architecture."""
