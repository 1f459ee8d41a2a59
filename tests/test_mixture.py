"""The DnCNN-3 mixture: its operator (per-example draws, branches, purity), its task, options and smoke run."""

import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cnnrecon.config import base_config
from cnnrecon.errors import CnnreconError
from cnnrecon.ops import DegradationMixture, observe_batch
from cnnrecon.ops.jpeg import jpeg_compress, jpeg_compress_traced
from cnnrecon.ops.noise import add_gaussian_noise
from cnnrecon.tasks import EvaluationRequest, TASKS, build_task, task_class
from cnnrecon.tasks.mixture import MixtureRestoration, trained_levels
from conftest import REPO, fails_with_one_line, trained_smoke_run
from test_ops_resize import matlab_imresize  # a numpy port of MATLAB's imresize.m

SIDE = 12  # the lcm of the scales 2, 3, 4


def _images(count, channels=1, height=SIDE, width=SIDE, seed=0):
  return jnp.asarray(np.random.default_rng(seed).random((count, height, width, channels), np.float32))


def _expected(clean: jax.Array, drawn: dict, tasks) -> np.ndarray:
  """The observations of a batch computed from its draws with the single operations, one branch at a time."""
  task = np.asarray(drawn['task'])
  expected = np.array(_noisy(drawn['noise_key'], clean, drawn['sigma']))
  for i in np.flatnonzero(task == tasks.index('jpeg')):
    expected[i] = jpeg_compress(np.asarray(clean[i]), int(drawn['quality'][i]))
  for i in np.flatnonzero(task == tasks.index('super_resolve')):
    scale = int(drawn['scale'][i])
    expected[i] = matlab_imresize(matlab_imresize(clean[i], 1 / scale), scale)
  return expected


@functools.partial(jax.jit, static_argnums=0)
def _draws(operator, keys):
  return jax.vmap(operator.draw)(keys)


@jax.jit
def _noisy(keys, clean, sigma):
  return jax.vmap(lambda k, x, s: add_gaussian_noise(k, x, sigma=s))(keys, clean, sigma)


# One compiled program per operator and batch shape, shared by the tests.
_observe = jax.jit(observe_batch, static_argnums=0)
# A batch of 12 whose draws hold every task and every scale (and every task in each half).
MIXED_KEYS = jax.random.split(jax.random.key(2), 12)


def test_draws_are_uniform_over_branches_and_levels():
  drawn = _draws(DegradationMixture(), jax.random.split(jax.random.key(19), 300))
  counts = np.bincount(np.asarray(drawn['task']), minlength=3)
  assert counts.sum() == 300 and all(70 <= count <= 130 for count in counts), counts  # 100 ± 3.7 sd
  scales = np.bincount(np.asarray(drawn['scale'])[np.asarray(drawn['task']) == 1], minlength=5)[2:]
  assert all(scales > 0) and max(scales) < 2 * min(scales), scales
  sigma, quality = np.asarray(drawn['sigma']), np.asarray(drawn['quality'])
  assert 0 <= sigma.min() < 5 and 50 < sigma.max() <= 55
  assert 5 <= quality.min() < 15 and 90 < quality.max() <= 99 and quality.dtype.kind == 'i'


def test_each_branch_is_its_single_operation_and_independent_of_the_batch():
  operator = DegradationMixture()
  drawn = _draws(operator, MIXED_KEYS)
  tasks, scales = np.asarray(drawn['task']), np.asarray(drawn['scale'])
  assert set(tasks) == set(tasks[:6]) == {0, 1, 2} and set(scales[tasks == 1]) == {2, 3, 4}
  clean = _images(12)
  whole = np.asarray(_observe(operator, MIXED_KEYS, clean))
  assert whole.shape == clean.shape and whole.dtype == np.float32
  expected, jpeg = _expected(clean, drawn, operator.tasks), tasks == operator.tasks.index('jpeg')
  np.testing.assert_array_equal(whole[jpeg], expected[jpeg])  # the codec: bit for bit
  # Noise: float32 rounding of another program (1e-7); SR: against a float64 reference.
  np.testing.assert_allclose(whole, expected, rtol=0, atol=1e-5)
  halves = np.concatenate([np.asarray(_observe(operator, MIXED_KEYS[:6], clean[:6])),
                           np.asarray(_observe(operator, MIXED_KEYS[6:], clean[6:]))])
  np.testing.assert_array_equal(halves, whole)  # a batch split over devices: bit for bit
  alone = jax.jit(operator.apply)
  singles = np.stack([np.asarray(alone(MIXED_KEYS[i], clean[i])) for i in range(12)])
  # Alone, XLA fuses the arithmetic of one example differently (float32 rounding, 1e-7).
  np.testing.assert_allclose(singles, whole, rtol=0, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(_observe(operator, MIXED_KEYS, clean)), whole)  # same keys, same result
  assert not np.array_equal(np.asarray(_observe(operator, jax.random.split(jax.random.key(4), 12), clean)), whole)


def test_shapes_are_kept_and_the_initial_estimate_is_the_identity():
  operator = DegradationMixture(tasks=['super_resolve', 'jpeg'], scales=[3], quality_range=[50, 50])
  assert operator.tasks == ('super_resolve', 'jpeg') and operator.scales == (3,) and operator.side_multiple == 3
  clean = _images(4, channels=3, height=9, width=15)
  observed = _observe(operator, jax.random.split(jax.random.key(0), 4), clean)
  assert observed.shape == clean.shape
  np.testing.assert_array_equal(operator.initial_estimate(observed), observed)
  assert DegradationMixture(tasks=('gaussian', 'jpeg')).side_multiple == 1
  assert DegradationMixture().describe() == ('one of AWGN sigma~U[0, 55]/255 | bicubic down-up x2/x3/x4 | '
                                             'JPEG q~U{5..99} (equally likely)')
  with pytest.raises(CnnreconError, match='13x12 image is not a multiple of 12.*modcrop'):
    DegradationMixture().apply(jax.random.key(0), jnp.zeros((13, 12, 1)))


def test_traced_jpeg_quality_per_example_and_no_gradient():
  images = _images(3, channels=3, height=16, width=16)
  qualities = jnp.asarray([5, 50, 95])
  out = np.asarray(jax.jit(jax.vmap(jpeg_compress_traced))(images, qualities))
  for i, quality in enumerate([5, 50, 95]):
    np.testing.assert_array_equal(out[i], jpeg_compress(np.asarray(images[i]), quality))
  shared = np.asarray(jax.vmap(jpeg_compress_traced, in_axes=(None, 0))(images[0], qualities))
  np.testing.assert_array_equal(shared[1], jpeg_compress(np.asarray(images[0]), 50))
  with pytest.raises(CnnreconError, match='not differentiable'):
    jax.grad(lambda x: jnp.sum(jpeg_compress_traced(x, 20)))(images[0])


@pytest.mark.parametrize('options, fragment', [
    ({'quality_range': (0, 50)}, 'task.mixture.quality_range=(0, 50) must be two integers'),
    ({'quality_range': (60, 50)}, 'task.mixture.quality_range'),
    ({'sigma_range': (-1.0, 5.0)}, 'task.mixture.sigma_range=(-1.0, 5.0)'),
    ({'sigma_range': (20.0, 10.0)}, 'task.mixture.sigma_range'),
    ({'scales': (2, 5)}, 'task.mixture.scales=(2, 5)'),
    ({'tasks': ('gaussian', 'blur')}, "task.mixture.tasks=('gaussian', 'blur')"),
    ({'tasks': ()}, 'task.mixture.tasks'),
    ({'strength': 3}, 'task.mixture.strength is not an option'),
])
def test_bad_options_are_one_line(options, fragment):
  config = _mixture_config(**options)
  with pytest.raises(CnnreconError) as error:
    task_class(config).check_config(config)
  message = str(error.value)
  assert fragment in message and '\n' not in message and ('--config.' in message or 'remove it' in message)


def test_patch_sides_must_be_multiples_of_every_scale(capsys):
  for key in ('patch_size', 'eval_crop'):
    config = _mixture_config()
    config.data[key] = 40
    with pytest.raises(CnnreconError, match=f'data.{key}=40 is not a multiple of 12.*--config.data.{key}=36$'):
      task_class(config).check_config(config)
  config = _mixture_config(scales=(2, 4))
  config.data.patch_size, config.data.eval_crop = 40, 120
  task_class(config).check_config(config)  # lcm(2, 4) = 4
  fails_with_one_line(capsys, ['train', '--config', f'{REPO}/experiments/dncnn3_blind.py:smoke', '--workdir',
                               '/nonexistent/never-written', '--config.data.patch_size=40', '--no-progress'],
                      'data.patch_size=40', '--config.data.patch_size=36')


def test_trained_levels_and_evaluation_at_unseen_scales():
  assert trained_levels(_mixture_config()) == {'tasks': ('gaussian', 'super_resolve', 'jpeg'),
                                               'sigma': (0.0, 55.0), 'scales': (2, 3, 4), 'quality': (5, 99)}
  config = _mixture_config(tasks=['gaussian', 'super_resolve'], scales=[2, 3], sigma_range=[0, 50])
  assert trained_levels(config) == {'tasks': ('gaussian', 'super_resolve'), 'sigma': (0.0, 50.0),
                                    'scales': (2, 3), 'quality': None}
  single = base_config()
  single.task.name, single.task.super_resolve = 'super_resolve', ml_collections.ConfigDict({'scale': 4})
  assert trained_levels(single)['scales'] == (4,) and trained_levels(single)['sigma'] is None
  evaluated = config.copy_and_resolve_references()
  evaluated.task.name, evaluated.task.super_resolve = 'super_resolve', ml_collections.ConfigDict({'scale': 3})
  MixtureRestoration.check_evaluation(config, evaluated)
  evaluated.task.super_resolve.scale = 4
  with pytest.raises(CnnreconError, match='scales 2, 3, never x4: evaluate it at one of those with --scale'):
    MixtureRestoration.check_evaluation(config, evaluated)


def test_task_prepares_batches_as_its_operator_observes():
  config = _mixture_config()
  task = build_task(config)
  assert isinstance(task, MixtureRestoration) and TASKS.get('mixture') is MixtureRestoration
  assert (task.labels.observed, task.labels.estimate, task.labels.no_model) == ('degraded', 'restored', 'degraded')
  example = jax.jit(task.prepare)(MIXED_KEYS, _images(12))
  np.testing.assert_array_equal(example['model_input'], example['observed'])
  np.testing.assert_array_equal(example['observed'], _observe(task.operator, MIXED_KEYS, _images(12)))
  assert task.evaluation_image(np.zeros((30, 27, 1))).shape == (24, 24, 1)


def _mixture_config(**options):
  config = base_config()
  config.task.name = 'mixture'
  config.task.mixture = ml_collections.ConfigDict(options)
  config.data.patch_size, config.data.eval_crop = 48, 120
  return config


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  """`dncnn3_blind.py:smoke`, trained once per pytest run."""
  return trained_smoke_run(tmp_path_factory, 'dncnn3_blind')  # the run tests/test_spine.py checks too


def test_smoke_trains_reports_and_evaluates_per_task(smoke_run):
  from cnnrecon.evaluation import load_trained
  summary = json.loads((smoke_run / 'eval' / 'summary.json').read_text())
  assert set(summary) == {'model', 'degraded', 'baselines'} and np.isfinite(summary['model']['psnr'])
  assert 'one of AWGN sigma~U[0, 55]/255' in (smoke_run / 'report.md').read_text()
  model = load_trained(smoke_run)
  image = [('gray', np.random.default_rng(0).random((24, 36, 1), np.float32))]
  for name, options, no_model in [('gaussian', {'sigma': 25.0}, 'noisy'), ('super_resolve', {'scale': 3}, 'bicubic'),
                                  ('jpeg', {'quality': 20}, 'compressed')]:
    config = model.config.copy_and_resolve_references()
    config.task.name, config.task[name] = name, ml_collections.ConfigDict(options)
    MixtureRestoration.check_evaluation(model.config, config)
    results = TASKS.get(name).evaluate(model, image, EvaluationRequest(data='noise', config=config,
                                                                       with_baselines=False))
    assert set(results.summary) == {no_model, 'model'} and np.isfinite(results.summary['model']['psnr'])
