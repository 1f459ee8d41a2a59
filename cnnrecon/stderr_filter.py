"""Drops the one traceback libraries print straight to fd 2 after a failed checkpoint write.

When one write of an orbax save fails (a read-only folder, a full disk), orbax
closes that save's event loop while tensorstore's other writes are in flight;
as each finishes, tensorstore's C++ thread calls back into the closed loop and
prints a `RuntimeError: Event loop is closed` traceback directly to fd 2, past
`sys.excepthook` and `sys.stderr`. The command says what failed in one line,
so `filtered_stderr` routes fd 2 through a pipe and a thread that drops
those tracebacks; everything else (progress bars included) is passed on as it
arrives. No library offers this: the output never reaches Python.
"""

import atexit
import contextlib
import os
import sys
import threading
from typing import Iterator

_START = b'Traceback (most recent call last):\n'
# What marks the closed-loop callback errors, even when several threads' tracebacks interleave.
_MARKS = (b'Event loop is closed', b'in call_soon_threadsafe')
_OWN_LINE = b'cnnrecon: '  # the command's own one-line message


class _Filter:
  """Reads what is written to fd 2 and writes it on to `out`, less the dropped tracebacks.

  Until the first of those tracebacks, everything passes (a traceback block
  once it is complete); from then on the command is failing and only its own
  `cnnrecon: ` line passes: several C++ threads print at once, and their
  lines interleave mid-line.
  """

  def __init__(self, source: int, out: int):
    self.source, self.out = source, out
    self.pending = b''  # bytes not yet passed on or dropped
    self.dropping = False

  def _write(self, data: bytes) -> None:
    while data:
      data = data[os.write(self.out, data):]

  def _drain(self, final: bool) -> None:
    if self.dropping:
      self._pass_own_lines(final)
      return
    while self.pending:
      start = self.pending.find(_START)
      if start < 0:
        # Keep a tail that could still grow into `_START`; pass on the rest.
        keep = 0 if final else next((n for n in range(min(len(_START), len(self.pending)), 0, -1)
                                     if _START.startswith(self.pending[-n:])), 0)
        self._write(self.pending[:len(self.pending) - keep])
        self.pending = self.pending[len(self.pending) - keep:]
        return
      self._write(self.pending[:start])
      self.pending = self.pending[start:]
      if any(mark in self.pending for mark in _MARKS):
        self.dropping = True
        self._pass_own_lines(final)
        return
      end = self._block_end()
      if end is None:
        if final:
          self._write(self.pending)
          self.pending = b''
        return
      self._write(self.pending[:end])
      self.pending = self.pending[end:]

  def _pass_own_lines(self, final: bool) -> None:
    """Drop mode: complete lines that are the command's own pass, everything else goes."""
    lines = self.pending.split(b'\n')
    self.pending = b'' if final else lines.pop()
    for line in lines:
      own = line.find(_OWN_LINE)
      if own >= 0:
        self._write(line[own:] + b'\n')

  def _block_end(self) -> int | None:
    """The end of the traceback block at the start of `pending`: after its first unindented line."""
    position = len(_START)
    while True:
      newline = self.pending.find(b'\n', position)
      if newline < 0:
        return None
      if not self.pending[position:position + 1].isspace():
        return newline + 1
      position = newline + 1

  def run(self) -> None:
    while True:
      data = os.read(self.source, 65536)
      if not data:
        break
      self.pending += data
      self._drain(final=False)
    self._drain(final=True)


_still_filtering: list = []  # (original fd 2, pipe read end, thread) of a filter left in place (drop mode)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
  """Inside the block, fd 2 goes through the filter; on exit everything written is passed on.

  If the tracebacks started, the filter stays in place until `finish()` (the
  CLI calls it before it exits): the in-flight writes keep printing for a
  while, and the command's one line still has to pass.
  """
  sys.stderr.flush()
  original = os.dup(2)
  read_end, write_end = os.pipe()
  os.dup2(write_end, 2)
  os.close(write_end)
  reader = _Filter(read_end, original)
  thread = threading.Thread(target=reader.run, name='stderr-filter', daemon=True)
  thread.start()
  _still_filtering.append((original, read_end, thread))
  atexit.register(finish)
  try:
    yield
  finally:
    if not reader.dropping:
      finish()


def finish() -> None:
  """Puts fd 2 back and passes on what the filter still holds (idempotent)."""
  while _still_filtering:
    original, read_end, thread = _still_filtering.pop()
    sys.stderr.flush()
    os.dup2(original, 2)  # closes the pipe's last write end: the thread drains and ends
    thread.join(timeout=5)
    os.close(read_end)
    os.close(original)
