"""MATLAB-compatible bicubic imresize and the super-resolution operator.

Checked against an independent float64 numpy port of MATLAB's imresize.m
(contributions, cubic, the index mirroring, the dimension order), against the
Set5 bicubic PSNRs the SR literature publishes, for linearity (the dot-product
test), and under jit / vmap / grad.
"""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cnnrecon.errors import CnnreconError
from cnnrecon.ops import observe_batch
from cnnrecon.ops.resize import BicubicDownsample, imresize, imresize_adjoint, modcrop

SET5 = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'set5'


# --- a float64 numpy port of MATLAB's imresize.m, 'bicubic', written from the MATLAB source ---

def _matlab_cubic(x):
  absx = np.abs(x)
  absx2, absx3 = absx**2, absx**3
  return ((1.5 * absx3 - 2.5 * absx2 + 1) * (absx <= 1)
          + (-0.5 * absx3 + 2.5 * absx2 - 4 * absx + 2) * ((1 < absx) & (absx <= 2)))


def _matlab_contributions(in_length, out_length, scale):
  """MATLAB's contributions(): weights [out, P] and 0-based indices [out, P]."""
  kernel_width = 4.0
  if scale < 1:  # antialiasing
    h = lambda x: scale * _matlab_cubic(scale * x)
    kernel_width = kernel_width / scale
  else:
    h = _matlab_cubic
  x = np.arange(1, out_length + 1, dtype=np.float64)[:, None]
  u = x / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - kernel_width / 2)
  p = int(np.ceil(kernel_width)) + 2
  ind = left + np.arange(p)[None, :]
  weights = h(u - ind)
  weights = weights / weights.sum(axis=1, keepdims=True)
  aux = np.concatenate([np.arange(1, in_length + 1), np.arange(in_length, 0, -1)])
  ind = aux[np.mod(ind - 1, aux.size).astype(int)]
  keep = np.any(weights != 0, axis=0)
  return weights[:, keep], ind[:, keep] - 1


def _matlab_resize_along_dim(image, dim, weights, indices):
  moved = np.moveaxis(image, dim, 0)
  out = np.zeros((weights.shape[0],) + moved.shape[1:])
  for row in range(weights.shape[0]):
    for w, i in zip(weights[row], indices[row]):
      out[row] += w * moved[i]
  return np.moveaxis(out, 0, dim)


def matlab_imresize(image, scale=None, output_shape=None):
  """imresize(image, scale, 'bicubic') or imresize(image, output_shape, 'bicubic'), float64."""
  image = np.asarray(image, np.float64)
  in_shape = image.shape[:2]
  if output_shape is None:
    scales = (scale, scale)
    output_shape = tuple(int(math.ceil(round(scale * n, 9))) for n in in_shape)
  else:
    scales = tuple(o / n for o, n in zip(output_shape, in_shape))
  for dim in np.argsort(scales, kind='stable'):  # MATLAB: [~, order] = sort(scale)
    weights, indices = _matlab_contributions(in_shape[dim], output_shape[dim], scales[dim])
    image = _matlab_resize_along_dim(image, dim, weights, indices)
  return image


def _random_image(shape, seed=0):
  return np.random.default_rng(seed).random(shape).astype(np.float32)


# --- closed forms and the reference ---

@pytest.mark.parametrize('scale', [3, 0.7])
def test_constant_image_stays_constant(scale):
  resized = imresize(jnp.full((13, 10, 3), 0.3, jnp.float32), scale)
  assert resized.shape == (math.ceil(13 * scale), math.ceil(10 * scale), 3)
  np.testing.assert_allclose(np.asarray(resized), 0.3, atol=1e-6)


# Odd and even sides, gray and RGB, every SR scale both ways, sides shorter than the kernel.
@pytest.mark.parametrize('shape,scale', [((15, 17, 1), 2), ((15, 17, 1), 1 / 2), ((21, 10, 3), 3),
                                         ((21, 10, 3), 1 / 3), ((9, 9, 1), 4), ((23, 13, 3), 1 / 4),
                                         ((3, 2, 1), 1 / 2), ((3, 2, 3), 3)])
def test_matches_numpy_port_of_matlab(shape, scale):
  image = _random_image(shape)
  ours = np.asarray(imresize(jnp.asarray(image), scale))
  reference = matlab_imresize(image, scale)
  assert ours.shape == reference.shape
  assert np.abs(ours - reference).max() <= 1e-5


def test_quantize_uint8_rounds_after_each_axis():
  # MATLAB on a uint8 image: each axis' result is uint8 (rounded half up, saturated).
  image = np.round(_random_image((10, 8, 3), seed=6) * 255) / 255
  ours = np.asarray(imresize(jnp.asarray(image, jnp.float32), 1 / 2, quantize_uint8=True))
  rows = np.clip(np.floor(matlab_imresize(image, output_shape=(5, 8)) * 255 + 0.5), 0, 255) / 255
  both = np.clip(np.floor(matlab_imresize(rows, output_shape=(5, 4)) * 255 + 0.5), 0, 255) / 255
  assert np.abs(ours - both).max() <= 1e-6


def test_output_shape_with_different_scales_per_axis():
  # Upscale rows, shrink columns: MATLAB resizes the shrinking axis (columns) first.
  image = _random_image((11, 24, 3), seed=1)
  ours = np.asarray(imresize(jnp.asarray(image), output_shape=(17, 7)))
  assert np.abs(ours - matlab_imresize(image, output_shape=(17, 7))).max() <= 1e-5


def test_upsampling_two_pixels_by_hand():
  # [0, 1] -> 4 pixels: u = 0.75, 1.25, ...; Keys' cubic at 0.25, 0.75, 1.25, 1.75 is
  # 0.8671875, 0.2265625, -0.0703125, -0.0234375; taps beyond the edge mirror back in.
  row = imresize(jnp.asarray([[[0.0], [1.0]]]), output_shape=(1, 4))[0, :, 0]
  np.testing.assert_allclose(np.asarray(row), [-0.09375, 0.203125, 0.796875, 1.09375], atol=1e-7)


# --- linearity and transformations ---

@pytest.mark.parametrize('scale', [1 / 3, 2])
def test_dot_product_adjoint(scale):
  x = jnp.asarray(_random_image((12, 18, 2), seed=2))
  y_shape = imresize(x, scale).shape
  y = jnp.asarray(np.random.default_rng(3).standard_normal(y_shape).astype(np.float32))
  lhs = float(jnp.vdot(imresize(x, scale), y))
  adjoint = imresize_adjoint(y, (12, 18), scale)
  rhs = float(jnp.vdot(x, adjoint))
  assert abs(lhs - rhs) <= 1e-4 * abs(lhs)
  (transposed,) = jax.linear_transpose(lambda v: imresize(v, scale), x)(y)
  np.testing.assert_allclose(np.asarray(adjoint), np.asarray(transposed), atol=1e-5)


def test_jit_vmap_grad():
  batch = jnp.asarray(_random_image((3, 12, 12, 3), seed=4))
  down = jax.jit(lambda image: imresize(image, 1 / 2))
  one_by_one = jnp.stack([down(image) for image in batch])
  np.testing.assert_allclose(np.asarray(jax.vmap(down)(batch)), np.asarray(one_by_one), atol=1e-6)
  np.testing.assert_allclose(np.asarray(imresize(batch, 1 / 2)), np.asarray(one_by_one), atol=1e-6)
  grad = jax.grad(lambda image: jnp.sum(imresize(imresize(image, 1 / 2), 2) ** 2))(batch[0])
  assert grad.shape == (12, 12, 3) and bool(jnp.all(jnp.isfinite(grad)))


# --- the operator ---

@pytest.mark.parametrize('scale', [2, 3, 4])
def test_bicubic_downsample_operator(scale):
  operator = BicubicDownsample(scale)
  clean = jnp.asarray(_random_image((2, 12, 24, 3), seed=5))
  observed = observe_batch(operator, jax.random.split(jax.random.key(0), 2), clean)
  assert observed.shape == (2, 12 // scale, 24 // scale, 3)
  np.testing.assert_allclose(np.asarray(observed[0]), matlab_imresize(clean[0], 1 / scale), atol=1e-5)
  # Deterministic: the key does not matter; one example does not depend on its batch.
  again = operator.apply(jax.random.key(7), clean[1])
  np.testing.assert_allclose(np.asarray(again), np.asarray(observed[1]), atol=1e-6)
  estimate = operator.initial_estimate(observed[0])
  assert estimate.shape == (12, 24, 3)
  np.testing.assert_allclose(np.asarray(estimate), matlab_imresize(observed[0], scale), atol=1e-5)
  assert operator.describe() == f'bicubic x{scale} (MATLAB imresize)'


def test_modcrop_and_sides_not_a_multiple():
  image = np.zeros((13, 17, 3), np.float32)
  assert modcrop(image, 4).shape == (12, 16, 3)
  assert modcrop(image[None], 3).shape == (1, 12, 15, 3)
  with pytest.raises(CnnreconError, match='not a multiple of the super-resolution scale 4.*modcrop'):
    BicubicDownsample(4).apply(jax.random.key(0), jnp.asarray(image))


@pytest.mark.parametrize('scale', [5, 1.5, 1, True, '2'])
def test_bad_scale_is_one_line(scale):
  with pytest.raises(CnnreconError) as error:
    BicubicDownsample(scale)
  message = str(error.value)
  assert '\n' not in message
  assert 'task.super_resolve.scale' in message and 'allowed: 2, 3, 4' in message
  assert BicubicDownsample(2.0).scale == 2


# --- the published bicubic numbers ---

# Set5 bicubic PSNR (Y, border crop = scale), e.g. SRCNN, VDSR, EDSR tables; per image at x2.
_PUBLISHED = {2: 33.66, 3: 30.39, 4: 28.42}
_PUBLISHED_X2 = {'baby': 37.07, 'bird': 36.81, 'butterfly': 27.43, 'head': 34.86, 'woman': 32.14}


def _uint8(values):
  # MATLAB's uint8(): round half away from zero, saturate.
  return np.clip(np.floor(np.asarray(values, np.float64) + 0.5), 0, 255)


def _matlab_y_uint8(rgb):
  """rgb2ycbcr's Y of a uint8 RGB image (returned as uint8, so rounded)."""
  rgb = np.asarray(rgb, np.float64)
  return _uint8(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255)


def _psnr_255(a, b):
  return 10 * np.log10(255.0**2 / np.mean((np.asarray(a, np.float64) - b) ** 2))


def bicubic_psnr_set5(scale):
  """The SRCNN demo protocol: Y = rgb2ycbcr(uint8)(:,:,1); modcrop; im_gt = single(Y)/255;
  im_b = imresize(imresize(im_gt, 1/s), s); PSNR(uint8(im_gt*255), uint8(im_b*255)), shave s."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  # One compiled program per image size: compiling dominates this test's time.
  down_up = jax.jit(lambda image: imresize(imresize(image, 1 / scale), scale))
  values = {}
  for path in sorted(SET5.glob('*_GT.bmp')):
    luma = modcrop(_matlab_y_uint8(np.asarray(Image.open(path).convert('RGB')))[..., None], scale)
    estimate = _uint8(np.asarray(down_up(jnp.asarray(luma / 255, jnp.float32)))[..., 0] * 255)
    values[path.name[:-len('_GT.bmp')]] = _psnr_255(luma[scale:-scale, scale:-scale, 0],
                                                   estimate[scale:-scale, scale:-scale])
  return values


@pytest.mark.skipif(not SET5.is_dir(), reason='needs ../shared/data/set5')
@pytest.mark.parametrize('scale', [2, 3, 4])
def test_set5_bicubic_psnr_matches_published(scale):
  values = bicubic_psnr_set5(scale)
  assert len(values) == 5
  assert abs(np.mean(list(values.values())) - _PUBLISHED[scale]) <= 0.02
  if scale == 2:
    for name, published in _PUBLISHED_X2.items():
      assert abs(values[name] - published) <= 0.006, (name, values[name])
