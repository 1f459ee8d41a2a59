"""Speed changes that must change no result: compile.cpu_conv, the matmul upsampling, the reshape max-pool.

compile.cpu_conv: the Eigen routing is applied, changes no result, and is refused when unknown.

Gradients are compared with the same program compiled with XLA's default
choice (`xla_default`), relative error ||a - b|| / ||b|| <= 1e-5.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.models import common
from conftest import REPO, fails_with_one_line

RELATIVE = 1e-5


def _relative_error(actual, expected) -> float:
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def _conv_loss(kernel, images, *, stride, padding):
  """Sum of squares of a conv; 'reflect' pads the input as models do before a VALID conv."""
  if padding == 'reflect':
    half = kernel.shape[0] // 2
    images = jnp.pad(images, ((0, 0), (half, half), (half, half), (0, 0)), mode='reflect')
    padding = 'VALID'
  out = jax.lax.conv_general_dilated(images, kernel, (stride, stride), padding,
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  return jnp.sum(out**2)


def _inputs(size, channels_in, channels_out, *, batch=4, side=12, seed=0):
  rng = np.random.default_rng(seed)
  kernel = rng.standard_normal((size, size, channels_in, channels_out)).astype(np.float32) / size
  images = rng.random((batch, side, side, channels_in), dtype=np.float32)
  return jnp.asarray(kernel), jnp.asarray(images)


def _fused_convolutions(hlo_text: str) -> int:
  """Convolutions inside fused computations (library fusions), i.e. before the ENTRY computation."""
  return hlo_text.split('ENTRY')[0].count(' convolution(')


def test_eigen_routing_is_applied_on_cpu():
  options = compiler.compiler_options('eigen')
  assert options == {'xla_cpu_experimental_ynn_fusion_type':
                     'LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE'}
  assert compiler.compiler_options('xla_default') is None
  kernel, images = _inputs(3, 64, 64, batch=32, side=40)  # the DnCNN layer of `make bench` (compiled, not run)
  grad = jax.grad(functools.partial(_conv_loss, stride=1, padding='SAME'), argnums=(0, 1))
  routed = compiler.jit(grad).lower(kernel, images).compile().as_text()
  default = compiler.jit(grad, cpu_conv='xla_default').lower(kernel, images).compile().as_text()
  assert _fused_convolutions(default) > 0  # XLA's own choice: YNNPACK convolution fusions
  assert _fused_convolutions(routed) == 0 and routed.count(' convolution(') == 3  # forward, dx, dw on Eigen


@pytest.mark.parametrize('size, stride, padding, channels', [
    (1, 1, 'SAME', (1, 8)), (3, 1, 'SAME', (8, 8)), (3, 2, 'SAME', (8, 16)), (5, 1, 'VALID', (3, 8)),
    (9, 1, 'SAME', (1, 4)), (3, 1, 'reflect', (16, 16)), (3, 2, 'VALID', (64, 128)), (3, 1, 'SAME', (128, 1))])
def test_conv_gradients_equal_xla_default_under_jit(size, stride, padding, channels):
  kernel, images = _inputs(size, *channels, side=16 if size < 9 else 20)
  grad = jax.grad(functools.partial(_conv_loss, stride=stride, padding=padding), argnums=(0, 1))
  ours = compiler.jit(grad)(kernel, images)
  reference = compiler.jit(grad, cpu_conv='xla_default')(kernel, images)
  for mine, theirs in zip(ours, reference):
    assert _relative_error(mine, theirs) <= RELATIVE


def _data_parallel_grads(kernel, images):
  """Weight gradient of the global batch, summed over the 'data' axis."""
  grad = jax.grad(functools.partial(_conv_loss, stride=1, padding='SAME'))(kernel, images)
  return jax.lax.psum(grad, 'data')


def test_conv_gradients_equal_under_shard_map_and_pmap():
  kernel, images = _inputs(3, 8, 8, batch=jax.device_count() * 2)
  reference = compiler.jit(jax.grad(functools.partial(_conv_loss, stride=1, padding='SAME')),
                           cpu_conv='xla_default')(kernel, images)
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ('data',))
  # check_vma=False as in cnnrecon.train.parallel: the step sums gradients itself, as under pmap.
  sharded = jax.shard_map(_data_parallel_grads, mesh=mesh, in_specs=(P(), P('data')), out_specs=P(),
                          check_vma=False)
  assert _relative_error(compiler.jit(sharded)(kernel, images), reference) <= RELATIVE
  count = jax.local_device_count()
  pmapped = compiler.pmap(_data_parallel_grads, axis_name='data', in_axes=(None, 0))
  per_device = pmapped(kernel, images.reshape((count, -1) + images.shape[1:]))
  assert _relative_error(per_device[0], reference) <= RELATIVE


def test_upsample_equals_flax_conv_transpose():
  images = jnp.asarray(np.random.default_rng(0).random((2, 5, 6, 3), dtype=np.float32))
  flax_layer = nn.ConvTranspose(7, (2, 2), strides=(2, 2), kernel_init=common.he_normal_kernel_init)
  ours = common.upsample(7)
  variables = flax_layer.init(jax.random.key(1), images)
  assert jax.tree.all(jax.tree.map(np.array_equal, ours.init(jax.random.key(1), images), variables))
  np.testing.assert_allclose(ours.apply(variables, images), flax_layer.apply(variables, images), atol=1e-6)
  loss = lambda layer: lambda v: jnp.sum(layer.apply(v, images)**2)
  for mine, theirs in zip(jax.tree.leaves(jax.grad(loss(ours))(variables)),
                          jax.tree.leaves(jax.grad(loss(flax_layer))(variables))):
    assert _relative_error(mine, theirs) <= RELATIVE


def test_unknown_cpu_conv_is_refused():
  with pytest.raises(CnnreconError, match='compile.cpu_conv'):
    compiler.compiler_options('fast')


def test_cli_refuses_unknown_cpu_conv(tmp_path, capsys):
  fails_with_one_line(capsys, ['train', '--config', REPO / 'experiments/denoise_dncnn.py:smoke', '--workdir',
                               tmp_path / 'run', '--config.compile.cpu_conv=fast'], 'compile.cpu_conv')
  assert not (tmp_path / 'run').exists()


def test_conv_gradients_equal_on_four_devices(four_devices):
  """The shard_map / pmap comparison again, with the batch split over 4 forced host devices (it ran in
  the one 4-device process, `conftest.four_devices`)."""
  assert four_devices[0]['conv_gradients_on_four_devices'] == 'equal'



def test_max_pool_equals_flax_max_pool():
  images = jnp.asarray(np.random.default_rng(2).random((2, 6, 8, 3), dtype=np.float32))  # no ties
  np.testing.assert_array_equal(common.max_pool_2x2(images), nn.max_pool(images, (2, 2), strides=(2, 2)))
  ours = jax.grad(lambda x: jnp.sum(common.max_pool_2x2(x)**2))(images)
  flax_grad = jax.grad(lambda x: jnp.sum(nn.max_pool(x, (2, 2), strides=(2, 2))**2))(images)
  np.testing.assert_array_equal(ours, flax_grad)


def test_no_cpu_option_on_other_platforms(monkeypatch):
  """On GPU/TPU XLA's own convolutions are used: the routing is a CPU-only option."""
  monkeypatch.setattr(jax, 'default_backend', lambda: 'gpu')
  assert compiler.compiler_options('eigen') is None


@pytest.mark.parametrize('experiment', ['denoise_dncnn', 'denoise_unet'])
def test_run_once_compile_gives_the_default_compiles_bits(experiment):
  """`compiler.jit_run_once` (LLVM -O1, for initialisers) changes no bit of an init: DnCNN's orthogonal
  kernels, the U-Net's truncated-normal kernels and BatchNorm (smoke sizes). Every experiment's model
  and the random VGG-16 were checked the same way once (compiler.py); the transform net's default
  compile alone takes 13 s, so it is not repeated here."""
  from cnnrecon.models.registry import build_model
  from conftest import smoke_config
  # Else both programs would be default compiles and the check would hold trivially.
  assert compiler._xla_accepts(tuple(sorted(compiler._RUN_ONCE.items())))  # pylint: disable=protected-access
  config = smoke_config(experiment)
  model = build_model(config.model, channels=config.data.channels)
  init = functools.partial(model.init, train=False)
  args = (jax.random.key(3), jnp.zeros((1, 32, 32, config.data.channels)))
  fast, default = compiler.jit_run_once(init)(*args), jax.jit(init)(*args)
  assert jax.tree.structure(fast) == jax.tree.structure(default)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(default)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

