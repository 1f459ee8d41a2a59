"""Lose nothing: each fault of issue 8 gives its one line and exit status, and what existed keeps its bytes."""

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from cnnrecon import cli
from cnnrecon.evaluation import load_trained
from cnnrecon.train import checkpoint
from conftest import REPO, fails_with_one_line, run_cli

SMOKE = ['--config', 'experiments/denoise_dncnn.py:smoke', '--no-progress']


def _snapshot(folder: pathlib.Path) -> dict[str, bytes]:
  """Every file under `folder` (relative path -> bytes), the lock file excepted."""
  return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob('*'))
          if path.is_file() and path.name != '.cnnrecon.lock'}


def _steps(workdir: pathlib.Path) -> list[int]:
  return sorted(int(path.name) for path in (workdir / 'checkpoints').iterdir() if path.name.isdigit())


def _assert_checkpoint_holds_step(workdir: pathlib.Path, step: int) -> None:
  """The checkpoint named `step` holds the state after `step` updates, and the log stops there."""
  with checkpoint.open_manager(workdir, read_only=True) as manager:
    state = checkpoint.restore_arrays(manager, step)
  counts = [int(leaf) for path, leaf in jax.tree_util.tree_flatten_with_path(state['opt_state'])[0]
            if 'count' in jax.tree_util.keystr(path)]
  assert int(state['step']) == step and counts and set(counts) == {step}, (int(state['step']), counts)
  assert _logged_steps(workdir)[-1] == step


def _logged_steps(workdir: pathlib.Path) -> list[int]:
  path = workdir / 'metrics.jsonl'
  if not path.exists():
    return []
  return [json.loads(line)['step'] for line in path.read_text().splitlines() if '"train/loss"' in line]


def _train_process(workdir, *extra) -> subprocess.Popen:
  """`cnnrecon train` in its own process (so it can receive signals)."""
  return subprocess.Popen([sys.executable, '-m', 'cnnrecon.cli', 'train', *SMOKE, '--workdir', str(workdir),
                           *map(str, extra)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(workdir: pathlib.Path, step: int, process: subprocess.Popen, timeout: float = 120) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if process.poll() is not None:
      raise AssertionError(f'training ended early: {process.communicate()}')
    if _logged_steps(workdir) and max(_logged_steps(workdir)) >= step:
      return
    time.sleep(0.05)
  raise AssertionError(f'step {step} not reached in {timeout} s')


# -------------------------------------------------------------------- non-finite values

def test_exploding_learning_rate_stops_with_status_3_and_saves_nothing_non_finite(tmp_path, capsys):
  err = fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path, '--config.train.steps=60',
                                     '--config.train.eval_every=20', '--config.optim.learning_rate=1e6'],
                            'training diverged at step', 'no checkpoint was written', status=3)
  assert 'skip_step' in err
  assert _steps(tmp_path) == []
  assert all(np.isfinite(value) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()
             for key, value in json.loads(line).items() if key != 'step')


def test_a_diverging_resume_keeps_the_good_checkpoint(tmp_path, capsys):
  assert cli.main(['train', *SMOKE, '--workdir', str(tmp_path), '--config.train.steps=8', '--stop-at', '4']) == 0
  capsys.readouterr()
  good = _snapshot(tmp_path / 'checkpoints')
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path, '--config.train.steps=20', '--force',
                               '--config.optim.learning_rate=1e6'],
                      'a plain rerun resumes from the latest checkpoint, step 4',
                      'the best by validation score is step 3', '--from-step 3', status=3)
  assert _snapshot(tmp_path / 'checkpoints') == good
  restored = load_trained(tmp_path)
  assert restored.step in (3, 4)
  assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(restored.variables))


def test_skip_step_drops_non_finite_updates_and_gives_up_after_ten(tmp_path, capsys):
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path, '--config.train.steps=40',
                               '--config.train.eval_every=20', '--config.optim.learning_rate=1e6',
                               '--config.train.on_nonfinite=skip_step', '--config.train.log_every=1'],
                      'steps in a row skipped', status=3)
  skipped = [json.loads(line).get('train/skipped_steps') for line in
             (tmp_path / 'metrics.jsonl').read_text().splitlines() if 'train/skipped_steps' in line]
  assert skipped and skipped[-1] >= 1  # counted and logged before giving up


# -------------------------------------------------------------------- signals and SIGKILL

SIGNAL_FLAGS = ['--config.train.steps=40', '--config.train.eval_every=20', '--config.train.log_every=1']


def _interrupt(workdir: pathlib.Path, signum: int, expected_status: int) -> int:
  """Starts a run, sends `signum` after step 5, checks the one line; returns the step it stopped at."""
  process = _train_process(workdir, *SIGNAL_FLAGS)
  _wait_for_step(workdir, 5, process)
  process.send_signal(signum)
  stdout, stderr = process.communicate(timeout=120)
  assert process.returncode == expected_status, stderr
  assert 'Traceback' not in stderr
  stopped = int(stdout.split('stopped at step ')[1].split()[0])
  assert f'{signal.Signals(signum).name}: stopped at step {stopped} with a checkpoint' in stdout
  assert max(_steps(workdir)) == stopped
  return stopped


def test_sigterm_saves_the_current_step_and_resuming_equals_an_uninterrupted_run(tmp_path):
  _interrupt(tmp_path / 'cut', signal.SIGTERM, 0)
  # The resume and the reference run in this process (no new interpreter needed to read a checkpoint).
  assert cli.main(['train', *SMOKE, *SIGNAL_FLAGS, '--workdir', str(tmp_path / 'cut')]) == 0
  assert cli.main(['train', *SMOKE, *SIGNAL_FLAGS, '--workdir', str(tmp_path / 'straight')]) == 0
  for a, b in zip(jax.tree.leaves(load_trained(tmp_path / 'cut', step=40).variables),
                  jax.tree.leaves(load_trained(tmp_path / 'straight', step=40).variables)):
    np.testing.assert_array_equal(a, b)
  assert _logged_steps(tmp_path / 'cut') == list(range(1, 41))  # no duplicate log lines


def test_sigint_saves_the_current_step_and_exits_130(tmp_path):
  stopped = _interrupt(tmp_path, signal.SIGINT, 130)
  _assert_checkpoint_holds_step(tmp_path, stopped)


def test_a_second_signal_during_the_save_changes_nothing(tmp_path):
  process = _train_process(tmp_path, '--config.train.steps=400', '--config.train.eval_every=200',
                           '--config.train.log_every=1')
  _wait_for_step(tmp_path, 3, process)
  process.send_signal(signal.SIGTERM)
  process.send_signal(signal.SIGINT)
  stdout, stderr = process.communicate(timeout=120)
  # Python runs pending handlers by signal number, so either may count as the first.
  assert process.returncode in (0, 130), stderr
  assert stdout.count('stopped at step') == 1 and 'Traceback' not in stderr
  _assert_checkpoint_holds_step(tmp_path, max(_steps(tmp_path)))


def test_sigkill_loses_at_most_checkpoint_every_steps_and_the_log_has_no_duplicates(tmp_path):
  every = 4
  process = _train_process(tmp_path, '--config.train.steps=400', '--config.train.eval_every=200',
                           '--config.train.log_every=1', f'--config.train.checkpoint_every={every}')
  _wait_for_step(tmp_path, 14, process)
  process.kill()
  process.communicate()
  reached, saved = max(_logged_steps(tmp_path)), max(_steps(tmp_path))
  assert reached - saved <= every + 1, (reached, saved)  # +1: a save may still have been in flight
  resumed = run_cli('train', *SMOKE, '--workdir', tmp_path, '--config.train.steps=400',
                    '--config.train.eval_every=200', '--config.train.log_every=1',
                    f'--config.train.checkpoint_every={every}', '--stop-at', saved + 2)
  assert resumed.returncode == 0, resumed.stderr
  assert _logged_steps(tmp_path) == list(range(1, saved + 3))


def test_restart_before_the_first_checkpoint_leaves_no_duplicate_log_lines(tmp_path):
  process = _train_process(tmp_path, '--config.train.steps=400', '--config.train.eval_every=200',
                           '--config.train.log_every=1', '--config.train.checkpoint_every=300')
  _wait_for_step(tmp_path, 3, process)
  process.kill()
  process.communicate()
  assert not (tmp_path / 'checkpoints').exists() or _steps(tmp_path) == []
  again = run_cli('train', *SMOKE, '--workdir', tmp_path, '--config.train.steps=400', '--config.train.eval_every=200',
                  '--config.train.log_every=1', '--config.train.checkpoint_every=300', '--stop-at', 5)
  assert again.returncode == 0, again.stderr
  assert _logged_steps(tmp_path) == [1, 2, 3, 4, 5]


def test_wall_time_is_summed_over_segments_and_kept_by_a_report_rerun(tmp_path):
  flags = [*SMOKE, '--workdir', str(tmp_path), '--config.train.steps=6']
  assert cli.main(['train', *flags, '--stop-at', '3']) == 0
  assert cli.main(['train', *flags]) == 0
  logged = [json.loads(line) for line in (tmp_path / 'metrics.jsonl').read_text().splitlines()]
  times = [record['train/wall_time_s'] for record in logged if 'train/wall_time_s' in record]
  assert times == sorted(times) and times[-1] > times[0] > 0
  (tmp_path / 'report.md').unlink()  # as if killed while writing the report
  assert cli.main(['train', *flags]) == 0
  report = (tmp_path / 'report.md').read_text()
  wall = float(report.split('- wall time: ')[1].split(' s')[0])
  assert wall == pytest.approx(times[-1], abs=0.1) and wall > 0


# -------------------------------------------------------------------- one writer per workdir

def test_a_second_run_on_a_busy_workdir_exits_2_and_touches_nothing(dncnn_smoke_run, tmp_path, capsys):
  # Another process holds the workdir's lock (as a training run does from its first step to its report);
  # that is all a second run can see of the first, so no training is needed to test it.
  workdir = tmp_path / 'busy'
  shutil.copytree(dncnn_smoke_run, workdir)
  holder = subprocess.Popen([sys.executable, '-c', 'import sys; from cnnrecon.safety import WorkdirLock\n'
                             f'with WorkdirLock({str(workdir)!r}):\n  print("held", flush=True); sys.stdin.read()'],
                            cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    before = _snapshot(workdir)
    for command in (['train', *SMOKE, '--workdir', workdir, '--config.seed=1', '--config.train.steps=80'],
                    ['report', '--workdir', workdir]):
      err = fails_with_one_line(capsys, command, f'is in use by PID {holder.pid}')
      assert 'Traceback' not in err
    assert _snapshot(workdir) == before
  finally:
    holder.communicate('', timeout=60)
  assert holder.returncode == 0
  assert cli.main(['train', *SMOKE, '--workdir', str(workdir)]) == 0  # free again: the finished run is kept
  assert json.loads((workdir / 'config.json').read_text())['seed'] == 0


def test_train_refuses_a_folder_that_is_not_a_workdir(tmp_path, capsys):
  (tmp_path / 'config.json.bak').write_text('mine')
  (tmp_path / 'report.md').write_text('my notes')
  before = _snapshot(tmp_path)
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path], 'not a cnnrecon workdir')
  assert _snapshot(tmp_path) == before


def test_workdir_under_a_file_is_one_line(tmp_path, capsys):
  (tmp_path / 'file').write_text('x')
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path / 'file' / 'run'], 'is a file')


# -------------------------------------------------------------------- outputs never clobber

@pytest.fixture(scope='module')
def trained(tmp_path_factory, dncnn_smoke_run):
  """A smoke-trained DnCNN workdir (this module's copy of the run's shared one)."""
  workdir = tmp_path_factory.mktemp('faults') / 'trained'
  shutil.copytree(dncnn_smoke_run, workdir)
  return workdir


def _png(path: pathlib.Path, value: int = 100) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.full((32, 32), value, np.uint8)).save(path)
  return path


def test_denoise_never_overwrites_its_input(trained, tmp_path, capsys):
  image = _png(tmp_path / 'dir' / 'x.png')
  before = image.read_bytes()
  fails_with_one_line(capsys, ['denoise', image, '--workdir', trained, '--out', tmp_path / 'dir'],
                      'would replace the input')
  assert image.read_bytes() == before


def test_denoise_keeps_same_named_inputs_apart_and_refuses_existing_outputs(trained, tmp_path, capsys):
  a, b = _png(tmp_path / 'a' / 'x.png', 50), _png(tmp_path / 'b' / 'x.png', 200)
  assert cli.main(['denoise', str(a), str(b), '--workdir', str(trained), '--out', str(tmp_path / 'o')]) == 0
  outputs = {path.name: np.asarray(Image.open(path)).mean() for path in (tmp_path / 'o').iterdir()}
  assert set(outputs) == {'x.png', 'x-2.png'} and outputs['x.png'] < outputs['x-2.png']
  capsys.readouterr()
  before = _snapshot(tmp_path / 'o')
  fails_with_one_line(capsys, ['denoise', a, '--workdir', trained, '--out', tmp_path / 'o'], '--overwrite')
  assert _snapshot(tmp_path / 'o') == before
  assert cli.main(['denoise', str(a), '--workdir', str(trained), '--out', str(tmp_path / 'o'), '--overwrite']) == 0


def test_outputs_that_are_files_are_one_line(trained, tmp_path, capsys):
  (tmp_path / 'f').write_text('x')
  image = _png(tmp_path / 'x.png')
  fails_with_one_line(capsys, ['denoise', image, '--workdir', trained, '--out', tmp_path / 'f'], 'is a file')
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--out', tmp_path / 'f', '--no-baselines'],
                      'is a file')
  assert (tmp_path / 'f').read_text() == 'x'


def test_eval_without_out_keeps_the_training_tables(trained, capsys):
  before = _snapshot(trained / 'eval')
  assert cli.main(['eval', '--workdir', str(trained), '--no-baselines', '--sigma', '50']) == 0
  assert cli.main(['eval', '--workdir', str(trained), '--no-baselines']) == 0
  assert _snapshot(trained / 'eval') == before
  assert (trained / 'eval-1' / 'summary.json').exists() and (trained / 'eval-2' / 'summary.json').exists()
  capsys.readouterr()
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--no-baselines', '--out', trained / 'eval-1'],
                      '--overwrite')


def test_eval_on_images_smaller_than_the_ssim_window_is_one_line(trained, tmp_path, capsys):
  _png(tmp_path / 'tiny' / 'a.png')
  Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / 'tiny' / 'b.png')
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--data', tmp_path / 'tiny', '--no-baselines',
                               '--out', tmp_path / 'out'], '10x10', 'SSIM')


# -------------------------------------------------------------------- validation before work

@pytest.mark.parametrize('argv, fragments', [
    (['--config.data.patch_size=5000'], ('data.patch_size=5000', 'largest side')),
    (['--config.data.eval_crop=5000'], ('data.eval_crop=5000', 'largest side')),
    (['--config.data.patch_size=400', '--config.data.batch_size=100000', '--config.model.features=64'],
     ('GiB of activations',)),
    (['--config.seed=-1'], ('seed=-1',)),
    (['--config.train.steps=6', '--stop-at', '100'], ('--stop-at 100', 'train.steps=6')),
    (['--config.train.on_nonfinite=ignore'], ('train.on_nonfinite',)),
    (['--config.train.loss=ssim', '--config.data.patch_size=8', '--config.model.name=dncnn'],
     ('train.loss=ssim needs patches of at least 11x11',)),
])
def test_impossible_values_fail_before_any_work(tmp_path, capsys, argv, fragments):
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path / 'w', *argv], *fragments)
  assert not (tmp_path / 'w' / 'checkpoints').exists()


@pytest.mark.parametrize('sigma', ['nan', 'inf', '-5'])
def test_eval_refuses_a_non_finite_or_negative_sigma(trained, tmp_path, capsys, sigma):
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--sigma', sigma, '--out', tmp_path / 'o'], '--sigma')


@pytest.mark.parametrize('body, fragment', [
    ('  raise KeyError("oops")\n', 'KeyError'),
    ('  return {"seed": 0}\n', 'not an ml_collections.ConfigDict'),
])
def test_broken_experiment_files_are_one_line(tmp_path, capsys, body, fragment):
  (tmp_path / 'exp.py').write_text(f'def get_config(arg=None):\n{body}')
  fails_with_one_line(capsys, ['train', '--config', tmp_path / 'exp.py', '--workdir', tmp_path / 'w'], fragment)


def test_weights_import_refuses_nan_weights_and_a_negative_sigma(tmp_path, capsys):
  from tests.dncnn_weight_files import random_dncnn, write_matconvnet
  layers = random_dncnn(0, widths=[8, 8, 8, 1])
  write_matconvnet(tmp_path / 'good_sigma25.mat', layers)
  fails_with_one_line(capsys, ['weights', 'import', '--format', 'matconvnet', tmp_path / 'good_sigma25.mat',
                               '--sigma', '-5', '--workdir', tmp_path / 'w1'], '--sigma -5')
  first = layers[0]
  first_kernel = next(key for key, value in first.items() if isinstance(value, np.ndarray) and value.ndim == 4)
  first[first_kernel] = np.full_like(first[first_kernel], np.nan)
  write_matconvnet(tmp_path / 'nan_sigma25.mat', layers)
  fails_with_one_line(capsys, ['weights', 'import', '--format', 'matconvnet', tmp_path / 'nan_sigma25.mat',
                               '--workdir', tmp_path / 'w2'], 'non-finite')
  assert not (tmp_path / 'w1' / 'checkpoints').exists() and not (tmp_path / 'w2' / 'checkpoints').exists()


# -------------------------------------------------------------------- damaged checkpoints, full disks

def test_a_bit_flipped_checkpoint_is_one_line_and_from_step_resumes(dncnn_smoke_run, tmp_path):
  tmp_path = tmp_path / 'run'
  shutil.copytree(dncnn_smoke_run, tmp_path)  # a finished smoke run, trained once for the session
  latest = max(_steps(tmp_path))
  data_file = sorted((tmp_path / 'checkpoints' / str(latest) / 'state' / 'd').iterdir())[0]
  damaged = bytearray(data_file.read_bytes())
  damaged[len(damaged) // 2] ^= 0xFF
  data_file.write_bytes(bytes(damaged))
  for command in (['eval', '--workdir', tmp_path, '--no-baselines', '--out', tmp_path / 'o'],
                  ['train', *SMOKE, '--workdir', tmp_path, '--config.train.steps=9', '--force']):
    result = run_cli(*command)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f'checkpoints/{latest} is unreadable' in result.stderr and '--from-step' in result.stderr
  older = max(step for step in _steps(tmp_path) if step < latest)
  assert cli.main(['train', *SMOKE, '--workdir', str(tmp_path), '--config.train.steps=9', '--force',
                   '--from-step', str(older)]) == 0
  assert (tmp_path / 'discarded_checkpoints' / str(latest)).is_dir()  # moved aside, not deleted


def test_a_full_disk_is_one_line_naming_where(tmp_path, capsys, monkeypatch):
  from cnnrecon.train import checkpoint

  def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

  monkeypatch.setattr(checkpoint, 'save', disk_full)
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path], 'the disk is full', str(tmp_path),
                      status=4)  # a real full disk: test_faults_filesystem.py
