"""Parallel-beam CT: radon / fbp against scikit-image, the exact adjoint, jit / vmap / grad, keys, configs.

Agreement reached with scikit-image 0.26 on the 64 px Shepp-Logan phantom (180 views):
`radon` max abs error 1.8e-5 (1.1e-6 of the sinogram's max, 16.3), `fbp` 7.5e-7 (9e-7 relative),
at 128 px 6.6e-5 and 2.2e-6. Not exact, because skimage computes in float64 and we in float32:
the same sampling positions (the rotated pixel centres about pixel n // 2), the same bilinear
interpolation with zeros outside, the same filters and linear back-projection, but each ray
sums 64..128 float32 samples (about 1e-7 relative rounding each) and the sampling positions
are rounded to float32 (1e-6 px). What remains is rounding, not a convention difference: a
half-pixel shift of the centre or the other rotation direction would give errors of order 1.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.transform

from cnnrecon.errors import CnnreconError
from cnnrecon.metrics import psnr
from cnnrecon.ops.base import observe_batch
from cnnrecon.ops.phantoms import inscribed_circle, random_ellipses, shepp_logan
from cnnrecon.ops.radon import FILTERS, ParallelBeamCT, add_transmission_noise, backproject, fbp, radon

SIZE = 64
FULL = np.arange(180.0)
SPARSE = np.linspace(0.0, 180.0, 45, endpoint=False)
LIMITED = np.linspace(0.0, 120.0, 60, endpoint=False)
IRREGULAR = np.array([3.7, 91.2, 250.0, -30.0, 17.0])  # any list: unsorted, beyond 180, negative


@pytest.fixture(scope='module')
def phantom():
  return shepp_logan(SIZE)


@pytest.mark.parametrize('angles', [FULL, SPARSE, IRREGULAR], ids=['180', '45', 'irregular'])
def test_radon_matches_skimage(phantom, angles):
  expected = skimage.transform.radon(phantom[..., 0].astype(np.float64), theta=angles, circle=True)
  sinogram = np.asarray(jax.jit(lambda image: radon(image, angles))(phantom[..., 0]))
  assert sinogram.shape == (SIZE, len(angles))
  error = np.abs(sinogram - expected).max()
  assert error < 1e-4 and error / np.abs(expected).max() < 1e-5, error  # measured 1.8e-5 (180 views)


@pytest.mark.parametrize('filter_name', FILTERS)
@pytest.mark.parametrize('angles', [SPARSE, LIMITED], ids=['45', 'limited120'])
def test_fbp_matches_iradon(phantom, angles, filter_name):
  sinogram = skimage.transform.radon(phantom[..., 0].astype(np.float64), theta=angles, circle=True)
  expected = skimage.transform.iradon(sinogram, theta=angles, filter_name=filter_name, circle=True)
  image = np.asarray(fbp(jnp.asarray(sinogram, jnp.float32), angles, SIZE, filter_name))
  error = np.abs(image - expected).max()
  assert error < 1e-5, error  # measured <= 1.6e-6


def test_backproject_is_the_exact_adjoint():
  x_key, y_key = jax.random.split(jax.random.key(0))
  for angles in (SPARSE, IRREGULAR):
    # Positive vectors: no cancellation in the inner products, so the relative error means something.
    x = jax.random.uniform(x_key, (SIZE, SIZE)) * jnp.asarray(inscribed_circle(SIZE))
    y = jax.random.uniform(y_key, (SIZE, len(angles)))
    lhs = float(jnp.vdot(radon(x, angles), y))
    rhs = float(jnp.vdot(x, backproject(y, angles, SIZE)))
    assert abs(lhs - rhs) <= 1e-4 * abs(lhs), (lhs, rhs)  # measured ~1e-6


def test_jit_vmap_grad(phantom):
  images = jnp.stack([phantom[..., 0], phantom[::-1, :, 0], phantom[:, ::-1, 0]])
  batched = jax.jit(jax.vmap(lambda image: radon(image, SPARSE)))(images)
  for image, sinogram in zip(images, batched):
    np.testing.assert_allclose(sinogram, radon(image, SPARSE), atol=1e-5)
  # The gradient of a data-fit term is 2 A^T (A x - y): grad goes through the exact adjoint.
  target = batched[1]
  loss = lambda image: jnp.sum((radon(image, SPARSE) - target)**2)
  gradient = jax.jit(jax.grad(loss))(images[0])
  np.testing.assert_allclose(gradient, 2 * backproject(batched[0] - target, SPARSE, SIZE), rtol=1e-4, atol=1e-3)
  # FBP is differentiable too (a learned or unrolled reconstruction trains through it).
  fbp_grad = jax.grad(lambda s: jnp.sum(fbp(s, SPARSE, SIZE)**2))(batched[0])
  assert fbp_grad.shape == batched[0].shape and bool(jnp.all(jnp.isfinite(fbp_grad)))
  np.testing.assert_allclose(jax.jit(lambda s: fbp(s, SPARSE, SIZE))(batched[0]), fbp(batched[0], SPARSE, SIZE),
                             atol=1e-5)


def test_observation_depends_only_on_its_own_key(phantom):
  operator = ParallelBeamCT(views=30, photons=1e3)
  images = jnp.stack([jnp.asarray(phantom), jnp.asarray(phantom[::-1])] * 2)
  keys = jax.random.split(jax.random.key(3), 4)
  batch = observe_batch(operator, keys, images)
  assert batch.shape == (4, SIZE, 30, 1)
  # Same image, different keys: different noise; each example equals its single, unbatched draw
  # and the same draw in another batch, at another position.
  assert not np.allclose(batch[0], batch[2])
  alone = [operator.apply(key, image) for key, image in zip(keys, images)]
  np.testing.assert_allclose(batch, jnp.stack(alone), atol=1e-4)
  swapped = observe_batch(operator, keys[::-1][:2], images[::-1][:2])
  np.testing.assert_allclose(swapped, batch[::-1][:2], atol=1e-4)


def test_transmission_noise_statistics():
  line_integral, photons, attenuation = 20.0, 1e4, 0.05
  measured = add_transmission_noise(jax.random.key(0), jnp.full((200_000,), line_integral), photons=photons,
                                    attenuation=attenuation)
  expected_counts = photons * np.exp(-attenuation * line_integral)
  # Delta method: Var[-log(N / photons) / a] = 1 / (a^2 E[N]) for Poisson counts N.
  np.testing.assert_allclose(np.var(measured), 1 / (attenuation**2 * expected_counts), rtol=0.03)
  np.testing.assert_allclose(np.mean(measured), line_integral, atol=0.01)
  # No photons at all: a finite (large) line integral, not inf.
  dark = add_transmission_noise(jax.random.key(1), jnp.full((10,), 1e4), photons=10.0, attenuation=1.0)
  assert bool(jnp.all(jnp.isfinite(dark)))


def test_fbp_psnr_full_sparse_limited():
  """FBP PSNR (dB) on the Shepp-Logan phantom, noise-free, ramp filter.

  Measured at 128 px: 180 views 29.95, 90 views 29.80, 45 views 27.87, 120 degrees (120 views)
  18.36. At 64 px 45 views are nearly complete (28.38 vs 28.13 dB: a 64 px image needs about
  pi / 2 * 64 = 100 views, and the phantom is smooth), hence 128 px here; at 256 px: 30.77,
  29.23, 23.84 and 17.52.
  """
  size = 128
  clean = jnp.asarray(shepp_logan(size))
  scores = {}
  for name, operator in {'180': ParallelBeamCT(views=180), '45': ParallelBeamCT(views=45),
                         'limited120': ParallelBeamCT(views=120, angle_range=120)}.items():
    estimate = operator.initial_estimate(operator.apply(jax.random.key(0), clean))
    assert estimate.shape == clean.shape
    scores[name] = float(psnr(estimate, clean))
  assert scores['180'] > 29.5, scores
  assert scores['180'] > scores['45'] + 1.5, scores
  assert scores['180'] > scores['limited120'] + 10, scores


@pytest.mark.parametrize('options, key', [
    (dict(views=0), 'task.ct.views'),
    (dict(views=-3), 'task.ct.views'),
    (dict(views=2.5), 'task.ct.views'),
    (dict(views=45, angle_range=0), 'task.ct.angle_range'),
    (dict(views=45, angle_range=200), 'task.ct.angle_range'),
    (dict(views=45, angle_range=-10), 'task.ct.angle_range'),
    (dict(views=45, photons=0), 'task.ct.photons'),
    (dict(views=45, filter_name='cosine'), 'task.ct.filter_name'),
])
def test_bad_config_is_one_line(options, key):
  with pytest.raises(CnnreconError) as error:
    ParallelBeamCT(**options)
  message = str(error.value)
  assert key in message and '\n' not in message, message


def test_operator_shapes_and_description():
  operator = ParallelBeamCT(views=45, angle_range=120, photons=1e4)
  np.testing.assert_allclose(operator.angles_deg, np.arange(45) * 120 / 45)
  assert operator.describe() == 'CT 45 views over 120 deg, FBP ramp, Poisson 1e+04 photons'
  with pytest.raises(CnnreconError, match='square one-channel'):
    operator.apply(jax.random.key(0), jnp.zeros((SIZE, SIZE, 3)))


def test_phantoms():
  keys = jax.random.split(jax.random.key(7), 3)
  phantoms = jax.jit(jax.vmap(lambda key: random_ellipses(key, SIZE)))(keys)
  assert phantoms.shape == (3, SIZE, SIZE, 1) and phantoms.dtype == jnp.float32
  np.testing.assert_array_equal(phantoms[1], random_ellipses(keys[1], SIZE))  # a pure function of its key
  assert not np.allclose(phantoms[0], phantoms[1])
  assert float(phantoms.min()) >= 0 and float(phantoms.max()) <= 1 and float(phantoms.mean()) > 0.05
  outside = ~inscribed_circle(SIZE)
  assert not np.any(np.asarray(phantoms)[:, outside]) and not np.any(shepp_logan(SIZE)[outside])
  sl = shepp_logan(SIZE)
  assert sl.shape == (SIZE, SIZE, 1) and sl.dtype == np.float32 and sl.max() <= 1 and sl.max() > 0.9
