"""`cnnrecon report`: a finished run's report, tables, grid and plots written again from its checkpoint."""

import hashlib

from cnnrecon import cli
from cnnrecon.evaluation import train_and_evaluate
from conftest import fails_with_one_line, smoke_config

REGENERATED = ('eval/results.csv', 'eval/results.md', 'eval/summary.json', 'grid.png', 'loss_curve.png')


def _digests(workdir):
  return {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in REGENERATED}


def test_report_rewrites_what_training_wrote(tmp_path):
  workdir = tmp_path / 'run'
  train_and_evaluate(smoke_config('denoise_seed_stack'), workdir, progress=False)
  written = _digests(workdir)
  report = (workdir / 'report.md').read_text()
  for name in REGENERATED + ('report.md',):
    (workdir / name).unlink()
  assert cli.main(['report', '--workdir', str(workdir)]) == 0
  assert _digests(workdir) == written  # the same model, images and metrics give the same bytes
  # report.md differs at most in the wall time (the final summary's vs the last logged step's).
  same = lambda text: [line for line in text.splitlines() if not line.startswith('- wall time')]
  assert same((workdir / 'report.md').read_text()) == same(report)


def test_report_of_an_unfinished_or_empty_workdir_is_one_line(tmp_path, capsys):
  fails_with_one_line(capsys, ['report', '--workdir', tmp_path / 'none'], 'holds no checkpoints')
  train_and_evaluate(smoke_config('denoise_seed_stack'), tmp_path / 'half', stop_at=3, progress=False)
  fails_with_one_line(capsys, ['report', '--workdir', tmp_path / 'half'], 'stopped at step 3 of 6', 'it resumes')
  assert not (tmp_path / 'half' / 'report.md').exists()
