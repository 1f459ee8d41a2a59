"""Losses and metrics against numpy closed forms and scikit-image."""

import numpy as np
import pytest
import skimage.color
import skimage.data
import skimage.metrics

from cnnrecon import losses
from cnnrecon import metrics
from cnnrecon.errors import CnnreconError


def _noisy_pair(image, sigma, seed):
  rng = np.random.default_rng(seed)
  clean = image.astype(np.float32) / 255.0
  noisy = np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1)
  return clean, noisy.astype(np.float32)


def _gray_batch():
  """Two real grayscale images (256x256 crops) and noisy copies, NHWC."""
  images = [skimage.data.camera()[:256, :256], skimage.data.moon()[:256, :256]]
  pairs = [_noisy_pair(im[..., None], 25, seed) for seed, im in
           enumerate(images)]
  return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def test_mse_and_l1_match_numpy():
  rng = np.random.default_rng(0)
  a = rng.random((3, 8, 9, 2), dtype=np.float32)
  b = rng.random((3, 8, 9, 2), dtype=np.float32)
  np.testing.assert_allclose(losses.mse(a, b), np.mean((a - b)**2), rtol=1e-6)
  np.testing.assert_allclose(losses.l1(a, b), np.mean(np.abs(a - b)),
                             rtol=1e-6)


def test_ssim_loss_is_one_minus_skimage_ssim():
  clean, noisy = _gray_batch()
  expected = 1 - np.mean([skimage.metrics.structural_similarity(
      c[..., 0], n[..., 0], gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
      for c, n in zip(clean, noisy)])
  np.testing.assert_allclose(losses.get_loss('ssim')(noisy, clean), expected, rtol=1e-4)
  assert float(losses.ssim_loss(clean, clean)) == pytest.approx(0.0, abs=1e-6)


def test_get_loss():
  assert losses.get_loss('mse') is losses.mse
  with pytest.raises(CnnreconError, match=r"unknown train.loss='huber'; known: mse, l1, ssim"):
    losses.get_loss('huber')


def test_psnr_matches_closed_form_and_skimage():
  clean, noisy = _gray_batch()
  got = np.asarray(metrics.psnr(noisy, clean))
  assert got.shape == (2,)
  mse = np.mean((noisy.astype(np.float64) - clean)**2, axis=(1, 2, 3))
  np.testing.assert_allclose(got, 10 * np.log10(1 / mse), atol=1e-4)
  for i in range(2):
    expected = skimage.metrics.peak_signal_noise_ratio(
        clean[i], noisy[i], data_range=1.0)
    np.testing.assert_allclose(got[i], expected, atol=1e-4)


def test_psnr_with_data_range_255():
  clean, noisy = _gray_batch()
  got = metrics.psnr(noisy * 255, clean * 255, data_range=255.0)
  expected = skimage.metrics.peak_signal_noise_ratio(
      clean[0] * 255, noisy[0] * 255, data_range=255.0)
  np.testing.assert_allclose(got[0], expected, atol=1e-3)


def test_ssim_matches_skimage_gray():
  clean, noisy = _gray_batch()
  got = np.asarray(metrics.ssim(noisy, clean))
  assert got.shape == (2,)
  for i in range(2):
    expected = skimage.metrics.structural_similarity(
        clean[i].astype(np.float64), noisy[i].astype(np.float64),
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=1.0, channel_axis=-1)
    np.testing.assert_allclose(got[i], expected, atol=1e-4)


def test_ssim_matches_skimage_rgb():
  clean, noisy = _noisy_pair(skimage.data.astronaut()[:128, :160], 15, 3)
  got = metrics.ssim(noisy[None], clean[None])[0]
  expected = skimage.metrics.structural_similarity(
      clean.astype(np.float64), noisy.astype(np.float64),
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
      data_range=1.0, channel_axis=-1)
  np.testing.assert_allclose(got, expected, atol=1e-4)


def test_rgb_to_y_matches_skimage():
  rgb = skimage.data.coffee()[:64, :80].astype(np.float32) / 255.0
  got = np.asarray(metrics.rgb_to_y(rgb[None]))
  assert got.shape == (1, 64, 80, 1)
  expected = skimage.color.rgb2ycbcr(rgb)[..., 0] / 255.0
  np.testing.assert_allclose(got[0, ..., 0], expected, atol=1e-5)
  assert got.min() >= 16 / 255 - 1e-6 and got.max() <= 235 / 255 + 1e-6


def test_crop_border():
  images = np.arange(2 * 10 * 12 * 3, dtype=np.float32).reshape(2, 10, 12, 3)
  np.testing.assert_array_equal(metrics.crop_border(images, 3),
                                images[:, 3:7, 3:9, :])
  np.testing.assert_array_equal(metrics.crop_border(images, 0), images)
  np.testing.assert_array_equal(metrics.crop_border(images[0], 2),
                                images[0, 2:8, 2:10, :])
