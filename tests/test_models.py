"""Models: shapes on odd sizes, residual identity, BatchNorm, registry errors.

Compilation dominates the run time on CPU, so tests jit whole init/apply calls
(one compile instead of one per eager op), share variables, and check shapes
that need no numbers with `jax.eval_shape` (which compiles nothing).
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.models import registry

NAMES = ('seed_stack', 'dncnn', 'unet')


def _model_config(name, depth=3, features=8, dtype='float32', **extra):
  return ml_collections.ConfigDict(
      dict(name=name, depth=depth, features=features, dtype=dtype, **extra))


def _build(name, channels=1, **config):
  return registry.build_model(_model_config(name, **config), channels=channels)


@functools.cache
def _built(name):
  """A one-channel model and its variables (params do not depend on H, W)."""
  model = _build(name)
  init = compiler.jit_run_once(functools.partial(model.init, train=False))
  return model, init(jax.random.key(0), jnp.zeros((1, 16, 16, 1)))


def _apply(model, variables, x, **kwargs):
  return jax.jit(functools.partial(model.apply, **kwargs))(variables, x)


def _abstract_apply(model, shape, *, train=False):
  """Output and variables shapes/dtypes of init + apply, without compiling."""
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  variables = jax.eval_shape(
      functools.partial(model.init, train=False), jax.random.key(0), x)
  y = jax.eval_shape(functools.partial(model.apply, train=train), variables, x)
  return y, variables


@pytest.mark.parametrize('name', NAMES)
def test_output_shape_and_values_on_odd_size(name):
  model, variables = _built(name)
  x = jax.random.uniform(jax.random.key(1), (2, 37, 45, 1))
  y = _apply(model, variables, x, train=False)
  assert y.shape == x.shape and y.dtype == jnp.float32
  assert bool(jnp.isfinite(y).all())


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('shape', [(1, 32, 32, 3), (3, 17, 64, 2),
                                   (1, 5, 9, 1)])
def test_output_shape_for_channels_and_sizes(name, shape):
  y, _ = _abstract_apply(_build(name, channels=shape[-1]), shape)
  assert y.shape == shape and y.dtype == jnp.float32


def test_dncnn_zero_last_conv_is_identity():
  model, variables = _built('dncnn')
  x = jax.random.uniform(jax.random.key(1), (2, 37, 45, 1))
  zeroed = jax.tree.map(jnp.zeros_like, variables['params']['Conv_2'])
  params = {**variables['params'], 'Conv_2': zeroed}
  y = _apply(model, {**variables, 'params': params}, x, train=False)
  np.testing.assert_array_equal(y, x)


def test_dncnn_param_names_follow_the_paper_layout():
  model = _build('dncnn', depth=17, features=4, dncnn={'bn_epsilon': 1e-3})
  assert model.bn_epsilon == 1e-3
  _, variables = _abstract_apply(model, (1, 8, 8, 1))
  convs = {f'Conv_{i}' for i in range(17)}
  norms = {f'BatchNorm_{i}' for i in range(15)}
  assert set(variables['params']) == convs | norms
  assert set(variables['batch_stats']) == norms
  assert 'bias' in variables['params']['Conv_0']
  assert 'bias' not in variables['params']['Conv_1']
  assert variables['params']['Conv_16']['kernel'].shape == (3, 3, 4, 1)


def test_dncnn_ablation_options_drop_batchnorm_and_residual_learning():
  no_norm = _build('dncnn', depth=4, features=4, dncnn={'batch_norm': False})
  _, variables = _abstract_apply(no_norm, (1, 8, 8, 1))
  assert set(variables['params']) == {'Conv_0', 'Conv_1', 'Conv_2', 'Conv_3'} and not variables.get('batch_stats')
  assert 'bias' in variables['params']['Conv_1']  # body convs get the bias BatchNorm would have given them
  # Without residual learning the net outputs its last conv: zero at init (the residual net is the identity).
  direct = _build('dncnn', depth=3, features=4, dncnn={'residual': False})
  x = jax.random.uniform(jax.random.key(2), (1, 9, 11, 1))
  variables = compiler.jit_run_once(functools.partial(direct.init, train=False))(jax.random.key(0), x)
  np.testing.assert_array_equal(_apply(direct, variables, x, train=False), np.zeros_like(x))


@pytest.mark.parametrize('name', ['dncnn', 'unet'])
def test_batch_stats_update_only_in_train_mode(name):
  model, variables = _built(name)
  x = jax.random.uniform(jax.random.key(1), (4, 16, 16, 1))
  _, updates = _apply(model, variables, x, train=True,
                      mutable=['batch_stats'])
  changed = jax.tree.map(lambda a, b: bool((a != b).any()),
                         variables['batch_stats'], updates['batch_stats'])
  assert all(jax.tree.leaves(changed))
  # Eval mode reads the running statistics and needs nothing mutable.
  assert _apply(model, variables, x, train=False).shape == x.shape


@pytest.mark.parametrize('name', NAMES)
def test_low_precision_keeps_float32_params_and_output(name):
  for dtype in ('bfloat16', 'float16'):
    y, variables = _abstract_apply(_build(name, dtype=dtype), (2, 16, 16, 1))
    assert {v.dtype for v in jax.tree.leaves(variables)} == {
        jnp.dtype(jnp.float32)}
    assert y.dtype == jnp.float32


def test_bfloat16_runs():
  # The UNet uses every layer type the other models use.
  _, variables = _built('unet')
  model = _build('unet', dtype='bfloat16')
  x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 1))
  y = _apply(model, variables, x, train=False)
  assert y.dtype == jnp.float32 and bool(jnp.isfinite(y).all())
  reference = _apply(_built('unet')[0], variables, x, train=False)
  np.testing.assert_allclose(y, reference, atol=0.1)


def test_seed_stack_too_deep_names_largest_depth():
  message = ('model.depth=18 is impossible for seed_stack on 32x32 inputs: '
             '18 2x2 max-pools need sides divisible by 262144; the largest '
             'depth that fits 32x32 is 5. Set --config.model.depth to at '
             'most 5.')
  with pytest.raises(CnnreconError) as error:
    registry.build_model(_model_config('seed_stack', depth=18), channels=1,
                         image_size=32)
  assert str(error.value) == message
  registry.build_model(_model_config('seed_stack', depth=5), channels=1,
                       image_size=32)


def test_unet_depth_checked_against_image_size():
  with pytest.raises(CnnreconError, match='largest depth that fits 40x40 is 3'):
    registry.build_model(_model_config('unet', depth=4), channels=1,
                         image_size=40)
  registry.build_model(_model_config('dncnn', depth=17), channels=1,
                       image_size=41)  # fully convolutional: any size


@pytest.mark.parametrize('config, match', [
    (_model_config('resnet'), 'unknown model.name=.resnet.; known: seed_stack, dncnn, unet'),
    (_model_config('unet', depth=0), 'model.depth=0 must be a positive'),
    (_model_config('unet', features=0), 'model.features=0 must be a positive'),
    (_model_config('unet', dtype='float8'), 'unknown model.dtype=.float8.; known: float32'),
    (_model_config('dncnn', depth=1), 'too shallow for dncnn'),
])
def test_bad_configs_raise(config, match):
  with pytest.raises(CnnreconError, match=match):
    registry.build_model(config, channels=1)


def test_bn_axis_name_reaches_batchnorm():
  _, variables = _built('dncnn')
  model = registry.build_model(_model_config('dncnn'), channels=1,
                               bn_axis_name='data')
  x = jax.random.uniform(jax.random.key(1), (2, 8, 8, 1))

  def train_forward(x):
    return _apply(model, variables, x, train=True, mutable=['batch_stats'])

  _, updates = jax.vmap(train_forward, axis_name='data')(x[:, None])
  means = updates['batch_stats']['BatchNorm_0']['mean']
  # Averaged over the named axis, so every member holds the same statistics,
  # which equal those of the whole batch.
  np.testing.assert_allclose(means[0], means[1], rtol=1e-6)
  _, whole = _apply(_built('dncnn')[0], variables, x, train=True,
                                      mutable=['batch_stats'])
  np.testing.assert_allclose(means[0], whole['batch_stats']['BatchNorm_0'][
      'mean'], rtol=1e-5, atol=1e-6)
