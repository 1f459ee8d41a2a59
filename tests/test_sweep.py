"""Ablation sweeps: run names, resume after SIGKILL, shards and concurrent invocations, failures, reports."""

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import REPO, fails_with_one_line
from cnnrecon import cli
from cnnrecon.sweep import cross, product, run_name, run_sweep, sweep_report, zipped

ABLATION = '''
from cnnrecon.config import load_config_file
from cnnrecon.sweep import product

def get_config(arg=None):
  config = load_config_file({base!r})
  config.train.steps = {steps}
  config.train.checkpoint_every = 4
  config.train.eval_every = 4
  return config

def get_sweep():
  return product({{'model.features': [4, 8], 'seed': [0, 1]}}){extra}
'''


def _ablation(folder, *, steps=8, extra=''):
  path = folder / 'ablation.py'
  base = str(REPO / 'experiments' / 'denoise_seed_stack.py') + ':smoke'
  path.write_text(textwrap.dedent(ABLATION.format(base=base, steps=steps, extra=extra)))
  return path


def _sweep(*args, wait=True, status=0):
  command = [sys.executable, '-m', 'cnnrecon.cli', 'sweep', *map(str, args), '--no-progress']
  process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  if wait:
    out, err = process.communicate(timeout=600)
    assert process.returncode == status, err[-3000:]
    return out
  return process


def _results(root):
  return list(csv.DictReader((root / 'results.csv').open()))


def _sessions(workdir):
  return len(json.loads((workdir / 'run.json').read_text())['sessions'])


def test_axes_helpers_and_run_names():
  assert product({'a': [1, 2], 'b': ['x']}) == [{'a': 1, 'b': 'x'}, {'a': 2, 'b': 'x'}]
  assert zipped({'a': [1, 2], 'b': [3, 4]}) == [{'a': 1, 'b': 3}, {'a': 2, 'b': 4}]
  assert cross([{'a': 1}, {'a': 2}], [{'seed': 0}]) == [{'a': 1, 'seed': 0}, {'a': 2, 'seed': 0}]
  assert run_name({'model.depth': 5, 'model.residual': True, 'seed': 0}) == 'depth=5,residual=True,seed=0'
  assert run_name({'model.depth': 5, 'unet.depth': 2}) == 'model.depth=5,unet.depth=2'  # ambiguous leaves
  assert run_name({'data.train': 'a/b c'}) == 'train=abc'
  assert run_name({'task.fast_style.style_layers': ('relu1_2', 'relu2_2')}) == 'style_layers=relu1_2+relu2_2'


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  """An uninterrupted sweep of 4 runs plus one whose config is rejected (so it exits 1)."""
  folder = tmp_path_factory.mktemp('sweep')
  ablation = _ablation(folder, extra=" + [{'model.depth': 9}]")
  output = io.StringIO()
  with contextlib.redirect_stdout(output):  # in this process: no new interpreter to start
    assert cli.main(['sweep', str(ablation), '--root', str(folder / 'root'), '--no-progress']) == 1
  return folder, ablation, output.getvalue()


def test_sweep_trains_every_run_records_failures_and_reports(finished):
  folder, _, out = finished
  assert '4 finished, 1 failed, 0 remaining' in out
  rows = _results(folder / 'root')
  assert [row['run'] for row in rows] == ['features=4,seed=0', 'features=4,seed=1', 'features=8,seed=0',
                                          'features=8,seed=1', 'depth=9']
  assert [row['status'] for row in rows] == ['finished'] * 4 + ['failed']
  assert int(rows[0]['params']) < int(rows[2]['params']) and float(rows[0]['flops_per_image']) > 0
  status = json.loads((folder / 'root' / 'depth=9' / 'sweep_status.json').read_text())
  assert 'depth' in status['error'] and '\n' not in status['error']
  report = (folder / 'root' / 'results.md').read_text()
  assert '## Mean ± std over seeds' in report and '| features=4 | 2 |' in report
  assert (folder / 'root' / 'curves.png').is_file() and (folder / 'root' / 'psnr_vs_model_features.png').is_file()


def test_rerun_skips_finished_runs(finished):
  folder, ablation, _ = finished
  before = (folder / 'root' / 'results.csv').read_text()
  lines = []
  counts = run_sweep(str(ablation), folder / 'root', echo=lines.append)
  assert lines[0] == '[1/5] features=4,seed=0: finished' and counts['finished'] == 4 and counts['failed'] == 1
  sweep_report(folder / 'root')
  assert _sessions(folder / 'root' / 'features=4,seed=0') == 1  # not trained again
  assert (folder / 'root' / 'results.csv').read_text() == before


def test_sigkill_mid_run_then_rerun_equals_the_uninterrupted_sweep(finished):
  """Also the determinism check: an independent sweep of the same file gives the same results.csv."""
  folder, ablation, _ = finished
  killed = folder / 'killed'
  process = _sweep(ablation, '--root', killed, '--only', 'model.features=4', wait=False)
  checkpoints = killed / 'features=4,seed=1' / 'checkpoints'
  deadline = time.time() + 300
  while not (checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())):
    assert process.poll() is None and time.time() < deadline, 'the sweep ended before its second run saved'
    time.sleep(0.05)
  os.kill(process.pid, signal.SIGKILL)
  process.wait()
  assert not (killed / 'features=4,seed=1' / 'sweep_status.json').exists()  # killed mid-run
  _sweep(ablation, '--root', killed, '--only', 'model.features=4')
  assert _sessions(killed / 'features=4,seed=1') == 2  # resumed from its checkpoint
  resumed, straight = _results(killed)[:2], _results(folder / 'root')[:2]
  assert [row['run'] for row in resumed] == ['features=4,seed=0', 'features=4,seed=1']
  assert resumed == straight


def test_two_concurrent_shards_cover_every_run_exactly_once(tmp_path):
  ablation = _ablation(tmp_path)
  shards = [_sweep(ablation, '--root', tmp_path / 'root', '--only', 'seed=1', '--shard', f'{k}/2', wait=False)
            for k in (0, 1)]
  for shard in shards:
    _, err = shard.communicate(timeout=600)
    assert shard.returncode == 0, err[-3000:]
  rows = _results(tmp_path / 'root')
  assert [row['status'] for row in rows] == ['remaining', 'finished', 'remaining', 'finished']
  assert all(_sessions(tmp_path / 'root' / row['run']) == 1 for row in rows if row['status'] == 'finished')


def test_max_parallel_workers_share_the_sweep_and_retry_a_failed_run_once(finished):
  folder, ablation, _ = finished
  before = _results(folder / 'root')
  # Two runs left to claim (one worker starts per run left): the failed one and one whose end is unrecorded.
  (folder / 'root' / 'features=8,seed=1' / 'sweep_status.json').unlink()
  out = _sweep(ablation, '--root', folder / 'root', '--max-parallel', '2', '--retry-failed', status=1)
  assert '[worker 0]' in out and '[worker 1]' in out
  assert '4 finished, 1 failed, 0 remaining of this shard\'s 5 runs (2 workers)' in out
  status = json.loads((folder / 'root' / 'depth=9' / 'sweep_status.json').read_text())
  assert status['attempts'] == 2  # retried by one worker only, not once per worker
  assert _results(folder / 'root') == before  # the finished runs were left as they were


def test_a_run_claimed_by_another_process_is_left_to_it(tmp_path):
  ablation = _ablation(tmp_path)
  claimed = tmp_path / 'root' / 'features=8,seed=0'
  holder = subprocess.Popen([sys.executable, '-c', 'import sys, time; from cnnrecon.safety import WorkdirLock\n'
                             f'with WorkdirLock({str(claimed)!r}):\n  print("held", flush=True); time.sleep(600)'],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    counts = run_sweep(str(ablation), tmp_path / 'root', only=['model.features=8'], echo=lambda line: None)
  finally:
    holder.kill()
  assert counts == {'finished': 1, 'failed': 0, 'busy': 1, 'interrupted': 0, 'total': 2, 'stopped_by': None,
                    'failed_runs': []}
  assert not (claimed / 'metrics.jsonl').exists()


def test_sweep_bad_input_is_one_line(tmp_path, capsys):
  ablation = _ablation(tmp_path)
  fails_with_one_line(capsys, ['sweep', ablation, '--root', tmp_path / 'r', '--shard', '2/2'], 'K/N')
  fails_with_one_line(capsys, ['sweep', ablation, '--root', tmp_path / 'r', '--only', 'seed'], 'KEY=VALUE')
  no_sweep = tmp_path / 'no_sweep.py'
  no_sweep.write_text('def get_config(arg=None):\n  return None\n')
  fails_with_one_line(capsys, ['sweep', no_sweep, '--root', tmp_path / 'r'], 'get_sweep')
  fails_with_one_line(capsys, ['sweep-report', '--root', tmp_path / 'nothing'], 'sweep.json')


@pytest.mark.parametrize('path', sorted((REPO / 'experiments' / 'ablations').glob('*.py')), ids=lambda p: p.stem)
def test_shipped_ablations_load_with_every_variant(path):
  from cnnrecon.sweep import load_sweep
  from cnnrecon.sweep.run import run_config
  from cnnrecon.train.checks import validate_config
  runs = load_sweep(str(path))
  assert len(runs) >= 2
  assert len(load_sweep(f'{path}:smoke')) <= len(runs)  # get_sweep(arg): smoke may sweep fewer seeds
  for variant in ('', ':smoke'):
    for overrides in runs:  # every run's config is valid: no failure discovered only mid-sweep
      validate_config(run_config(f'{path}{variant}', overrides))


def test_a_signal_that_stops_a_run_stops_the_sweep(tmp_path, monkeypatch):
  import cnnrecon.sweep.run as sweep_run
  calls = []

  def stopped_by_sigterm(config, workdir, progress):
    calls.append(workdir.name)
    return {'step': 3, 'stopped_by': 'SIGTERM'}  # what train_and_evaluate returns after a SIGTERM checkpoint

  monkeypatch.setattr(sweep_run, 'train_and_evaluate', stopped_by_sigterm)
  counts = sweep_run.run_sweep(str(_ablation(tmp_path)), tmp_path / 'root', echo=lambda line: None)
  assert calls == ['features=4,seed=0'] and counts['interrupted'] == 1 and counts['finished'] == 0
  assert counts['stopped_by'] == 'SIGTERM'
  assert sweep_run.read_status(tmp_path / 'root' / 'features=4,seed=0') is None  # resumes on the next call
