"""SR models (SRCNN, EDSR-baseline): their recipes train and report against bicubic, EDSR upsamples the
low-resolution observation, exports equal the in-memory model, `cnnrecon restore` upscales, and a bad
scale or depth fails in one line."""

import functools
import json

import jax
import numpy as np
import pytest
from PIL import Image

import cnnrecon
from cnnrecon import cli
from cnnrecon.errors import CnnreconError
from cnnrecon.export import ExportedModel, load
from cnnrecon.export.writer import export_workdir
from cnnrecon.inference import load_trained
from cnnrecon.models.registry import build_model
from cnnrecon.tasks import task_class
from conftest import fails_with_one_line, smoke_config, trained_smoke_run


def _smoke_run(tmp_path_factory, experiment):
  return trained_smoke_run(tmp_path_factory, experiment)  # the run tests/test_spine.py checks too


@pytest.fixture(scope='module')
def srcnn_run(tmp_path_factory):
  """A finished `sr_srcnn.py:smoke` run (x3, on the bicubic image)."""
  return _smoke_run(tmp_path_factory, 'sr_srcnn')


@pytest.fixture(scope='module')
def edsr_run(tmp_path_factory):
  """A finished `sr_edsr.py:smoke` run (x2, on the low-resolution image)."""
  return _smoke_run(tmp_path_factory, 'sr_edsr')


def _low_resolution(batch, height, width, seed=0):
  return np.random.default_rng(seed).random((batch, height, width, 1), dtype=np.float32)


@pytest.mark.parametrize('run', ['srcnn_run', 'edsr_run'])
def test_smoke_recipes_train_and_report_against_bicubic(run, request):
  workdir = request.getfixturevalue(run)
  report = (workdir / 'report.md').read_text()
  assert '| bicubic |' in report and '| model |' in report and 'ΔPSNR vs bicubic' in report
  summary = json.loads((workdir / 'eval' / 'summary.json').read_text())
  assert set(summary) == {'model', 'bicubic', 'baselines'}
  assert 25 < summary['bicubic']['psnr'] < 40  # bicubic is a real baseline, not a placeholder
  assert (workdir / 'grid.png').is_file()


def test_edsr_is_given_the_observation_and_returns_scale_times_its_size():
  config = smoke_config('sr_edsr')
  task = task_class(config).from_config(config)
  clean = jax.random.uniform(jax.random.key(0), (2, 12, 16, 1))
  example = task.prepare(jax.random.split(jax.random.key(1), 2), clean)
  assert task.takes == 'observation' and example['model_input'].shape == (2, 6, 8, 1)
  np.testing.assert_array_equal(example['model_input'], example['observed'])
  for scale in (2, 3, 4):  # x4 is two x2 sub-pixel stages; shapes only (eval_shape compiles nothing)
    config.task.super_resolve.scale = scale
    model = build_model(config.model, channels=1, operator=task_class(config).from_config(config).forward_operator())
    low_resolution = jax.ShapeDtypeStruct((2, 5, 7, 1), jax.numpy.float32)
    variables = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(2), low_resolution)
    estimate = jax.eval_shape(functools.partial(model.apply, train=False), variables, low_resolution)
    assert estimate.shape == (2, 5 * scale, 7 * scale, 1), scale
  # SRCNN, by contrast, is given the bicubic image, the clean image's size.
  srcnn = smoke_config('sr_srcnn')
  assert task_class(srcnn).from_config(srcnn).takes == 'initial_estimate'


def test_edsr_exports_equal_the_in_memory_model_at_any_low_resolution_size(edsr_run, tmp_path):
  model = load_trained(edsr_run)
  stablehlo = load(export_workdir(edsr_run, tmp_path / 'hlo'))
  params = cnnrecon.load_model(export_workdir(edsr_run, tmp_path / 'params', fmt='params'))
  assert isinstance(stablehlo, ExportedModel) and stablehlo.manifest['inputs'][0]['shape'] == '(b, h, w, 1)'
  assert 'x2 super-resolved' in stablehlo.manifest['output']
  for observed in (_low_resolution(3, 12, 20), _low_resolution(1, 17, 9, seed=1)):
    expected = model(observed)
    assert expected.shape[1:3] == (2 * observed.shape[1], 2 * observed.shape[2])
    np.testing.assert_allclose(stablehlo(observed), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(params(observed), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(stablehlo.restore(observed[0]), model.restore(observed[0]), rtol=0, atol=1e-6)


def test_srcnn_exports_at_a_fixed_low_resolution_size_only(srcnn_run, tmp_path, capsys):
  fails_with_one_line(capsys, ['export', '--workdir', srcnn_run, '--out', tmp_path / 'any'],
                      'srcnn takes the bicubic upsampling', '--image-size HxW')
  assert not (tmp_path / 'any').exists()
  exported = load(export_workdir(srcnn_run, tmp_path / 'fixed', image_size=(10, 14)))
  observed = _low_resolution(2, 10, 14)
  expected = np.stack([load_trained(srcnn_run).restore(image) for image in observed])
  assert expected.shape == (2, 20, 28, 1)  # x2
  np.testing.assert_allclose(exported(observed), expected, rtol=0, atol=1e-6)


def test_restore_upscales_a_low_resolution_png(edsr_run, tmp_path):
  Image.fromarray((_low_resolution(1, 20, 30)[0, ..., 0] * 255).astype(np.uint8)).save(tmp_path / 'small.png')
  assert cli.main(['restore', str(tmp_path / 'small.png'), '--workdir', str(edsr_run),
                   '--out', str(tmp_path / 'out')]) == 0
  assert np.asarray(Image.open(tmp_path / 'out' / 'small.png')).shape == (40, 60)


def test_a_bad_scale_or_depth_is_one_line(tmp_path, capsys):
  fails_with_one_line(capsys, ['train', '--config', 'experiments/sr_edsr.py:smoke', '--workdir', tmp_path / 'run',
                               '--no-progress', '--config.task.super_resolve.scale=5'],
                      'scale 5 is not supported', 'allowed: 2, 3, 4')
  fails_with_one_line(capsys, ['train', '--config', 'experiments/sr_srcnn.py:smoke', '--workdir', tmp_path / 'run',
                               '--no-progress', '--config.model.depth=5'], 'model.depth=5', 'depth=3')
  with pytest.raises(CnnreconError, match='task.name=super_resolve'):
    config = smoke_config('sr_edsr', task__name='gaussian')
    build_model(config.model, channels=1, operator=task_class(config).from_config(config).forward_operator())
