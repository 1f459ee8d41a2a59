"""Forward operators and tasks: statistics against closed forms, keys, per-example purity, config errors."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import skimage.data

from cnnrecon.config import base_config
from cnnrecon.errors import CnnreconError
from cnnrecon.ops import masks
from cnnrecon.ops import noise
from cnnrecon.tasks import TASKS, build_task


def _task_config(name, **options):
  config = base_config()
  config.task = ml_collections.ConfigDict({'name': name, name: options})
  return config


def _task(name, **options):
  return build_task(_task_config(name, **options))


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


def test_poisson_gaussian_noise_mean_and_variance():
  level, peak, sigma = 0.4, 20.0, 10.0
  images = jnp.full((1000, 1000), level, jnp.float32)
  noisy = np.asarray(noise.add_poisson_gaussian_noise(jax.random.key(0), images, peak=peak, sigma=sigma), np.float64)
  np.testing.assert_allclose(noisy.mean(), level, rtol=5e-3)
  np.testing.assert_allclose(noisy.var(), level / peak + (sigma / 255) ** 2, rtol=1e-2)
  # Shot and read noise come from independent keys: not pure counts, not pure Gaussian.
  assert not np.allclose(noisy * peak, np.round(noisy * peak), atol=1e-4)


@pytest.mark.parametrize('name, options', [
    ('gaussian', dict(sigma=25)),
    ('poisson', dict(peak=30.0)),
    ('poisson_gaussian', dict(peak=30.0, sigma=10.0)),
    ('inpaint', dict(keep_prob=0.5)),
])
def test_batch_equals_per_example(name, options):
  task = _task(name, **options)
  images = _camera_batch()
  keys = jax.random.split(jax.random.key(7), 4)
  example = task.prepare(keys, images)
  batched = np.asarray(example['observed'])
  assert batched.shape == images.shape and batched.dtype == np.float32
  np.testing.assert_array_equal(example['model_input'], batched)  # the identity initial estimate
  np.testing.assert_array_equal(example['target'], images)
  for i in range(4):
    np.testing.assert_array_equal(batched[i], task.operator.apply(keys[i], images[i]))
  np.testing.assert_array_equal(batched, task.prepare(keys, images)['observed'])
  other = task.prepare(jax.random.split(jax.random.key(8), 4), images)['observed']
  assert not np.array_equal(batched, np.asarray(other))


def test_inpaint_drops_all_channels_of_a_pixel():
  images = jnp.ones((2, 32, 32, 3))
  keys = jax.random.split(jax.random.key(0), 2)
  observed = _task('inpaint', keep_prob=0.5).prepare(keys, images)['observed']
  channels_agree = observed == observed[..., :1]
  assert bool(channels_agree.all())


def test_every_registered_task_builds_from_the_base_config():
  from cnnrecon.config import base_config
  config = base_config()
  # The package's reconstruction tasks (style tasks are built with their VGG in tests/test_fast_style.py
  # and test_adain.py; a test may have registered tasks of its own).
  names = [name for name in TASKS.names() if TASKS.get(name).__module__.startswith('cnnrecon.tasks.')]
  assert set(names) == {'gaussian', 'poisson', 'poisson_gaussian', 'inpaint', 'inpaint_regions', 'deblur',
                        'super_resolve', 'jpeg', 'ct', 'mixture'}
  for name in names:  # the tasks of issue 19 bring no base_config section: their options have defaults
    config.task.name = name
    task = build_task(config)
    assert task.describe() and task.labels.observed and task.labels.estimate


def test_tasks_describe_themselves_and_their_baselines():
  assert _task('gaussian', sigma=25).describe() == 'AWGN sigma=25/255'
  assert set(_task('gaussian', sigma=25).baselines) == {'nl_means', 'tv', 'wavelet'}
  assert _task('gaussian', sigma=0).baselines == {}  # no noise: nothing for a denoiser to estimate
  assert _task('poisson_gaussian', peak=30, sigma=10).describe() == 'Poisson peak=30 + AWGN sigma=10/255'
  assert _task('poisson_gaussian', peak=30, sigma=10).baselines == {}
  assert _task('inpaint', keep_prob=0.25).labels.observed == 'masked'


@pytest.mark.parametrize('config, match', [
    (_task_config('blur'), r"unknown task.name='blur'; known: gaussian, poisson, poisson_gaussian, inpaint"),
    (_task_config('gaussian', sigma=-5), r'task.gaussian.sigma=-5 must be >= 0.*sigma=25'),
    (_task_config('gaussian', sigma='high'), 'is not a number'),
    (_task_config('gaussian', sigma=float('nan')), 'is not a number'),
    (_task_config('gaussian', sigma=25, peak=3), r'task.gaussian.peak is not an option of task .gaussian.'),
    (_task_config('poisson', peak=0.0), r'task.poisson.peak=0.0 must be > 0'),
    (_task_config('poisson_gaussian', peak=10.0, sigma=-1.0), r'task.poisson_gaussian.sigma=-1.0 must be >= 0'),
    (_task_config('inpaint', keep_prob=0.0), r'keep_prob=0.0 must be > 0'),
    (_task_config('inpaint', keep_prob=1.5), r'keep_prob=1.5 must be in \(0, 1\]'),
])
def test_invalid_task_configs_raise(config, match):
  with pytest.raises(CnnreconError, match=match):
    build_task(config)


def test_zero_sigma_is_identity():
  images = _camera_batch(2)
  keys = jax.random.split(jax.random.key(0), 2)
  np.testing.assert_array_equal(_task('gaussian', sigma=0).prepare(keys, images)['observed'], images)
