"""Tests for cnnrecon.weights: synthetic files in each released layout, and the real releases.

The synthetic files (tests/dncnn_weight_files.py) store their kernels the way
each framework does; the flax model must then agree with a numpy forward pass
of the same weights, which pins down every axis order. The official weights
must reproduce the published Set12 PSNRs.
"""

import functools
import json
import pathlib
import sys
import types

import numpy as np
import pytest
from safetensors.numpy import save_file
from skimage.metrics import peak_signal_noise_ratio

from cnnrecon import compiler
from cnnrecon.config import base_config
from cnnrecon.data.images import read_image
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation import load_trained
from cnnrecon.tasks.scoring import prepare_image
from cnnrecon.tasks import build_task
from cnnrecon.models.dncnn import DnCNN
from cnnrecon.weights import import_to_workdir, load_dncnn_weights
from tests.dncnn_weight_files import (kair_state_dict, random_dncnn, reference_forward, write_keras,
                                      write_matconvnet)

OFFICIAL = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'dncnn_official'
SET12 = OFFICIAL.parent / 'set12'
needs_shared = pytest.mark.skipif(not (OFFICIAL.is_dir() and SET12.is_dir()),
                                  reason='needs ../shared/data/dncnn_official and set12 (developer data)')
WIDTHS = [8, 8, 8, 1]  # depth 4, 8 features, grayscale
EPS = 1e-4


@pytest.fixture
def image():
  """Non-square, so a swapped kernel h/w axis cannot go unnoticed."""
  return np.random.default_rng(9).uniform(0, 1, (9, 13, 1)).astype(np.float32)


def _flax_output(weights, image):
  model = DnCNN(depth=weights.depth, features=weights.features, bn_epsilon=weights.bn_epsilon)
  variables = {'params': weights.params, 'batch_stats': weights.batch_stats}
  return np.asarray(model.apply(variables, image[None], train=False))[0]


def test_matconvnet_layout_matches_numpy_reference(tmp_path, image):
  net = random_dncnn(1, widths=WIDTHS)
  write_matconvnet(tmp_path / 'folded.mat', net)
  weights = load_dncnn_weights('matconvnet', tmp_path / 'folded.mat', depth=4, features=8)
  assert (weights.channels, weights.depth, weights.features) == (1, 4, 8)
  # The authors' layout: BatchNorm folded into the conv biases.
  np.testing.assert_allclose(_flax_output(weights, image), reference_forward(net, image, eps=0, norm=False),
                             atol=1e-5)
  write_matconvnet(tmp_path / 'bnorm.mat', net, bnorm=True)
  weights = load_dncnn_weights('matconvnet', tmp_path / 'bnorm.mat', depth=4, features=8)
  np.testing.assert_allclose(_flax_output(weights, image), reference_forward(net, image, eps=EPS), atol=1e-5)


def test_keras_layout_matches_numpy_reference(tmp_path, image):
  net = random_dncnn(2, widths=WIDTHS)
  write_keras(tmp_path / 'net.h5', net, epsilon=EPS)
  weights = load_dncnn_weights('keras', tmp_path / 'net.h5', depth=4, features=8)
  assert weights.bn_epsilon == EPS
  net[-1]['b'][:] = 0  # Keras' last conv has no bias
  expected = reference_forward(net, image, eps=EPS, middle_bias=False)
  np.testing.assert_allclose(_flax_output(weights, image), expected, atol=1e-5)


def test_state_dict_layouts_match_numpy_reference(tmp_path, image, monkeypatch):
  net = random_dncnn(3, widths=[8] * 4 + [1])  # 12 modules, so model.10 must sort after model.9
  expected = reference_forward(net, image, eps=EPS)
  save_file(kair_state_dict(net), tmp_path / 'net.safetensors')
  weights = load_dncnn_weights('safetensors', tmp_path / 'net.safetensors', depth=5, features=8,
                               bn_epsilon=EPS)
  np.testing.assert_allclose(_flax_output(weights, image), expected, atol=1e-5)
  # The .pth path, through a stand-in torch whose tensors offer only what the reader calls.
  tensor = lambda a: types.SimpleNamespace(detach=lambda: types.SimpleNamespace(
      cpu=lambda: types.SimpleNamespace(float=lambda: types.SimpleNamespace(numpy=lambda: a))))
  loaded = {'state_dict': {key: tensor(value) for key, value in kair_state_dict(net).items()}}
  monkeypatch.setitem(sys.modules, 'torch', types.SimpleNamespace(load=lambda *a, **k: loaded))
  (tmp_path / 'net.pth').write_bytes(b'stand-in')
  weights = load_dncnn_weights('torch', tmp_path / 'net.pth', depth=None, features=None, bn_epsilon=EPS)
  np.testing.assert_allclose(_flax_output(weights, image), expected, atol=1e-5)


def test_real_torch_pth_matches_numpy_reference(tmp_path, image):
  torch = pytest.importorskip('torch', reason='torch is optional (pip install cnnrecon[torch] or make bench)')
  net = random_dncnn(3, widths=[8] * 4 + [1])
  state = {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in kair_state_dict(net).items()}
  torch.save(state, tmp_path / 'dncnn_25.pth')
  weights = load_dncnn_weights('torch', tmp_path / 'dncnn_25.pth', depth=None, features=None, bn_epsilon=EPS)
  np.testing.assert_allclose(_flax_output(weights, image), reference_forward(net, image, eps=EPS), atol=1e-5)


def _error(*args, **kwargs) -> str:
  with pytest.raises(CnnreconError) as info:
    load_dncnn_weights(*args, **kwargs)
  assert '\n' not in str(info.value)
  return str(info.value)


def test_bad_files_raise_one_line_errors(tmp_path):
  write_matconvnet(tmp_path / 'net.mat', random_dncnn(4, widths=WIDTHS))
  assert 'has 4 conv layers but dncnn(depth=17, features=64) has 17' in _error('matconvnet', tmp_path / 'net.mat')
  write_keras(tmp_path / 'narrow.h5', random_dncnn(5, widths=[8, 6, 8, 1]), epsilon=EPS)
  assert _error('keras', tmp_path / 'narrow.h5', depth=4, features=8).startswith(
      'layer Conv_1 kernel: file has (3, 3, 8, 6), dncnn(depth=4, features=8) expects (3, 3, 8, 8)')
  save_file(kair_state_dict(random_dncnn(6, widths=WIDTHS)), tmp_path / 'net.safetensors')
  for fmt, name in (('matconvnet', 'net.mat'), ('keras', 'narrow.h5'), ('safetensors', 'net.safetensors')):
    data = (tmp_path / name).read_bytes()
    (tmp_path / f'half_{name}').write_bytes(data[:len(data) // 2])
    assert 'truncated' in _error(fmt, tmp_path / f'half_{name}', depth=None, features=None)
  (tmp_path / 'notes.mat').write_text('not weights\n')
  assert 'is not a MATLAB v7.3 (HDF5) file' in _error('matconvnet', tmp_path / 'notes.mat')
  assert 'not a Keras 2 model' in _error('keras', tmp_path / 'net.mat')
  assert 'matconvnet, keras, torch, safetensors' in _error('caffe', tmp_path / 'net.mat')
  assert 'does not exist' in _error('keras', tmp_path / 'missing.h5')
  (tmp_path / 'narrow.json').unlink()
  assert 'narrow.json does not exist' in _error('keras', tmp_path / 'narrow.h5', depth=None, features=None)


def test_torch_format_without_torch_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # makes `import torch` fail
  (tmp_path / 'net.pth').write_bytes(b'x')
  assert "pip install 'cnnrecon[torch]'" in _error('torch', tmp_path / 'net.pth')


def test_import_to_workdir_round_trips_through_load_trained(tmp_path, image):
  net = random_dncnn(7, widths=WIDTHS)
  weights_file, workdir = tmp_path / 'dncnn_sigma15.mat', tmp_path / 'work'
  write_matconvnet(weights_file, net)
  assert import_to_workdir('matconvnet', weights_file, workdir).name == '0'
  trained = load_trained(workdir)
  assert (trained.step, trained.config.task.gaussian.sigma, trained.config.model.depth) == (0, 15.0, 4)
  expected = reference_forward(net, image, eps=0, norm=False)
  np.testing.assert_allclose(trained(image[None])[0], expected, atol=1e-5)
  assert json.loads((workdir / 'config.json').read_text())['model']['features'] == 8
  with pytest.raises(CnnreconError, match='already holds checkpoints'):
    import_to_workdir('matconvnet', weights_file, workdir)
  assert import_to_workdir('matconvnet', weights_file, workdir, sigma=20, force=True).name == '1'
  assert (load_trained(workdir).config.task.gaussian.sigma, load_trained(workdir, step=0).step) == (20.0, 0)
  with pytest.raises(CnnreconError, match="model 'unet'"):
    import_to_workdir('matconvnet', weights_file, tmp_path / 'other', model='unet')


# Compiled as cnnrecon's own inference is (Eigen CPU convolutions, about 2x faster here than XLA's default).
@functools.partial(compiler.jit, static_argnames=('bn_epsilon',))
def _dncnn17(variables, images, *, bn_epsilon):
  return DnCNN(bn_epsilon=bn_epsilon).apply(variables, images, train=False)


def _set12_psnr(weights, sigma: float) -> float:
  """Set12 average PSNR (dB, data range 1, full image) of DnCNN-17 with `weights`.

  Noise: `prepare_image` (AWGN sigma/255, key fold_in(key(0), image index)),
  input not clipped; the estimate is clipped to [0, 1]. One compile per image
  shape and epsilon, shared by all weights.
  """
  config = base_config()
  config.task.gaussian.sigma = sigma
  task = build_task(config)
  variables = {'params': weights.params, 'batch_stats': weights.batch_stats}
  scores = []
  for index, path in enumerate(sorted(SET12.glob('*.png'))):
    clean = read_image(path, channels=1)
    noisy = prepare_image(task, clean, seed=0, index=index)['observed']
    estimate = np.asarray(_dncnn17(variables, noisy[None], bn_epsilon=weights.bn_epsilon))[0]
    scores.append(peak_signal_noise_ratio(clean, np.clip(estimate, 0.0, 1.0), data_range=1.0))
  return float(np.mean(scores))


@needs_shared
@pytest.mark.reproduction
def test_official_matconvnet_sigma25_through_the_cli(tmp_path, capsys):
  """`cnnrecon weights import` then `cnnrecon eval` on Set12: the published 30.44 dB."""
  from cnnrecon import cli
  workdir = tmp_path / 'dncnn25'
  assert cli.main(['weights', 'import', '--format', 'matconvnet', str(OFFICIAL / 'matconvnet_sigma25.mat'),
                   '--workdir', str(workdir)]) == 0
  assert cli.main(['eval', '--workdir', str(workdir), '--data', str(SET12), '--no-baselines',
                   '--out', str(tmp_path / 'eval')]) == 0
  summary = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
  print(f"Set12 sigma=25 MatConvNet via cnnrecon eval: {summary['model']['psnr']:.3f} dB (published 30.44)")
  assert abs(summary['model']['psnr'] - 30.44) < 0.05


# The releases on Set12 take two minutes of CPU: `make test-reproductions` (CI runs it after `make test`).
@needs_shared
@pytest.mark.reproduction
def test_official_keras_sigma25():
  weights = load_dncnn_weights('keras', OFFICIAL / 'keras_sigma25.h5')
  psnr = _set12_psnr(weights, 25.0)
  print(f'Set12 sigma=25 Keras: {psnr:.3f} dB (published 30.44)')
  assert abs(psnr - 30.44) < 0.1


@needs_shared
@pytest.mark.reproduction
def test_official_matconvnet_sigma15_and_50():
  for sigma, published in ((15, 32.86), (50, 27.18)):
    weights = load_dncnn_weights('matconvnet', OFFICIAL / f'matconvnet_sigma{sigma}.mat')
    psnr = _set12_psnr(weights, float(sigma))
    print(f'Set12 sigma={sigma} MatConvNet: {psnr:.3f} dB (published {published})')
    assert abs(psnr - published) < 0.05
