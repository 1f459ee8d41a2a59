"""Blur and JPEG operators: against scipy / MATLAB closed forms and Pillow, the dot-product test,
jit / vmap / grad, per-example purity, the classical deblurring baselines and one-line config errors."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import skimage.data
import skimage.transform
from PIL import Image

from conftest import SHARED_DATA
from cnnrecon.errors import CnnreconError
from cnnrecon.ops import blur as blur_ops
from cnnrecon.ops import jpeg as jpeg_ops

# IJG's standard luminance table (JPEG Annex K), natural order: quality 50 uses it unscaled.
IJG_LUMINANCE = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99])


def _psnr(estimate, target):
  error = np.asarray(estimate, np.float64) - np.asarray(target, np.float64)
  return 10 * np.log10(1 / np.mean(error ** 2))


def _camera128():
  """The camera man at 128 px (4x4 block means), [128, 128, 1] float32."""
  camera = skimage.data.camera().astype(np.float64) / 255
  return skimage.transform.downscale_local_mean(camera, (4, 4)).astype(np.float32)[..., None]


def _one_line_error(make, *needles):
  with pytest.raises(CnnreconError) as caught:
    make()
  message = str(caught.value)
  assert '\n' not in message
  for needle in needles:
    assert needle in message, message
  return message


def test_gaussian_kernel_is_matlab_fspecial():
  # MATLAB: fspecial('gaussian', 3, 0.5).
  expected = np.array([[0.0113, 0.0838, 0.0113], [0.0838, 0.6193, 0.0838], [0.0113, 0.0838, 0.0113]])
  np.testing.assert_allclose(blur_ops.gaussian_kernel(3, 0.5), expected, atol=1e-4)
  kernel = blur_ops.gaussian_kernel(25, 1.6)
  assert kernel.shape == (25, 25) and np.isclose(kernel.sum(), 1) and kernel.argmax() == 12 * 25 + 12


def test_motion_kernel_is_a_normalised_antialiased_line():
  np.testing.assert_allclose(blur_ops.motion_kernel(5, 0), np.full((1, 5), 0.2))
  np.testing.assert_allclose(blur_ops.motion_kernel(5, 90), np.full((5, 1), 0.2))
  np.testing.assert_allclose(blur_ops.motion_kernel(9, 180), blur_ops.motion_kernel(9, 0))
  diagonal = blur_ops.motion_kernel(9, 45)
  assert np.isclose(diagonal.sum(), 1) and diagonal.min() >= 0
  np.testing.assert_allclose(diagonal, diagonal[::-1, ::-1], atol=1e-12)  # point-symmetric
  n = diagonal.shape[0]
  assert diagonal[n // 2, n // 2] == diagonal.max()
  # Counter-clockwise: up and to the right, along the anti-diagonal, with fractional (anti-aliased) weights.
  assert diagonal[0, -1] > 0 and diagonal[0, 0] == 0
  assert 0 < diagonal[0, -2] < diagonal[1, -2]


KERNELS = {
    'motion9@30': blur_ops.motion_kernel(9, 30),
    'random4x6': np.random.default_rng(0).random((4, 6)) / 12,
    'wider_than_image': blur_ops.gaussian_kernel(25, 4.0),
}


@pytest.mark.parametrize('boundary, mode', [('circular', 'wrap'), ('symmetric', 'reflect')])
def test_blur_matches_scipy_convolve(boundary, mode):
  image = np.random.default_rng(1).random((20, 17, 3)).astype(np.float32)
  for name, kernel in KERNELS.items():
    expected = np.stack([scipy.ndimage.convolve(image[..., c].astype(np.float64), kernel, mode=mode)
                         for c in range(3)], axis=-1)
    out = blur_ops.blur(jnp.asarray(image), kernel, boundary=boundary)
    assert out.shape == image.shape and out.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out), expected, atol=1e-5, err_msg=name)


@pytest.mark.parametrize('boundary', ['circular', 'symmetric'])
def test_blur_dot_product_test(boundary):
  rng = np.random.default_rng(2)
  x, y = (jnp.asarray(rng.standard_normal((24, 19, 2)), jnp.float32) for _ in range(2))
  kernel = blur_ops.motion_kernel(7, 60)
  ax_y = float(jnp.vdot(blur_ops.blur(x, kernel, boundary=boundary), y))
  x_aty = float(jnp.vdot(x, blur_ops.blur_adjoint(y, kernel, boundary=boundary)))
  assert abs(ax_y - x_aty) <= 1e-4 * abs(ax_y), (ax_y, x_aty)


def test_circular_adjoint_is_fourier_correlation():
  rng = np.random.default_rng(3)
  y = rng.standard_normal((16, 12, 1))
  kernel = rng.random((5, 4))
  # Closed form: A = F^-1 diag(K) F with the kernel's centre k//2 moved to the origin; A^T uses conj(K).
  embedded = np.zeros((16, 12))
  embedded[:5, :4] = kernel
  spectrum = np.fft.fft2(np.roll(embedded, (-2, -2), axis=(0, 1)))
  expected = np.real(np.fft.ifft2(np.fft.fft2(y[..., 0]) * np.conj(spectrum)))
  adjoint = blur_ops.blur_adjoint(jnp.asarray(y, jnp.float32), kernel, boundary='circular')
  np.testing.assert_allclose(np.asarray(adjoint)[..., 0], expected, atol=1e-5)


def test_blur_operator_jit_vmap_grad_and_purity():
  operator = blur_ops.Blur(kernel='gaussian', kernel_size=7, kernel_sigma=1.2, boundary='symmetric', sigma=5)
  kernel = operator.kernel_array
  clean = jnp.asarray(np.random.default_rng(4).random((3, 16, 16, 3)), jnp.float32)
  keys = jax.random.split(jax.random.key(0), 3)
  batch = jax.jit(jax.vmap(operator.apply))(keys, clean)
  assert batch.shape == clean.shape
  single = jax.jit(operator.apply)
  for i in range(3):  # an example's observation depends on its own key only
    np.testing.assert_allclose(np.asarray(batch[i]), np.asarray(single(keys[i], clean[i])), atol=1e-6)
  assert not np.array_equal(np.asarray(single(keys[1], clean[0])), np.asarray(batch[0]))

  @jax.jit
  def grad_and_closed_form(x, target):
    # grad of 0.5 ||A x + n - y||^2 is A^T (A x + n - y): the noise n does not depend on x.
    residual = lambda x: operator.apply(keys[0], x) - target
    grad = jax.grad(lambda x: 0.5 * jnp.sum(residual(x) ** 2))(x)
    noise = operator.apply(keys[0], x) - blur_ops.blur(x, kernel, boundary='symmetric')
    return grad, blur_ops.blur_adjoint(residual(x), kernel, boundary='symmetric'), noise

  grad, expected, noise = grad_and_closed_form(clean[0], clean[1])
  np.testing.assert_allclose(np.asarray(grad), np.asarray(expected), atol=1e-5)
  np.testing.assert_allclose(float(np.std(noise)), 5 / 255, rtol=0.1)


def test_blur_operator_kernels_and_describe(tmp_path):
  assert blur_ops.Blur(sigma=2).describe() == 'Gaussian blur 25x25 sigma=1.6, circular, AWGN sigma=2/255'
  motion = blur_ops.Blur(kernel='motion', length=5, angle=0, boundary='symmetric')
  np.testing.assert_allclose(motion.kernel_array, np.full((1, 5), 0.2))
  assert motion.describe() == 'motion blur length=5 angle=0, symmetric, AWGN sigma=0/255'
  np.save(tmp_path / 'k.npy', np.array([[0, 1, 0], [1, 2, 1], [0, 1, 0]]))
  from_npy = blur_ops.Blur(kernel=str(tmp_path / 'k.npy'))
  np.testing.assert_allclose(from_npy.kernel_array, np.array([[0, 1, 0], [1, 2, 1], [0, 1, 0]]) / 6)
  assert from_npy.describe().startswith('blur kernel k.npy, circular')
  Image.fromarray(np.array([[0, 255, 0], [0, 255, 0]], np.uint8)).save(tmp_path / 'k.png')
  np.testing.assert_allclose(blur_ops.kernel_from_file(tmp_path / 'k.png'), [[0, 0.5, 0], [0, 0.5, 0]])
  assert hash(from_npy) == hash(blur_ops.Blur(kernel=str(tmp_path / 'k.npy')))  # usable as a static argument


def test_bad_kernel_files_are_one_line(tmp_path):
  bad = {
      'cube.npy': (lambda p: np.save(p, np.ones((3, 3, 3))), 'not a non-empty 2-D'),
      'empty.npy': (lambda p: np.save(p, np.zeros((0, 3))), 'not a non-empty 2-D'),
      'negative.npy': (lambda p: np.save(p, np.array([[1.0, -0.5], [1.0, 1.0]])), 'negative'),
      'zeros.npy': (lambda p: np.save(p, np.zeros((3, 3))), 'sums to 0'),
      'nan.npy': (lambda p: np.save(p, np.array([[1.0, np.nan]])), 'non-finite'),
      'pickled.npy': (lambda p: np.save(p, np.array([{'a': 1}], dtype=object)), 'unreadable'),
      'text.png': (lambda p: p.write_text('not an image'), 'unreadable'),
      'colour.png': (lambda p: Image.new('RGB', (3, 3)).save(p), 'not a gray one'),
      'kernel.txt': (lambda p: p.write_text('1 2 3'), 'neither .npy nor .png'),
  }
  for name, (write, reason) in bad.items():
    path = tmp_path / name
    write(path)
    _one_line_error(lambda: blur_ops.Blur(kernel=str(path)), str(path), reason)
  _one_line_error(lambda: blur_ops.kernel_from_file(tmp_path / 'missing.npy'), 'missing.npy', 'unreadable')


def test_bad_blur_options_are_one_line():
  _one_line_error(lambda: blur_ops.Blur(boundary='replicate'), 'task.deblur.boundary', 'circular, symmetric')
  _one_line_error(lambda: blur_ops.blur(jnp.zeros((4, 4, 1)), np.ones((3, 3)), boundary='zero'),
                  'task.deblur.boundary')
  _one_line_error(lambda: blur_ops.Blur(sigma=-1), 'task.deblur.sigma')
  _one_line_error(lambda: blur_ops.Blur(kernel_size=0), 'task.deblur.kernel_size')
  _one_line_error(lambda: blur_ops.Blur(kernel_sigma=0), 'task.deblur.kernel_sigma')
  _one_line_error(lambda: blur_ops.Blur(kernel='motion', length=0.5), 'task.deblur.length')
  _one_line_error(lambda: blur_ops.Blur(kernel=3), 'task.deblur.kernel')


def test_wiener_and_richardson_lucy_beat_the_observation():
  # Camera 128 px, Gaussian 25x25 sigma 1.6, noise 2/255, seed 0: observation 23.41 dB, Wiener (balance
  # 0.003) 25.72 dB, Richardson-Lucy (30 iterations) 25.49 dB; symmetric boundary: 24.06 / 26.28 / 26.09.
  clean = _camera128()
  for boundary in ('circular', 'symmetric'):
    operator = blur_ops.Blur(kernel_sigma=1.6, sigma=2, boundary=boundary)
    observed = np.asarray(operator.apply(jax.random.key(0), jnp.asarray(clean)))
    observed_psnr = _psnr(observed, clean)
    wiener = blur_ops.wiener_baseline(observed, operator.kernel_array, 0.003, boundary=boundary)
    lucy = blur_ops.richardson_lucy_baseline(observed, operator.kernel_array, 30, boundary=boundary)
    assert wiener.shape == clean.shape and wiener.dtype == np.float32
    assert 23.3 < observed_psnr < 24.2
    assert _psnr(wiener, clean) > observed_psnr + 2.0, boundary
    assert _psnr(lucy, clean) > observed_psnr + 1.8, boundary


def test_jpeg_quality_orders_psnr_and_matches_pillow():
  gray = skimage.data.camera()[:128, :128]
  rgb = skimage.data.astronaut()[:128, :128]
  for image in (gray[..., None], rgb):
    low, high = (_psnr(jpeg_ops.jpeg_compress(image, q), image / 255) for q in (10, 90))
    assert low + 8 < high, (low, high)
  buffer = io.BytesIO()
  Image.fromarray(gray).save(buffer, format='JPEG', quality=20)
  direct = np.asarray(Image.open(buffer), np.float32) / 255
  ours = jpeg_ops.jpeg_compress(gray[..., None].astype(np.float32) / 255, 20)
  assert ours.shape == (128, 128, 1) and ours.dtype == np.float32
  np.testing.assert_array_equal(ours[..., 0], direct)
  # The bitstream: IJG tables (quality 50 = Annex K unscaled), 4:2:0 chroma for RGB.
  buffer = io.BytesIO()
  Image.fromarray(rgb).save(buffer, format='JPEG', quality=50, subsampling=2)
  with Image.open(buffer) as picture:
    np.testing.assert_array_equal(np.asarray(picture.quantization[0]), IJG_LUMINANCE)
    assert picture.layer[0][1:3] == (2, 2) and picture.layer[1][1:3] == (1, 1)
  np.testing.assert_array_equal(jpeg_ops.jpeg_compress(rgb, 50), np.asarray(Image.open(buffer), np.float32) / 255)


@pytest.mark.skipif(not (SHARED_DATA / 'classic5').is_dir(), reason='needs ../shared/data/classic5')
def test_jpeg_reproduces_the_published_classic5_baseline():
  # The JPEG rows of ARCNN / DnCNN (MATLAB imwrite, PSNR on uint8): 27.82 / 30.12 / 31.48 / 32.43 dB.
  images = [np.asarray(Image.open(path))[..., None] for path in sorted((SHARED_DATA / 'classic5').glob('*.bmp'))]
  assert len(images) == 5 and all(image.shape[-1] == 1 for image in images)
  for quality, published in ((10, 27.82), (20, 30.12), (30, 31.48), (40, 32.43)):
    scores = [_psnr(np.round(jpeg_ops.jpeg_compress(image, quality) * 255) / 255, image / 255) for image in images]
    assert abs(np.mean(scores) - published) < 0.005, (quality, np.mean(scores))


def test_jpeg_operator_under_jit_and_vmap_equals_eager():
  operator = jpeg_ops.JpegCompression(quality=20)
  images = np.stack([skimage.data.astronaut()[i * 32:(i + 1) * 32, :48] for i in range(3)]).astype(np.float32) / 255
  keys = jax.random.split(jax.random.key(0), 3)
  batch = np.asarray(jax.jit(jax.vmap(operator.apply))(keys, jnp.asarray(images)))
  for i in range(3):  # the same bytes as the eager codec, whatever the batch
    np.testing.assert_array_equal(batch[i], jpeg_ops.jpeg_compress(images[i], 20))
    np.testing.assert_array_equal(np.asarray(jax.jit(operator.apply)(keys[2 - i], jnp.asarray(images[i]))), batch[i])
  first = batch[0]
  assert operator.initial_estimate(first) is first
  assert operator.describe() == 'JPEG q=20 (libjpeg, 4:2:0 for RGB)'
  _one_line_error(lambda: jax.grad(lambda x: operator.apply(keys[0], x).sum())(jnp.asarray(images[0])),
                  'not differentiable')


def test_bad_jpeg_quality_is_one_line():
  for quality in (0, 101, 20.5, True, '20'):
    _one_line_error(lambda: jpeg_ops.JpegCompression(quality=quality), '--quality', 'task.jpeg.quality', '1..100')
  _one_line_error(lambda: jpeg_ops.jpeg_compress(np.zeros((8, 8), np.uint8), 0), '--quality')
  assert jpeg_ops.JpegCompression(quality=100.0).describe().startswith('JPEG q=100 ')
