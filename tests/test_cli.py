"""The CLI end to end: train/eval/denoise, and one-line errors with exit status 2."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cnnrecon import cli
from conftest import fails_with_one_line, run_cli, smoke_config

SMOKE = ['--config', 'experiments/denoise_dncnn.py:smoke', '--no-progress']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, dncnn_smoke_run):
  """A workdir with a smoke-trained DnCNN (this module's copy of the run's shared one)."""
  workdir = tmp_path_factory.mktemp('cli') / 'trained'
  shutil.copytree(dncnn_smoke_run, workdir)
  return workdir


@pytest.fixture
def image_folder(tmp_path):
  """Two small gray PNGs cropped from scikit-image's camera."""
  from skimage import data
  folder = tmp_path / 'images'
  folder.mkdir()
  camera = data.camera()
  Image.fromarray(camera[100:164, 200:264]).save(folder / 'a.png')
  Image.fromarray(camera[300:348, 100:172]).save(folder / 'b.png')
  return folder


def test_eval_writes_tables_with_baselines(trained, image_folder, tmp_path, capsys):
  out = tmp_path / 'eval'
  assert cli.main(['eval', '--workdir', str(trained), '--data', str(image_folder), '--sigma', '25',
                   '--seed', '0', '--out', str(out)]) == 0
  printed = capsys.readouterr().out
  assert 'nl_means' in printed and 'a.png' in printed
  summary = json.loads((out / 'summary.json').read_text())
  assert set(summary) == {'model', 'noisy', 'baselines'}
  assert set(summary['baselines']) == {'nl_means', 'tv', 'wavelet'}
  # Unclipped AWGN at sigma=25 gives about 20.2 dB on any image.
  assert 19.5 < summary['noisy']['psnr'] < 21.0
  assert summary['baselines']['nl_means']['psnr'] > summary['noisy']['psnr'] + 4
  assert (out / 'results.csv').exists() and (out / 'results.md').exists()
  # The grid: noisy | denoised | clean of both images, centre-cropped to the smaller side (48 px), 2-px lines.
  grid = np.asarray(Image.open(out / 'grid.png'))
  assert grid.shape[1] == 3 * (48 + 2) + 2 and grid.shape[0] > 2 * (48 + 2) + 2


def test_eval_is_reproducible_by_seed(trained, image_folder, tmp_path):
  runs = []
  for name, seed in (('a', 3), ('b', 3), ('c', 4)):
    assert cli.main(['eval', '--workdir', str(trained), '--data', str(image_folder), '--seed', str(seed),
                     '--no-baselines', '--out', str(tmp_path / name)]) == 0
    runs.append(json.loads((tmp_path / name / 'summary.json').read_text()))
  assert runs[0] == runs[1]
  assert runs[0]['noisy'] != runs[2]['noisy']


def test_denoise_writes_pngs(trained, image_folder, tmp_path):
  out = tmp_path / 'out'
  assert cli.main(['denoise', str(image_folder / 'a.png'), str(image_folder / 'b.png'),
                   '--workdir', str(trained), '--out', str(out)]) == 0
  assert np.asarray(Image.open(out / 'b.png')).shape == (48, 72)


def test_train_report_and_summary(trained):
  report = (trained / 'report.md').read_text()
  assert '| model |' in report and '| noisy |' in report
  for name in ('grid.png', 'loss_curve.png', 'config.json', 'metrics.jsonl', 'eval/summary.json'):
    assert (trained / name).exists(), name
  events = b''.join(path.read_bytes() for path in (trained / 'tb').iterdir())
  assert b'train/loss' in events and b'eval/observed_estimate_target' in events


@pytest.mark.parametrize('override, fragments', [
    ('--config.model.name=resnet', ('resnet', 'dncnn', 'unet', 'seed_stack')),
    ('--config.task.gaussian.sigma=-5', ('task.gaussian.sigma=-5', '>= 0')),
    ('--config.task.name=dehaze', ('task.name', 'gaussian', 'poisson_gaussian', 'inpaint')),
    ('--config.task.gaussian.peak=3', ('task.gaussian.peak', 'sigma')),  # poisson's option, not gaussian's
    ('--config.model.dncnn.depth=3', ('model.dncnn.depth',)),
    ('--config.optim.name=sgd', ('optim.name', 'adam', 'adamw')),
    ('--config.optim.schedule=linear', ('optim.schedule', 'cosine', 'step')),
    ('--config.parallel=dp', ('parallel', 'shard_map', 'pmap')),
    ('--config.model.foo=1', ('model.foo',)),
    ('--config.train.steps=many', ('train.steps',)),
    ('--config.report.crop=-5', ('report.crop=-5', 'at least 11 px')),
    ('--config.report.crop=8', ('report.crop=8', '--config.report.crop=64')),
])
def test_bad_config_values(tmp_path, capsys, override, fragments):
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path / 'w', override], *fragments)
  assert not (tmp_path / 'w').exists()


def test_renamed_config_keys_still_work_with_one_notice(tmp_path, capsys):
  status = cli.main(['train', *SMOKE, '--workdir', str(tmp_path / 'w'), '--config.train.steps=2',
                     '--config.degradation.sigma=15', '--config.model.space_to_depth=2'])
  err = capsys.readouterr().err
  assert status == 0, err
  notices = [line for line in err.splitlines() if line.startswith('cnnrecon: deprecated:')]
  assert len(notices) == 2, err
  assert 'degradation.sigma is now task.gaussian.sigma' in notices[0]
  saved = json.loads((tmp_path / 'w' / 'config.json').read_text())
  assert saved['task']['gaussian']['sigma'] == 15 and saved['model']['dncnn']['space_to_depth'] == 2
  assert 'degradation' not in saved and 'space_to_depth' not in saved['model']


def test_impossible_seed_stack_depth_names_the_largest_that_fits(tmp_path, capsys):
  err = fails_with_one_line(capsys, ['train', '--config', 'experiments/denoise_seed_stack.py:smoke',
                                      '--workdir', tmp_path / 'w', '--config.model.depth=18',
                                      '--config.data.patch_size=32'], '18')
  assert 'at most 5' in err or 'largest depth that fits 32x32 is 5' in err


def test_empty_data_folder(tmp_path, capsys):
  (tmp_path / 'empty').mkdir()
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path / 'w',
                                f'--config.data.train={tmp_path / "empty"}'], 'empty')


def test_missing_and_non_image_files(trained, tmp_path, capsys):
  fails_with_one_line(capsys, ['denoise', tmp_path / 'missing.png', '--workdir', trained, '--out', tmp_path / 'o'],
                       'missing.png')
  fake = tmp_path / 'fake.png'
  fake.write_text('not an image')
  fails_with_one_line(capsys, ['denoise', fake, '--workdir', trained, '--out', tmp_path / 'o'], 'fake.png')
  assert not (tmp_path / 'o').exists()


def test_missing_config_file_and_workdir(tmp_path, capsys):
  fails_with_one_line(capsys, ['train', '--config', 'experiments/nope.py', '--workdir', tmp_path], 'nope.py')
  fails_with_one_line(capsys, ['eval', '--workdir', tmp_path / 'never_trained'], 'never_trained')


def test_unreadable_checkpoint_keeps_every_file(trained, tmp_path, capsys):
  workdir = tmp_path / 'damaged'
  shutil.copytree(trained, workdir)
  for path in (workdir / 'checkpoints').glob('*/state/**/*'):
    if path.is_file():
      path.write_bytes(b'garbage')
  before = sorted(str(path.relative_to(workdir)) for path in workdir.rglob('*'))
  fails_with_one_line(capsys, ['eval', '--workdir', workdir, '--no-baselines'], 'unreadable')
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', workdir], 'unreadable')
  assert sorted(str(path.relative_to(workdir)) for path in workdir.rglob('*')) == before


def test_process_exit_status_and_no_traceback(tmp_path):
  result = run_cli('train', *SMOKE, '--workdir', tmp_path / 'w', '--config.model.name=resnet')
  assert result.returncode == 2
  assert 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines() == [line for line in result.stderr.strip().splitlines()
                                                if line.startswith('cnnrecon: error:')]


def test_eval_over_several_seeds_averages_single_seed_runs(trained, image_folder, tmp_path, capsys):
  single = []
  for seed in (0, 1):
    assert cli.main(['eval', '--workdir', str(trained), '--data', str(image_folder), '--seed', str(seed),
                     '--no-baselines', '--out', str(tmp_path / str(seed))]) == 0
    single.append(json.loads((tmp_path / str(seed) / 'summary.json').read_text()))
  assert cli.main(['eval', '--workdir', str(trained), '--data', str(image_folder), '--seeds', '0,1',
                   '--no-baselines', '--out', str(tmp_path / 'both')]) == 0
  both = json.loads((tmp_path / 'both' / 'summary.json').read_text())
  for method in ('model', 'noisy'):
    expected = (single[0][method]['psnr'] + single[1][method]['psnr']) / 2
    assert both[method]['psnr'] == pytest.approx(expected, abs=1e-9)
  spread = abs(single[0]['noisy']['psnr'] - single[1]['noisy']['psnr']) / 2**0.5
  assert f"{both['noisy']['psnr']:.2f} ± {spread:.2f}" in (tmp_path / 'both' / 'results.md').read_text()
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--seeds', '0,x'], '--seeds')


def test_weights_import_then_eval(tmp_path, image_folder, capsys):
  from tests.dncnn_weight_files import random_dncnn, write_matconvnet
  weights_file = tmp_path / 'dncnn_sigma25.mat'
  write_matconvnet(weights_file, random_dncnn(0, widths=[8, 8, 8, 1]))
  assert cli.main(['weights', 'import', '--format', 'matconvnet', '--model', 'dncnn', str(weights_file),
                   '--workdir', str(tmp_path / 'imported')]) == 0
  assert cli.main(['eval', '--workdir', str(tmp_path / 'imported'), '--data', str(image_folder),
                   '--no-baselines', '--out', str(tmp_path / 'eval')]) == 0
  assert 'sigma=25' in capsys.readouterr().out
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path / 'imported', '--force'], 'init_from')


def test_fine_tuning_starts_from_imported_weights(tmp_path, capsys):
  import jax
  from cnnrecon.evaluation import load_trained
  from cnnrecon.models.registry import build_model
  from cnnrecon.train.loop import initialize_from
  from cnnrecon.train.state import create_train_state, make_optimizer
  from tests.dncnn_weight_files import random_dncnn, write_matconvnet
  write_matconvnet(tmp_path / 'dncnn_sigma25.mat', random_dncnn(0, widths=[8, 8, 8, 1]))
  assert cli.main(['weights', 'import', '--format', 'matconvnet', str(tmp_path / 'dncnn_sigma25.mat'),
                   '--workdir', str(tmp_path / 'imported')]) == 0
  config = smoke_config()
  fresh = create_train_state(build_model(config.model, channels=1), make_optimizer(config.optim, 6), seed=0,
                             sample_shape=(1, 24, 24, 1))
  started = initialize_from(jax.device_get(fresh), str(tmp_path / 'imported'))
  imported = load_trained(tmp_path / 'imported').variables['params']
  for got, want in zip(jax.tree.leaves(started.params), jax.tree.leaves(imported)):
    np.testing.assert_array_equal(got, want)
  assert cli.main(['train', *SMOKE, '--workdir', str(tmp_path / 'tuned'),
                   f'--config.train.init_from={tmp_path / "imported"}']) == 0
  fails_with_one_line(capsys, ['train', '--config', 'experiments/denoise_unet.py:smoke', '--no-progress',
                                '--workdir', tmp_path / 'unet', f'--config.train.init_from={tmp_path / "imported"}'],
                       'does not fit this model')


def test_weights_import_bad_files(tmp_path, capsys):
  from tests.dncnn_weight_files import random_dncnn, write_keras, write_matconvnet
  write_matconvnet(tmp_path / 'good.mat', random_dncnn(0, widths=[8, 8, 8, 1]))
  data = (tmp_path / 'good.mat').read_bytes()
  (tmp_path / 'truncated.mat').write_bytes(data[:len(data) // 2])
  (tmp_path / 'notes.mat').write_text('not weights\n')
  write_keras(tmp_path / 'narrow.h5', random_dncnn(1, widths=[8, 6, 8, 1]), epsilon=1e-4)
  cases = [('matconvnet', 'truncated.mat', 'truncated'), ('matconvnet', 'notes.mat', 'HDF5'),
           ('keras', 'narrow.h5', 'Conv_1')]
  for fmt, name, fragment in cases:
    fails_with_one_line(capsys, ['weights', 'import', '--format', fmt, tmp_path / name,
                                  '--workdir', tmp_path / 'w'], fragment)
  assert not (tmp_path / 'w' / 'checkpoints').exists()
