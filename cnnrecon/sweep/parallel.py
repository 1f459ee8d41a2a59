"""`cnnrecon sweep --max-parallel N`: N worker processes on one machine share a sweep through the run locks."""

import os
import pathlib
import signal
import subprocess
import sys
import threading
import time
from typing import Iterable

from cnnrecon.errors import CnnreconError
from cnnrecon.sweep.run import load_sweep, read_status, run_name, select


def run_sweep_parallel(spec: str, root: str | pathlib.Path, *, workers: int, only: Iterable[str] = (),
                       shard: tuple[int, int] = (0, 1), retry_failed: bool = False, echo=print) -> dict[str, int]:
  """Runs this invocation's share of a sweep in `workers` processes on this machine.

  Each worker is a `cnnrecon sweep` of the same runs: it claims a free run
  through the workdir lock and skips those another worker holds, so every run
  trains once, on whichever worker is free first. Workers do not preallocate
  GPU memory (`XLA_PYTHON_CLIENT_PREALLOCATE=false`), so several share a GPU.
  SIGTERM and Ctrl-C reach every worker, which stop their runs with a checkpoint.

  Returns:
    Counts over this shard's runs once every worker has ended: `finished`,
    `failed`, `remaining` and `total`; `interrupted` is True after a Ctrl-C.
  """
  if workers < 1:
    raise CnnreconError(f'--max-parallel {workers} must be at least 1')
  runs = select(load_sweep(spec), only=only, shard=shard)
  command = [sys.executable, '-m', 'cnnrecon.cli', 'sweep', spec, '--root', str(root), '--shard',
             f'{shard[0]}/{shard[1]}', '--no-progress', '--no-report', *(f'--only={item}' for item in only),
             *(['--retry-failed', f'--started={time.time()!r}'] if retry_failed else [])]
  env = {**os.environ, 'XLA_PYTHON_CLIENT_PREALLOCATE': 'false'}
  processes = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for _ in range(workers)]
  relays = [threading.Thread(target=_relay, args=(process, f'[worker {index}] ', echo), daemon=True)
            for index, process in enumerate(processes)]
  for relay in relays:
    relay.start()
  previous = signal.signal(signal.SIGTERM, lambda signum, frame: [p.send_signal(signum) for p in processes])
  interrupted = False
  try:
    for process in processes:
      while process.poll() is None:
        try:
          process.wait()
        except KeyboardInterrupt:  # the workers got the Ctrl-C too: they stop with a checkpoint
          interrupted = True
  finally:
    signal.signal(signal.SIGTERM, previous)
    for relay in relays:
      relay.join()
  statuses = [read_status(pathlib.Path(root) / run_name(overrides)) for overrides in runs]
  counts = {key: sum(bool(status) and status['status'] == key for status in statuses) for key in ('finished', 'failed')}
  return {**counts, 'remaining': len(runs) - counts['finished'] - counts['failed'], 'total': len(runs),
          'interrupted': interrupted}


def _relay(process: subprocess.Popen, prefix: str, echo) -> None:
  """Echoes a worker's output lines with its prefix."""
  for line in process.stdout:
    echo(prefix + line.rstrip('\n'))
