"""Sweeps lose nothing (issue 18): root ownership, one-line refusals, exit statuses, workers that die with
their parent and get every signal."""

import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, fails_with_one_line
from cnnrecon import cli
from cnnrecon.sweep.parallel import worker_limit
from cnnrecon.train.checkpoint import saved_steps

ABLATION = '''
from cnnrecon.config import load_config_file

def get_config(arg=None):
  config = load_config_file({base!r})
  config.train.steps = {steps}
  config.train.log_every = 5
  config.train.eval_every = {steps}
  config.train.checkpoint_every = {steps}
  return config

def get_sweep():
  {body}
'''


def _ablation(folder, name='a.py', *, runs="[{'seed': 0}, {'seed': 1}]", steps=6, body=None):
  """A tiny ablation over the DnCNN smoke config; `body` replaces get_sweep's."""
  path = folder / name
  base = str(REPO / 'experiments' / 'denoise_dncnn.py') + ':smoke'
  path.write_text(textwrap.dedent(ABLATION.format(base=base, steps=steps, body=body or f'return {runs}')))
  return path


# Runs whose config is rejected at once: a sweep of them records its failures in well under a second.
FAILING = "[{'model.depth': 0}, {'model.depth': -1}]"


def _hashes(root: pathlib.Path) -> dict[str, str]:
  """sha256 of every file under `root` (nothing for a root that does not exist)."""
  return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
          for path in sorted(root.rglob('*')) if path.is_file()} if root.exists() else {}


def _refused(capsys, root, argv, *fragments, status=2):
  """Runs the CLI; one stderr line with `fragments`, `status`, and every file under `root` keeps its bytes."""
  before, existed = _hashes(root), root.exists()
  fails_with_one_line(capsys, argv, *fragments, status=status)
  assert _hashes(root) == before and root.exists() == existed


@pytest.fixture(scope='module')
def failed_sweep(tmp_path_factory):
  """A root holding the finished sweep of a.py: both its runs failed (exit 1 naming them)."""
  folder = tmp_path_factory.mktemp('owned')
  ablation, root = _ablation(folder, runs=FAILING), folder / 'root'
  assert cli.main(['sweep', str(ablation), '--root', str(root), '--no-progress']) == 1
  return folder, ablation, root


def test_failed_runs_end_the_sweep_with_exit_1_naming_them_after_the_report(failed_sweep, capsys):
  _, ablation, root = failed_sweep
  fails_with_one_line(capsys, ['sweep', ablation, '--root', root, '--no-progress'],
                      "2 of this shard's 2 runs failed: depth=0, depth=-1", '--retry-failed', status=1)
  assert (root / 'results.md').is_file() and (root / 'results.csv').is_file() and (root / 'curves.png').is_file()
  assert json.loads((root / 'sweep.json').read_text())['ablation'] == str(ablation.resolve())


def test_a_root_belongs_to_one_ablation_and_variant(failed_sweep, capsys):
  folder, ablation, root = failed_sweep
  other = _ablation(folder, 'b.py', runs=FAILING)
  for spec in (other, f'{ablation}:smoke'):
    for extra in ([], ['--max-parallel', '2']):
      _refused(capsys, root, ['sweep', spec, '--root', root, *extra], f'--root {root} holds the sweep of a.py (',
               'pick another --root')


def test_a_root_that_is_no_sweep_root_is_refused(tmp_path, capsys):
  ablation = _ablation(tmp_path)
  workdir = tmp_path / 'workdir'  # what a training run leaves at the top of its workdir
  (workdir / 'checkpoints' / '4').mkdir(parents=True)
  for name, text in (('config.json', '{}'), ('metrics.jsonl', '{"step": 2}\n'), ('.cnnrecon.lock', '')):
    (workdir / name).write_text(text)
  _refused(capsys, workdir, ['sweep', ablation, '--root', workdir], 'is a training workdir', 'pick another --root')
  _refused(capsys, workdir, ['sweep', ablation, '--root', workdir / 'checkpoints'], 'holds no sweep (it holds 4)')
  folder = tmp_path / 'photos'
  folder.mkdir()
  (folder / 'x.png').write_bytes(b'not a sweep')
  _refused(capsys, folder, ['sweep', ablation, '--root', folder], 'is not empty and holds no sweep')
  _refused(capsys, folder, ['sweep', ablation, '--root', folder / 'x.png'], 'is a file, not a folder')
  _refused(capsys, folder, ['sweep', ablation, '--root', folder / 'x.png' / 'r'], 'lies under')
  _refused(capsys, folder, ['sweep', ablation, '--root', folder / 'x.png', '--max-parallel', '2'], 'is a file')


def test_an_ablation_or_filter_that_cannot_work_is_one_line(tmp_path, capsys):
  root = tmp_path / 'root'
  broken = _ablation(tmp_path, 'broken.py', body="raise RuntimeError('no such axis')")
  _refused(capsys, root, ['sweep', broken, '--root', root], f'{broken}: get_sweep() failed: RuntimeError: no such axis')
  ablation = _ablation(tmp_path)
  _refused(capsys, root, ['sweep', ablation, '--root', root, '--only', 'foo.bar=1'],
           '--only foo.bar=1: no run of this sweep sets foo.bar; its keys are seed')
  _refused(capsys, root, ['sweep', ablation, '--root', root, '--only', 'seed=7'],
           '--only seed=7 matches no run of this sweep (seed takes 0, 1)')
  _refused(capsys, root, ['sweep', ablation, '--root', root, '--max-parallel', '2', '--only', 'seed=7'], 'seed=7')


def test_max_parallel_is_bounded_and_starts_no_more_workers_than_runs_left(failed_sweep, capsys):
  _, ablation, root = failed_sweep
  for count in (0, worker_limit() + 1, 1000):
    _refused(capsys, root, ['sweep', ablation, '--root', root, '--max-parallel', count],
             f'--max-parallel {count}: pass 1 to {worker_limit()}')
  before = _hashes(root)
  assert cli.main(['sweep', str(ablation), '--root', str(root), '--max-parallel', '2']) == 1  # both failed
  captured = capsys.readouterr()
  assert "0 finished, 2 failed, 0 remaining of this shard's 2 runs (0 workers)" in captured.out
  assert '[worker' not in captured.out and len(captured.err.strip().splitlines()) == 1
  assert {name: digest for name, digest in _hashes(root).items() if '/' in name} == {
      name: digest for name, digest in before.items() if '/' in name}  # the runs' folders are as they were


# The process-tree tests: runs far longer than the test, so that the workers are training when signalled.
LONG = 1_000_000


def _children(pid: int) -> list[int]:
  """The PIDs of `pid`'s living children (from /proc: psutil may not be installed)."""
  found = []
  for stat in pathlib.Path('/proc').glob('[0-9]*/stat'):
    try:
      fields = stat.read_text().rsplit(')', 1)[1].split()
    except OSError:  # gone meanwhile
      continue
    if int(fields[1]) == pid and fields[0] != 'Z':
      found.append(int(stat.parent.name))
  return found


def _alive(pid: int) -> bool:
  try:
    return pathlib.Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
  except OSError:
    return False


@pytest.fixture
def started(tmp_path):
  """PIDs the test started; any still alive at teardown (a failed test) are killed, or they would train on."""
  pids = []
  yield pids
  for pid in pids:
    try:  # still a sweep of this test's folder, not a later process that got the same PID
      ours = str(tmp_path) in pathlib.Path(f'/proc/{pid}/cmdline').read_text()
    except OSError:
      continue
    if ours and _alive(pid):
      os.kill(pid, signal.SIGKILL)


def _start_training_sweep(tmp_path, started):
  """A `--max-parallel 2` sweep of 2 long runs, in its own session; returns (process, worker PIDs, root)."""
  root = tmp_path / 'root'
  command = [sys.executable, '-m', 'cnnrecon.cli', 'sweep', str(_ablation(tmp_path, steps=LONG)), '--root', str(root),
             '--max-parallel', '2', '--no-progress']
  # A session of its own: a signal sent to the parent reaches nothing else (no terminal's process group).
  parent = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
  started.append(parent.pid)
  deadline = time.time() + 120
  workers = []
  metrics = [root / f'seed={seed}' / 'metrics.jsonl' for seed in (0, 1)]
  while not (len(workers) == 2 and all(path.is_file() and path.stat().st_size for path in metrics)):
    if parent.poll() is not None or time.time() > deadline:
      parent.kill()
      out, err = parent.communicate()
      pytest.fail(f'the sweep did not get both runs training: {out[-2000:]} {err[-2000:]}')
    workers = _children(parent.pid) or workers
    started.extend(set(workers) - set(started))
    time.sleep(0.2)
  return parent, workers, root


def _last_session(workdir: pathlib.Path) -> dict:
  return json.loads((workdir / 'run.json').read_text())['sessions'][-1]


@pytest.mark.skipif(worker_limit() < 2 or not sys.platform.startswith('linux'), reason='needs 2 cores and /proc')
def test_sigint_to_the_parent_only_stops_every_worker_with_a_checkpoint(tmp_path, started):
  parent, workers, root = _start_training_sweep(tmp_path, started)
  assert len(workers) == 2
  os.kill(parent.pid, signal.SIGINT)
  out, err = parent.communicate(timeout=120)
  assert parent.returncode == 130, err[-3000:]
  assert 'Traceback' not in out + err and not any(map(_alive, workers))
  for seed in (0, 1):  # each run stopped at the step where the signal found it, and saved that step
    session = _last_session(root / f'seed={seed}')
    assert session['outcome'] == 'SIGINT' and saved_steps(root / f'seed={seed}') == [session['to_step']]
    assert f"seed={seed} at step {session['to_step']}" in out
  assert 'SIGINT, passed on to every worker: the workers have ended; checkpoints to resume from:' in out


@pytest.mark.skipif(worker_limit() < 2 or not sys.platform.startswith('linux'), reason='needs 2 cores and /proc')
def test_workers_die_with_a_sigkilled_parent_and_keep_a_checkpoint(tmp_path, started):
  parent, workers, root = _start_training_sweep(tmp_path, started)
  os.kill(parent.pid, signal.SIGKILL)
  parent.communicate()
  deadline = time.time() + 10
  while any(map(_alive, workers)) and time.time() < deadline:
    time.sleep(0.1)
  assert not any(map(_alive, workers)), 'a worker outlived its SIGKILLed parent by 10 s'
  for seed in (0, 1):  # the kernel's SIGTERM made each one stop its run with a checkpoint
    session = _last_session(root / f'seed={seed}')
    assert session['outcome'] == 'SIGTERM' and saved_steps(root / f'seed={seed}') == [session['to_step']]
