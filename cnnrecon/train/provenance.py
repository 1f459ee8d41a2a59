"""`<workdir>/run.json`: what produced a run, one record per training session (a resume is a new session).

Each session records the cnnrecon version, the git commit of the source tree
and whether it had uncommitted changes, the Python / jax / jaxlib / flax /
optax / orbax versions, the platform, the device kinds and counts, the process
count, the seed, the command line, the start and end time (UTC) and the steps
it ran. `cnnrecon reproduce` compares these with today's to explain a result
that differs.
"""

import datetime
import importlib.metadata
import json
import pathlib
import platform
import subprocess
import sys
from collections import Counter

import jax
import ml_collections

from cnnrecon.io import write_file_atomic
from cnnrecon.version import __version__

_SOURCES = pathlib.Path(__file__).resolve().parents[1]  # the cnnrecon package folder

RUN_FILE = 'run.json'
PACKAGES = ('jax', 'jaxlib', 'flax', 'optax', 'orbax-checkpoint', 'numpy', 'grain', 'ml-collections')


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def package_versions() -> dict[str, str | None]:
  """Python's and the numerical packages' versions (None: not installed)."""
  versions = {'python': platform.python_version(), 'cnnrecon': __version__}
  for name in PACKAGES:
    try:
      versions[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      versions[name] = None
  return versions


def git_state(source: pathlib.Path = _SOURCES) -> dict[str, object]:
  """`{'commit', 'dirty'}` of the git checkout holding the cnnrecon sources (None each outside one)."""
  def git(*args):
    return subprocess.run(['git', *args], cwd=source, capture_output=True, text=True, timeout=30, check=True).stdout
  try:
    commit = git('rev-parse', 'HEAD').strip()
    dirty = bool(git('status', '--porcelain', '--untracked-files=no').strip())
  except (OSError, subprocess.SubprocessError):  # no git, or an installed copy outside a checkout
    return {'commit': None, 'dirty': None}
  return {'commit': commit, 'dirty': dirty}


def environment() -> dict[str, object]:
  """Versions, git state, platform and devices of this process (the parts of a session that can change)."""
  kinds = Counter(device.device_kind for device in jax.devices())
  return {
      'versions': package_versions(),
      'git': git_state(),
      'platform': {'system': platform.platform(), 'machine': platform.machine(), 'backend': jax.default_backend()},
      'devices': {'kinds': dict(kinds), 'count': jax.device_count(), 'local_count': jax.local_device_count()},
      'processes': jax.process_count(),
  }


def read_run_record(workdir: str | pathlib.Path) -> dict:
  """The workdir's `run.json` (an empty record for a run written before it existed)."""
  path = pathlib.Path(workdir) / RUN_FILE
  return json.loads(path.read_text()) if path.is_file() else {'sessions': []}


def start_session(workdir: pathlib.Path, config: ml_collections.ConfigDict, *, start_step: int) -> None:
  """Appends this session (environment, seed, command line, start time and step) to `run.json`."""
  record = read_run_record(workdir)
  record['seed'] = int(config.seed)
  record['sessions'].append({**environment(), 'command': list(sys.argv), 'started': _now(),
                             'from_step': int(start_step), 'ended': None, 'to_step': None, 'outcome': 'running'})
  write_file_atomic(workdir / RUN_FILE, json.dumps(record, indent=1) + '\n')


def end_session(workdir: pathlib.Path, *, step: int | None, outcome: str) -> None:
  """Closes the last session of `run.json`: end time, last step and how it ended ('finished', 'SIGTERM', ...)."""
  record = read_run_record(workdir)
  if not record['sessions']:
    return
  record['sessions'][-1].update(ended=_now(), to_step=step, outcome=outcome)
  write_file_atomic(workdir / RUN_FILE, json.dumps(record, indent=1) + '\n')
