"""`cnnrecon report` and `cnnrecon reproduce`: a finished run's report written again, and the run trained again."""

import hashlib
import json
import shutil

import pytest

from cnnrecon import cli
from cnnrecon.evaluation import train_and_evaluate
from cnnrecon.evaluation.reproduce import compare_runs, describe
from conftest import fails_with_one_line, smoke_config

REGENERATED = ('eval/results.csv', 'eval/results.md', 'eval/summary.json', 'grid.png', 'loss_curve.png')


@pytest.fixture
def finished(seed_stack_run):
  """A finished seed-stack smoke run (conftest's, shared: read it, do not change it)."""
  return seed_stack_run


def _digests(workdir):
  return {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in REGENERATED}


def test_report_rewrites_what_training_wrote(finished, tmp_path):
  workdir = shutil.copytree(finished, tmp_path / finished.name)  # the report's title names the workdir
  written = _digests(workdir)
  report = (workdir / 'report.md').read_text()
  for name in REGENERATED + ('report.md',):
    (workdir / name).unlink()
  assert cli.main(['report', '--workdir', str(workdir)]) == 0
  assert _digests(workdir) == written  # the same model, images and metrics give the same bytes
  # report.md differs at most in the wall time (the final summary's vs the last logged step's).
  same = lambda text: [line for line in text.splitlines() if not line.startswith('- wall time')]
  assert same((workdir / 'report.md').read_text()) == same(report)


def test_reproduce_is_bitwise_on_cpu_and_says_what_changed_otherwise(finished, tmp_path, capsys):
  assert cli.main(['reproduce', str(finished), '--workdir', str(tmp_path / 'again'), '--no-progress']) == 0
  assert 'bit for bit' in capsys.readouterr().out
  assert json.loads((tmp_path / 'again' / 'reproduction.json').read_text())['identical'] is True
  # An original logged under another jax with another loss at step 2: both are reported.
  altered = shutil.copytree(finished, tmp_path / 'altered')
  record = json.loads((altered / 'run.json').read_text())
  record['sessions'][0]['versions']['jax'] = '0.4.0'
  (altered / 'run.json').write_text(json.dumps(record))
  lines = (altered / 'metrics.jsonl').read_text().splitlines()
  first = json.loads(lines[0])
  first['train/loss'] += 0.5
  (altered / 'metrics.jsonl').write_text('\n'.join([json.dumps(first), *lines[1:]]) + '\n')
  result = compare_runs(altered, tmp_path / 'again')
  assert not result['identical'] and not result['params_max_abs_diff']  # the parameters were not altered
  assert result['metric_differences'] == {f"train/loss@{first['step']}": {
      'original': first['train/loss'], 'again': first['train/loss'] - 0.5, 'abs_diff': pytest.approx(0.5)}}
  text = describe(result)
  assert f"train/loss@{first['step']}" in text and 'versions.jax 0.4.0 ->' in text


def test_unfinished_empty_or_busy_workdirs_are_one_line_errors(finished, tmp_path, capsys):
  fails_with_one_line(capsys, ['report', '--workdir', tmp_path / 'none'], 'holds no checkpoints')
  train_and_evaluate(smoke_config('denoise_seed_stack'), tmp_path / 'half', stop_at=3, progress=False)
  fails_with_one_line(capsys, ['report', '--workdir', tmp_path / 'half'], 'stopped at step 3 of 6', 'it resumes')
  assert not (tmp_path / 'half' / 'report.md').exists()
  fails_with_one_line(capsys, ['reproduce', tmp_path / 'half', '--workdir', tmp_path / 'x'], 'stopped at step 3')
  fails_with_one_line(capsys, ['reproduce', finished, '--workdir', tmp_path / 'half'], 'exists and is not empty')
  fails_with_one_line(capsys, ['reproduce', tmp_path / 'none', '--workdir', tmp_path / 'x'], 'no config.json')
  assert not (tmp_path / 'x').exists()
