"""Building blocks against independent numpy references.

The learning-rate schedules are checked against their closed forms, the
dihedral augmentation and the validation crops against numpy index
arithmetic, and DnCNN (with and without FFDNet's space-to-depth) against a
float64 numpy forward pass with random, non-identity parameters.
"""

import functools
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from cnnrecon.data import pipeline
from cnnrecon.errors import CnnreconError
from cnnrecon.models.dncnn import DnCNN
from cnnrecon.train.state import make_schedule

# ---------------------------------------------------------------- schedules

RATE = 1e-3


def _optim(*, end_lr_factor=0.01, step_boundaries=(0.6,), step_factor=0.1, **overrides):
  fields = dict(learning_rate=RATE, warmup_steps=10, schedule='cosine',
                cosine={'end_lr_factor': end_lr_factor},
                step={'boundaries': step_boundaries, 'factor': step_factor})
  fields.update(overrides)
  return ml_collections.ConfigDict(fields)


def _values(schedule, steps):
  """The schedule at each step, in one vectorized call."""
  return np.asarray(schedule(jnp.asarray(steps, jnp.int32)), np.float64)


def _cosine_reference(step, *, warmup, total, end_factor):
  """Linear warmup 0 -> RATE over `warmup` steps, then cosine RATE -> RATE * end_factor at `total`."""
  end = RATE * end_factor
  if step < warmup:
    return RATE * step / warmup
  if step >= total:
    return end
  progress = (step - warmup) / (total - warmup)
  return end + (RATE - end) * 0.5 * (1 + math.cos(math.pi * progress))


def _step_reference(step, *, warmup, total, boundaries, factor):
  """Linear warmup 0 -> RATE, then RATE * factor**(boundaries fraction * total passed)."""
  if step < warmup:
    return RATE * step / warmup
  return RATE * factor**sum(step >= int(fraction * total) for fraction in boundaries)


def _assert_schedule(schedule, steps, reference):
  np.testing.assert_allclose(_values(schedule, steps), [reference(s) for s in steps], rtol=2e-6, atol=1e-12)


def test_cosine_schedule_warmup_then_decay_to_end_factor():
  total, warmup = 100, 10
  schedule = make_schedule(_optim(warmup_steps=warmup, end_lr_factor=0.05), total)
  steps = [0, 1, 5, 9, 10, 11, 30, 55, 80, 99, 100, 150]
  reference = functools.partial(_cosine_reference, warmup=warmup, total=total, end_factor=0.05)
  _assert_schedule(schedule, steps, reference)
  # The landmarks themselves, spelled out.
  start, peak, mid, end = _values(schedule, [0, warmup, (warmup + total) // 2, total])
  assert start == 0.0
  np.testing.assert_allclose([peak, mid, end], [RATE, RATE * (1 + 0.05) / 2, RATE * 0.05], rtol=2e-6)


def test_cosine_schedule_without_warmup_starts_at_the_peak():
  total = 40
  schedule = make_schedule(_optim(warmup_steps=0, end_lr_factor=0.01), total)
  steps = [0, 1, 10, 20, 39, 40, 41]
  _assert_schedule(schedule, steps, functools.partial(_cosine_reference, warmup=0, total=total, end_factor=0.01))
  np.testing.assert_allclose(_values(schedule, [0, 20, 40]), [RATE, RATE * 1.01 / 2, RATE * 0.01], rtol=2e-6)


def test_cosine_warmup_longer_than_training_is_clipped():
  # warmup_steps=50 on a 10-step run becomes 9 warmup steps: the peak is
  # reached at the last step but one and the run still ends at the end rate.
  total = 10
  schedule = make_schedule(_optim(warmup_steps=50, end_lr_factor=0.1), total)
  steps = list(range(0, 12))
  _assert_schedule(schedule, steps, functools.partial(_cosine_reference, warmup=9, total=total, end_factor=0.1))
  np.testing.assert_allclose(_values(schedule, [0, 3, 9, 10]), [0.0, RATE / 3, RATE, RATE * 0.1], rtol=2e-6)


def test_step_schedule_drops_at_each_boundary_without_warmup():
  total = 100
  boundaries = (0.3, 0.75)  # steps 30 and 75
  schedule = make_schedule(_optim(schedule='step', warmup_steps=0, step_boundaries=boundaries, step_factor=0.2),
                           total)
  steps = [0, 1, 29, 31, 50, 74, 76, 99, 100]
  expected = [RATE, RATE, RATE, RATE * 0.2, RATE * 0.2, RATE * 0.2, RATE * 0.04, RATE * 0.04, RATE * 0.04]
  np.testing.assert_allclose(_values(schedule, steps), expected, rtol=2e-6)
  _assert_schedule(schedule, steps, functools.partial(_step_reference, warmup=0, total=total, boundaries=boundaries,
                                                      factor=0.2))


def test_step_schedule_warms_up_linearly():
  total, warmup = 100, 10
  schedule = make_schedule(_optim(schedule='step', warmup_steps=warmup, step_boundaries=(0.3, 0.75),
                                  step_factor=0.2), total)
  np.testing.assert_allclose(_values(schedule, [0, 1, 5, 9, 10, 20, 29]),
                             [0.0, RATE / 10, RATE / 2, RATE * 0.9, RATE, RATE, RATE], rtol=2e-6, atol=1e-12)


# optax.join_schedules hands the step schedule `step - warmup`; make_schedule shifts the drops back
# (this test failed before that fix: the drops landed `warmup` steps late).
def test_step_schedule_drops_at_fractions_of_train_steps_with_warmup():
  total, warmup = 100, 10
  boundaries = (0.3, 0.75)
  schedule = make_schedule(_optim(schedule='step', warmup_steps=warmup, step_boundaries=boundaries,
                                  step_factor=0.2), total)
  steps = [0, 5, 10, 29, 31, 74, 76, 99]
  _assert_schedule(schedule, steps, functools.partial(_step_reference, warmup=warmup, total=total,
                                                      boundaries=boundaries, factor=0.2))


@pytest.mark.parametrize('boundaries', [(0.0,), (1.0,), (1.5,), (-0.2,), (0.5, 1.0)])
def test_step_boundaries_outside_the_unit_interval_raise(boundaries):
  with pytest.raises(CnnreconError, match=r'optim.step.boundaries'):
    make_schedule(_optim(schedule='step', step_boundaries=boundaries), 100)


def test_unknown_schedule_raises():
  with pytest.raises(CnnreconError, match='linear'):
    make_schedule(_optim(schedule='linear'), 100)


# ---------------------------------------------------------------- dihedral


def _numpy_dihedral_group(image):
  """rot90^k and its left-right mirror for k = 0..3, along the two spatial axes."""
  rotations = [np.rot90(image, k, axes=(0, 1)) for k in range(4)]
  return rotations + [np.flip(r, axis=1) for r in rotations]


def _key(array):
  return array.shape, np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize('shape', [(5, 5, 2), (4, 6, 1)])
def test_dihedral_gives_the_eight_flips_and_rotations(shape):
  image = np.random.default_rng(0).permutation(math.prod(shape)).reshape(shape).astype(np.float32)
  outputs = [pipeline.dihedral(image, index) for index in range(8)]
  np.testing.assert_array_equal(outputs[0], image)
  keys = {_key(out) for out in outputs}
  assert len(keys) == 8
  assert keys == {_key(out) for out in _numpy_dihedral_group(image)}
  for out in outputs:
    assert out.shape in (shape, (shape[1], shape[0], shape[2]))
    np.testing.assert_array_equal(np.sort(out, axis=None), np.sort(image, axis=None))
    # Channels move together: each pixel keeps its channel vector.
    assert {tuple(p) for p in out.reshape(-1, shape[2])} == {tuple(p) for p in image.reshape(-1, shape[2])}


# ---------------------------------------------------------------- validation crops


def _symmetric_index(length, size):
  """Rows of a side of `length` after symmetric ('edge-repeating') padding at the end to `size`."""
  index = np.arange(size) % (2 * length)
  return np.where(index < length, index, 2 * length - 1 - index)


def _center_crop_reference(image, crop):
  """Center window; a side shorter than `crop` is symmetric-padded at its end (bottom / right)."""
  rows, cols = [(n - crop) // 2 + np.arange(crop) if n >= crop else _symmetric_index(n, crop)
                for n in image.shape[:2]]
  return image[rows][:, cols]


class _Source:
  """A minimal random-access source: just __len__ and __getitem__."""

  def __init__(self, items):
    self._items = items

  def __len__(self):
    return len(self._items)

  def __getitem__(self, index):
    return self._items[index]


def _images(shapes, seed=0):
  rng = np.random.default_rng(seed)
  return [{'image': rng.integers(0, 256, shape, dtype=np.uint8), 'name': f'im{i}'} for i, shape in enumerate(shapes)]


# Larger than the crop (even and odd margins), shorter on one side, shorter on
# both, and shorter than half the crop (padding reflects more than once).
SHAPES = [(12, 10, 1), (9, 16, 1), (5, 11, 1), (6, 7, 1), (3, 20, 1)]


def test_symmetric_index_matches_numpy_pad():
  for length in (1, 3, 5, 8):
    np.testing.assert_array_equal(_symmetric_index(length, 8),
                                  np.pad(np.arange(length), (0, max(8 - length, 0)), mode='symmetric')[:8])


def test_validation_batch_center_crops_and_fixed_seeds():
  crop = 8
  source = _images(SHAPES)
  batch = pipeline.validation_batch(source, seed=3, crop=crop, channels=1)
  assert set(batch) == {'target', 'example_seed'}
  target, seeds = batch['target'], batch['example_seed']
  assert target.dtype == np.float32 and target.shape == (len(SHAPES), crop, crop, 1)
  expected = np.stack([_center_crop_reference(item['image'], crop) for item in source]) / np.float32(255)
  np.testing.assert_array_equal(target, expected)
  assert seeds.dtype == np.uint32 and seeds.shape == (len(SHAPES),)
  assert (seeds < 2**31 - 1).all()

  again = pipeline.validation_batch(_Source(source), seed=3, crop=crop, channels=1)
  np.testing.assert_array_equal(again['target'], target)
  np.testing.assert_array_equal(again['example_seed'], seeds)
  other = pipeline.validation_batch(source, seed=4, crop=crop, channels=1)
  np.testing.assert_array_equal(other['target'], target)
  assert (other['example_seed'] != seeds).any()


def test_validation_batch_gray_to_rgb_replicates():
  crop = 8
  source = _images(SHAPES[:3], seed=1)
  target = pipeline.validation_batch(source, seed=0, crop=crop, channels=3)['target']
  assert target.shape == (3, crop, crop, 3)
  gray = np.stack([_center_crop_reference(item['image'], crop) for item in source]) / np.float32(255)
  for channel in range(3):
    np.testing.assert_array_equal(target[..., channel:channel + 1], gray)


def test_validation_batch_rgb_to_gray_is_rounded_luminance():
  crop = 6
  source = _images([(7, 9, 3), (4, 8, 3)], seed=2)
  target = pipeline.validation_batch(source, seed=0, crop=crop, channels=1)['target']
  assert target.shape == (2, crop, crop, 1)
  rgb = np.stack([_center_crop_reference(item['image'], crop) for item in source]).astype(np.float64)
  luminance = rgb @ np.array([0.2125, 0.7154, 0.0721])
  # uint8 in gives uint8 luminance: the nearest integer level.
  np.testing.assert_allclose(target[..., 0] * 255, luminance, rtol=0, atol=0.5 + 1e-4)
  np.testing.assert_allclose(target * 255, np.round(target * 255), rtol=0, atol=1e-4)


# ---------------------------------------------------------------- DnCNN


def _random_variables(*, depth, features, channels, factor, seed=0):
  """DnCNN variables drawn with numpy, laid out as flax names them (see DnCNN's docstring)."""
  rng = np.random.default_rng(seed)
  io_channels = channels * factor**2
  widths = [io_channels] + [features] * (depth - 1) + [io_channels]

  def kernel(cin, cout):
    return (rng.standard_normal((3, 3, cin, cout)) / math.sqrt(9 * cin)).astype(np.float32)

  def vector(n, scale=0.1, offset=0.0):
    return (offset + scale * rng.standard_normal(n)).astype(np.float32)

  params, stats = {}, {}
  for layer in range(depth):
    params[f'Conv_{layer}'] = {'kernel': kernel(widths[layer], widths[layer + 1])}
    if layer in (0, depth - 1):
      params[f'Conv_{layer}']['bias'] = vector(widths[layer + 1])
  for norm in range(depth - 2):
    params[f'BatchNorm_{norm}'] = {'scale': vector(features, 0.2, 1.0), 'bias': vector(features)}
    stats[f'BatchNorm_{norm}'] = {'mean': vector(features),
                                  'var': rng.uniform(0.5, 2.0, features).astype(np.float32)}
  return {'params': params, 'batch_stats': stats}


def _conv3x3_same(x, kernel, bias=None):
  """Cross-correlation with a 3x3 kernel [3, 3, in, out] and one zero pixel of padding per side."""
  height, width = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  out = sum(np.einsum('nhwc,co->nhwo', padded[:, i:i + height, j:j + width], kernel[i, j])
            for i in range(3) for j in range(3))
  return out if bias is None else out + bias


def _pixel_unshuffle(x, factor):
  """[N, H, W, C] -> [N, H/f, W/f, f*f*C] with channel (a * f + b) * C + c = pixel (f*i + a, f*j + b, c)."""
  n, height, width, channels = x.shape
  out = np.empty((n, height // factor, width // factor, factor * factor * channels), x.dtype)
  for a in range(factor):
    for b in range(factor):
      for c in range(channels):
        out[..., (a * factor + b) * channels + c] = x[:, a::factor, b::factor, c]
  return out


def _pixel_shuffle(y, factor):
  """The inverse of `_pixel_unshuffle`."""
  n, height, width, depth = y.shape
  channels = depth // factor**2
  out = np.empty((n, height * factor, width * factor, channels), y.dtype)
  for a in range(factor):
    for b in range(factor):
      for c in range(channels):
        out[:, a::factor, b::factor, c] = y[..., (a * factor + b) * channels + c]
  return out


def _dncnn_reference(variables, x, *, depth, factor, epsilon=1e-5):
  """DnCNN in float64 numpy, inference mode: x - noise(x), on reflect-padded multiples of `factor`."""
  params = jax.tree.map(lambda v: np.asarray(v, np.float64), variables['params'])
  stats = jax.tree.map(lambda v: np.asarray(v, np.float64), variables['batch_stats'])
  x = np.asarray(x, np.float64)
  height, width = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (0, -height % factor), (0, -width % factor), (0, 0)), mode='reflect')
  y = _pixel_unshuffle(padded, factor)
  y = np.maximum(_conv3x3_same(y, params['Conv_0']['kernel'], params['Conv_0']['bias']), 0)
  for layer in range(1, depth - 1):
    y = _conv3x3_same(y, params[f'Conv_{layer}']['kernel'])
    norm, stat = params[f'BatchNorm_{layer - 1}'], stats[f'BatchNorm_{layer - 1}']
    y = (y - stat['mean']) / np.sqrt(stat['var'] + epsilon) * norm['scale'] + norm['bias']
    y = np.maximum(y, 0)
  last = params[f'Conv_{depth - 1}']
  noise = _pixel_shuffle(_conv3x3_same(y, last['kernel'], last['bias']), factor)
  return (padded - noise)[:, :height, :width]


@pytest.mark.parametrize('factor, shape', [
    (1, (2, 8, 8, 1)),
    (1, (1, 7, 10, 2)),
    (2, (2, 8, 8, 1)),
    (2, (1, 8, 6, 2)),  # several channels: checks the channel order of the shuffle
    (2, (2, 9, 9, 1)),  # odd sides: reflect-padded to 10x10, cropped back to 9x9
    (3, (1, 7, 11, 1)),  # padded to 9x12
])
def test_dncnn_matches_numpy_reference(factor, shape):
  depth, features = 4, 4
  model = DnCNN(depth=depth, features=features, space_to_depth=factor)
  x = np.random.default_rng(1).uniform(size=shape).astype(np.float32)
  variables = _random_variables(depth=depth, features=features, channels=shape[-1], factor=factor)
  # The numpy layout is exactly the one model.init produces (names, shapes, dtypes).
  abstract = jax.eval_shape(functools.partial(model.init, train=False), jax.random.key(0), x)
  as_struct = lambda v: jax.ShapeDtypeStruct(v.shape, v.dtype)
  assert jax.tree.map(as_struct, variables) == jax.tree.map(as_struct, dict(abstract))

  y = jax.jit(functools.partial(model.apply, train=False))(variables, x)
  assert y.shape == shape and y.dtype == jnp.float32
  expected = _dncnn_reference(variables, x, depth=depth, factor=factor)
  assert np.abs(expected - x).max() > 0.1  # the random net is far from the identity
  np.testing.assert_allclose(np.asarray(y), expected, rtol=0, atol=1e-5)


def test_pixel_shuffle_reference_round_trips():
  x = np.random.default_rng(2).standard_normal((1, 6, 4, 3))
  np.testing.assert_array_equal(_pixel_shuffle(_pixel_unshuffle(x, 2), 2), x)
  # Top-left pixel of each 2x2 block comes first, then top-right: TF / dm_pix order.
  y = _pixel_unshuffle(x, 2)
  np.testing.assert_array_equal(y[0, 1, 1, 0:3], x[0, 2, 2])
  np.testing.assert_array_equal(y[0, 1, 1, 3:6], x[0, 2, 3])
  np.testing.assert_array_equal(y[0, 1, 1, 6:9], x[0, 3, 2])
