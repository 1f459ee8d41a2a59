"""Degradations: statistics against closed forms, keys, per-example purity."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import skimage.data

from cnnrecon.errors import CnnreconError
from cnnrecon.ops import degrade
from cnnrecon.ops import masks
from cnnrecon.ops import noise


def _config(**fields):
  return ml_collections.ConfigDict(fields)


def _camera_batch(batch=4, size=64):
  camera = skimage.data.camera().astype(np.float32) / 255.0
  crops = [camera[i * size:(i + 1) * size, :size, None] for i in range(batch)]
  return jnp.asarray(np.stack(crops))


def test_gaussian_noise_std_and_unclipped():
  images = jnp.full((1000, 1000), 0.5, jnp.float32)
  noisy = noise.add_gaussian_noise(jax.random.key(0), images, sigma=25)
  residual = np.asarray(noisy - images, np.float64)
  np.testing.assert_allclose(residual.std(), 25 / 255, rtol=5e-3)
  assert abs(residual.mean()) < 1e-3
  zeros = noise.add_gaussian_noise(jax.random.key(1), jnp.zeros((64, 64)),
                                   sigma=50)
  assert float(zeros.min()) < 0  # the literature's protocol: no clipping


def test_poisson_noise_mean_and_variance():
  level, peak = 0.3, 20.0
  images = jnp.full((1000, 1000), level, jnp.float32)
  noisy = noise.add_poisson_noise(jax.random.key(0), images, peak=peak)
  assert noisy.dtype == jnp.float32 and noisy.shape == (1000, 1000)
  noisy = np.asarray(noisy, np.float64)
  np.testing.assert_allclose(noisy.mean(), level, rtol=5e-3)
  np.testing.assert_allclose(noisy.var(), level / peak, rtol=1e-2)
  # Values are photon counts divided by peak.
  np.testing.assert_allclose(noisy * peak, np.round(noisy * peak), atol=1e-4)


def test_pixel_mask_keep_fraction_and_apply():
  mask = masks.random_pixel_mask(jax.random.key(0), (500, 500, 1),
                                 keep_prob=0.3)
  assert mask.dtype == jnp.float32
  assert set(np.unique(np.asarray(mask))) <= {0.0, 1.0}
  np.testing.assert_allclose(float(mask.mean()), 0.3, atol=5e-3)
  images = jnp.ones((500, 500, 3))
  masked = masks.apply_pixel_mask(images, mask)
  np.testing.assert_array_equal(masked, np.broadcast_to(mask, (500, 500, 3)))


@pytest.mark.parametrize('cfg', [
    _config(name='gaussian', sigma=25),
    _config(name='poisson', peak=30.0),
    _config(name='inpaint', keep_prob=0.5),
])
def test_batch_equals_per_example(cfg):
  images = _camera_batch()
  keys = jax.random.split(jax.random.key(7), 4)
  degrade_fn = degrade.make_degradation(cfg)
  batched = np.asarray(degrade_fn(keys, images))
  assert batched.shape == images.shape and batched.dtype == np.float32
  for i in range(4):
    alone = degrade_fn(keys[i:i + 1], images[i:i + 1])
    np.testing.assert_array_equal(batched[i], np.asarray(alone)[0])
  again = degrade_fn(keys, images)
  np.testing.assert_array_equal(batched, again)
  other = degrade_fn(jax.random.split(jax.random.key(8), 4), images)
  assert not np.array_equal(batched, np.asarray(other))


def test_batched_gaussian_equals_the_unbatched_op():
  images = _camera_batch()
  keys = jax.random.split(jax.random.key(3), 4)
  batched = degrade.make_degradation(_config(name='gaussian', sigma=15))(
      keys, images)
  for i in range(4):
    alone = noise.add_gaussian_noise(keys[i], images[i], sigma=15)
    np.testing.assert_array_equal(batched[i], alone)


def test_inpaint_drops_all_channels_of_a_pixel():
  images = jnp.ones((2, 32, 32, 3))
  keys = jax.random.split(jax.random.key(0), 2)
  observed = degrade.make_degradation(_config(name='inpaint', keep_prob=0.5))(
      keys, images)
  channels_agree = observed == observed[..., :1]
  assert bool(channels_agree.all())


def test_negative_sigma_raises():
  with pytest.raises(CnnreconError, match=r'sigma=-5 is negative.*sigma=25'):
    degrade.make_degradation(_config(name='gaussian', sigma=-5))


@pytest.mark.parametrize('cfg, match', [
    (_config(name='blur'), 'known degradations: gaussian, poisson, inpaint'),
    (_config(name='poisson', peak=0.0), 'peak=0.0 must be > 0'),
    (_config(name='inpaint', keep_prob=0.0), r'keep_prob=0.0 must be in'),
    (_config(name='inpaint', keep_prob=1.5), r'keep_prob=1.5 must be in'),
    (_config(name='gaussian', sigma='high'), 'is not a number'),
])
def test_invalid_configs_raise(cfg, match):
  with pytest.raises(CnnreconError, match=match):
    degrade.validate_degradation(cfg)


def test_zero_sigma_is_identity():
  images = _camera_batch(2)
  keys = jax.random.split(jax.random.key(0), 2)
  out = degrade.make_degradation(_config(name='gaussian', sigma=0))(keys,
                                                                    images)
  np.testing.assert_array_equal(out, images)
