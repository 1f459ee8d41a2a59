"""Runs cnnrecon commands in ONE process where the file system refuses writes; prints a JSON report.

`tests/test_faults_filesystem.py` starts this runner without CAP_DAC_OVERRIDE (so root cannot write
into a read-only folder either) or inside a mount namespace on a small tmpfs that it fills. One
interpreter serves every command: starting jax once per command would cost seconds each.

  python file_system_runner.py SPEC.json   ->  stdout: {"results": [{"argv", "status", "stderr", "changed"}]}

SPEC: {"setup": {"copy": [[src, dst], ...], "fill": FOLDER, "leave_bytes": N} (optional),
       "watch": [folders whose files must keep their bytes], "commands": [argv, ...]}
"""

import contextlib
import hashlib
import io
import json
import os
import pathlib
import shutil
import sys

from cnnrecon import cli


def file_hashes(folders) -> dict[str, str]:
  """SHA-256 of every file under `folders`."""
  hashes = {}
  for folder in map(pathlib.Path, folders):
    for path in sorted(folder.rglob('*')) if folder.exists() else []:
      if path.is_file() and not path.is_symlink():
        hashes[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
  return hashes


def fill(folder: str, leave_bytes: int) -> None:
  """Writes a file that takes all of `folder`'s file system but `leave_bytes`."""
  filler = pathlib.Path(folder) / 'filler'
  with contextlib.suppress(OSError), open(filler, 'wb', buffering=0) as stream:
    while True:
      stream.write(b'\0' * 65536)
  os.truncate(filler, max(filler.stat().st_size - leave_bytes, 0))


def run(argv: list[str], watch: list[str]) -> dict:
  """One command: its exit status, its stderr, and the watched files it changed or removed."""
  before = file_hashes(watch)
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
    status = cli.main(argv)
  after = file_hashes(watch)
  return {'argv': argv, 'status': status, 'stderr': stderr.getvalue(),
          'changed': sorted(path for path, digest in before.items() if after.get(path) != digest)}


def main(spec_path: str) -> None:
  spec = json.loads(pathlib.Path(spec_path).read_text())
  setup = spec.get('setup', {})
  for source, target in setup.get('copy', []):
    shutil.copytree(source, target)
  if 'fill' in setup:
    fill(setup['fill'], setup['leave_bytes'])
  results = [run(argv, spec['watch']) for argv in spec['commands']]
  print(json.dumps({'results': results}))


if __name__ == '__main__':
  main(sys.argv[1])
