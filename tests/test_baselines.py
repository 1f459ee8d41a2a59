"""Classical denoisers: they must clearly beat the noisy input on a real image."""

import numpy as np
import pytest
from skimage import data, img_as_float32, transform
from skimage.metrics import peak_signal_noise_ratio

from cnnrecon.tasks import baselines
from cnnrecon.errors import CnnreconError

SIGMA = 25 / 255
# Measured on camera 128x128, sigma 25, seed 0: noisy 20.21 dB, nl_means
# 28.90 dB (+8.7), tv 28.55 dB (+8.3). The brief asks for >= 2 dB; 6 dB keeps
# a 2 dB margin and still catches a badly tuned parameter rule.
MIN_GAIN_DB = {'nl_means': 6.0, 'tv': 6.0, 'wavelet': 2.0}


def _needs_backend(name):
  if name == 'wavelet':
    pytest.importorskip('pywt', reason='the wavelet baseline needs PyWavelets')


def _noisy(clean):
  noise = np.random.default_rng(0).normal(0.0, SIGMA, clean.shape)
  return (clean + noise).astype(np.float32)


def _camera_128():
  camera = img_as_float32(data.camera())
  return transform.resize(camera, (128, 128), anti_aliasing=True)[..., None].astype(np.float32)


@pytest.mark.parametrize('name', ['nl_means', 'tv', 'wavelet'])
def test_denoiser_improves_psnr_on_camera(name):
  _needs_backend(name)
  clean = _camera_128()
  noisy = _noisy(clean)
  estimate = baselines.classical_denoisers()[name](noisy, SIGMA)
  noisy_psnr = peak_signal_noise_ratio(clean, noisy, data_range=1)
  denoised_psnr = peak_signal_noise_ratio(clean, estimate, data_range=1)
  assert denoised_psnr - noisy_psnr >= MIN_GAIN_DB[name], (noisy_psnr, denoised_psnr)


@pytest.mark.parametrize('name', ['nl_means', 'tv', 'wavelet'])
@pytest.mark.parametrize('channels', [1, 3])
def test_denoiser_keeps_shape_and_dtype(name, channels):
  _needs_backend(name)
  if channels == 1:
    clean = _camera_128()[:48, :40]
  else:
    clean = img_as_float32(data.astronaut())[100:148, 150:190]
  noisy = _noisy(clean)
  estimate = baselines.classical_denoisers()[name](noisy, SIGMA)
  assert estimate.shape == clean.shape
  assert estimate.dtype == np.float32
  assert np.all(np.isfinite(estimate))


def test_denoisers_accept_unclipped_noise():
  """Noise is not clipped, so inputs below 0 and above 1 must be handled."""
  clean = _camera_128()[:32, :32]
  noisy = _noisy(clean) + np.float32(0.3)
  assert noisy.max() > 1.0
  estimate = baselines.classical_denoisers()['tv'](noisy, SIGMA)
  # Not rescaled to [0, 1]: the 0.3 offset survives denoising on average.
  np.testing.assert_allclose(estimate.mean(), noisy.mean(), atol=0.02)


def test_tv_weight_grows_with_sigma():
  weights = [baselines.tv_weight(s / 255) for s in (15, 25, 50)]
  assert weights == sorted(weights)
  np.testing.assert_allclose(baselines.tv_weight(0.1), 0.08)


@pytest.mark.parametrize('sigma', [25.0, 0.0, -0.1])
def test_bad_sigma_is_a_user_error(sigma):
  with pytest.raises(CnnreconError, match='0..1 scale'):
    baselines.classical_denoisers()['tv'](np.zeros((16, 16, 1), np.float32), sigma)


def test_batched_input_is_a_user_error():
  with pytest.raises(CnnreconError, match='HxWxC'):
    baselines.classical_denoisers()['nl_means'](np.zeros((2, 16, 16, 1), np.float32), 0.1)


def test_keys():
  assert set(baselines.classical_denoisers()) == {'nl_means', 'tv', 'wavelet'}
