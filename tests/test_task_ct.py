"""Sparse-view CT: the 'ct' task, phantom data sources, FBPConvNet, its experiment's smoke run and exports."""

import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from cnnrecon import cli, compiler, load_model
from cnnrecon.data.sources import load_source
from cnnrecon.evaluation import load_trained
from cnnrecon.export import load
from cnnrecon.export.writer import export_workdir
from cnnrecon.metrics import psnr
from cnnrecon.models.fbpconvnet import UpConv3x3
from cnnrecon.tasks import build_task
from cnnrecon.tasks.ct import tv_reconstruction
from conftest import fails_with_one_line, trained_smoke_run

SMOKE = ['--config', 'experiments/ct_fbpconvnet.py:smoke']


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The smoke run (32 px phantoms, 8 views, with its TV baseline), trained once per pytest run (test_spine too)."""
  return trained_smoke_run(tmp_path_factory, 'ct_fbpconvnet')


def _sinogram(workdir, index=0):
  """A validation phantom's sinogram [n, views, 1] as the trained task observes it."""
  task = build_task(load_trained(workdir).config)
  clean = load_source('phantoms:ellipses:validation:size=32:count=4')[index]['image'] / np.float32(255)
  return np.asarray(task.operator.apply(jax.random.key(index), clean))


def test_smoke_run_reports_the_model_beside_fbp_and_tv(trained):
  summary = json.loads((trained / 'eval' / 'summary.json').read_text())
  assert {'FBP', 'model'} <= set(summary) and set(summary['baselines']) == {'tv'}
  report = (trained / 'report.md').read_text()
  assert '| FBP |' in report and '| tv |' in report and 'ΔPSNR vs FBP' in report
  assert 'CT 8 views over 180 deg' in report and (trained / 'grid.png').is_file()


def test_exports_equal_the_in_memory_model_and_restore_npy_sinograms(trained, tmp_path, capsys):
  model = load_trained(trained)
  sinograms = np.stack([_sinogram(trained, i)[..., 0].reshape(-1) for i in range(2)])
  expected = np.stack([model.restore(sinogram) for sinogram in sinograms])
  assert expected.shape == (2, 32, 32, 1)
  manifest = json.loads((export_workdir(trained, tmp_path / 'hlo') / 'manifest.json').read_text())
  assert manifest['inputs'] == [{'name': 'sinogram', 'kind': 'vector', 'size': 32 * 8, 'dtype': 'float32',
                                 'shape': '(b, 256)'}]
  np.testing.assert_allclose(load(tmp_path / 'hlo')(sinograms), expected, atol=1e-5)
  params = load_model(export_workdir(trained, tmp_path / 'params', fmt='params'))
  np.testing.assert_allclose(np.stack([params.restore(s) for s in sinograms]), expected, atol=1e-6)
  np.save(tmp_path / 'scan.npy', sinograms[0].reshape(32, 8))  # what a user has: [n, views]
  assert cli.main(['restore', str(tmp_path / 'scan.npy'), '--exported', str(tmp_path / 'hlo'),
                   '--out', str(tmp_path / 'out')]) == 0
  assert (tmp_path / 'out' / 'scan.png').is_file()
  np.save(tmp_path / 'cube.npy', np.zeros((2, 32, 8)))
  fails_with_one_line(capsys, ['restore', tmp_path / 'cube.npy', '--workdir', trained, '--out', tmp_path / 'o2'],
                      'give one sinogram [n detectors, views]')
  np.save(tmp_path / 'wide.npy', np.zeros((30, 9)))
  fails_with_one_line(capsys, ['restore', tmp_path / 'wide.npy', '--workdir', trained, '--out', tmp_path / 'o3'],
                      'it takes [32 detectors, 8 views] (256 values)')
  assert not (tmp_path / 'o2').exists() and not (tmp_path / 'o3').exists()


def test_phantoms_are_deterministic_by_seed_and_the_splits_differ():
  def images(spec):
    source = load_source(spec)
    return np.stack([source[i]['image'] for i in range(len(source))])

  train = images('phantoms:ellipses:train:size=32:count=3')
  assert train.dtype == np.uint8 and train.shape == (3, 32, 32, 1) and train.max() > 0
  np.testing.assert_array_equal(train, images('phantoms:ellipses:train:size=32:count=3'))
  np.testing.assert_array_equal(train[:2], images('phantoms:ellipses:train:size=32:count=2'))
  for other in ('phantoms:ellipses:validation:size=32:count=3', 'phantoms:ellipses:train:size=32:count=3:seed=1'):
    assert all(np.any(a != b) for a, b in zip(train, images(other))), other
  shepp = load_source('phantoms:shepp_logan:size=32')
  assert len(shepp) == 1 and shepp[0]['name'] == 'shepp_logan' and shepp[0]['image'].shape == (32, 32, 1)


def test_tv_baseline_beats_fbp_on_a_sparse_view_phantom(trained):
  operator = build_task(load_trained(trained).config).operator  # the smoke scan: its TV program is compiled
  clean = load_source('phantoms:ellipses:test:size=32:count=1')[0]['image'] / np.float32(255)
  sinogram = operator.apply(jax.random.key(0), clean)
  fbp = np.clip(operator.initial_estimate(sinogram), 0, 1)
  tv = tv_reconstruction(sinogram, operator, weight=0.03, iterations=20, start=fbp)
  assert psnr(tv, clean) > psnr(fbp, clean) + 3


def test_upconv_equals_flax_transposed_conv():
  x = jax.random.normal(jax.random.key(0), (2, 5, 6, 3))
  ours = UpConv3x3(4)
  variables = compiler.jit_run_once(ours.init)(jax.random.key(1), x)
  expected = jax.jit(nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding='SAME').apply)(variables, x)
  np.testing.assert_allclose(jax.jit(ours.apply)(variables, x), expected, atol=1e-5)


@pytest.mark.parametrize('override, fragments', [
    ('--config.task.ct.views=0', ('task.ct.views=0 must be > 0',)),
    ('--config.task.ct.views=-3', ('task.ct.views=-3',)),
    ('--config.task.ct.angle_range=0.0', ('task.ct.angle_range',)),
    ('--config.task.ct.angle_range=200.0', ('task.ct.angle_range=200.0 must be in (0, 180]',)),
    ('--config.data.channels=3', ('set --config.data.channels=1',)),
    ('--config.data.eval_crop=16', ('data.eval_crop=16 and data.patch_size=32 differ',)),
    ('--config.data.train=samples:train', ('trains on whole images',)),
    ('--config.data.eval=phantoms:ellipses:size=x', ('size=x must be a whole number from 1',)),
])
def test_bad_ct_configs_fail_in_one_line(tmp_path, capsys, override, fragments):
  fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', tmp_path / 'w', override], *fragments)
