"""Parallel-beam CT: the Radon transform, its exact adjoint, filtered back-projection, the operator.

Conventions are scikit-image's (`skimage.transform.radon(image, theta, circle=True)` and
`iradon`): a square image, as many detectors as pixels on a side, rotation about the pixel
(n // 2, n // 2), angles in degrees in skimage's direction, sinograms [n_detectors, n_angles].
The image is assumed zero outside its inscribed circle (skimage's `circle=True`).

How the projection is computed: rotate-and-sum. For every angle, the image is sampled with
bilinear interpolation (zero outside) on the rotated pixel grid and summed along the rays, as
skimage's `warp(..., order=1)` + `sum(0)` does. The samples are computed on the fly as gathers:
a stored projection matrix would have n_angles * n^2 * 4 non-zeros (47 M for 256 px and 180
views; 3e9 entries dense), too big to keep and slow as a sparse product on XLA's CPU backend,
while the gathers beat skimage's loop (180 views on 2 CPU cores: 4 / 12 / 75 ms for 64 / 128 /
256 px, skimage 11 / 36 / 140 ms). Angles are walked through in chunks (`lax.map`) so that a
batch of 256 px images needs tens of MB, not GB, of temporaries.

Angles are static (a list or numpy array, part of the compiled program), never traced: the
sampling positions are computed in float64 on the host and enter the program as small separable
tables whose sum is the coordinate. That is deliberate. XLA recomputes an index expression in
every fusion that uses it, and two copies of `c + cos(a) u + sin(a) v` computed with different
vector code can land on either side of an integer: the gather then reads one pixel while the
weights assume its neighbour (errors of 0.1 on a 64 px phantom). One float add of two constants
is bitwise the same in every fusion.
"""

import dataclasses
import functools
import math
from typing import Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.noise import check_number

# Samples per chunk of angles: small enough for the cache and a batch's memory, large enough
# that the loop overhead is negligible (measured on 2 CPU cores, 64..256 px).
_CHUNK_SAMPLES = 2**17

FILTERS = ('ramp', 'shepp-logan', 'hann')


def _angle_chunks(angles: tuple[float, ...], n: int):
  """Angles in radians (float64), padded to whole chunks; (angles, chunk size, number of chunks)."""
  theta = np.deg2rad(np.asarray(angles, np.float64))
  chunk = max(1, min(theta.size, _CHUNK_SAMPLES // (n * n)))
  groups = -(-theta.size // chunk)
  padded = np.concatenate([theta, np.zeros(groups * chunk - theta.size)])
  return padded, chunk, groups


def _table(values: np.ndarray, groups: int, chunk: int) -> jax.Array:
  """A per-angle table [angles, n] as float32 chunks [groups, chunk, n]."""
  return jnp.asarray(values.reshape(groups, chunk, -1), jnp.float32)


def _bilinear_ray_sums(image: jax.Array, rows: jax.Array, cols: jax.Array) -> jax.Array:
  """Sums of bilinear samples of `image` (zero outside) at [..., V] positions over the last axis."""
  n_rows, n_cols = image.shape
  # One zero pixel around the image: every neighbour outside it is clipped onto that border.
  padded = jnp.pad(image, 1).reshape(-1)
  r0 = jnp.floor(rows).astype(jnp.int32)
  c0 = jnp.floor(cols).astype(jnp.int32)
  fr, fc = rows - r0, cols - c0

  def sample(r, c):
    flat = (jnp.clip(r, -1, n_rows) + 1) * (n_cols + 2) + jnp.clip(c, -1, n_cols) + 1
    return padded[flat]

  values = ((sample(r0, c0) * (1 - fc) + sample(r0, c0 + 1) * fc) * (1 - fr)
            + (sample(r0 + 1, c0) * (1 - fc) + sample(r0 + 1, c0 + 1) * fc) * fr)
  return values.sum(-1)


def _static_angles(angles_deg: Sequence[float]) -> tuple[float, ...]:
  """The angles as a hashable tuple of floats (they select the compiled program)."""
  if isinstance(angles_deg, jax.core.Tracer):
    raise TypeError('CT angles must be static (a list or numpy array), not traced values')
  angles = np.asarray(angles_deg, np.float64)
  if angles.ndim != 1 or angles.size == 0:
    raise ValueError(f'CT angles must be a non-empty 1-D list, got shape {angles.shape}')
  return tuple(float(a) for a in angles)


def radon(image_hw: jax.Array, angles_deg: Sequence[float]) -> jax.Array:
  """Parallel-beam projections of a square image, as `skimage.transform.radon(circle=True)`.

  Linear in the image; works under `jit`, `vmap` and `grad`. One compiled program per image
  shape and list of angles, also when called outside `jit`.

  Args:
    image_hw: image [n, n] (float32), zero outside its inscribed circle.
    angles_deg: projection angles in degrees (any list: sparse, limited, unordered), static.

  Returns:
    The sinogram [n, n_angles]: detector index first, skimage's orientation.
  """
  if image_hw.ndim != 2 or image_hw.shape[0] != image_hw.shape[1]:
    raise ValueError(f'radon needs a square [n, n] image, got shape {image_hw.shape}')
  return _radon(image_hw, angles=_static_angles(angles_deg))


@functools.partial(jax.jit, static_argnames='angles')
def _radon(image_hw: jax.Array, *, angles: tuple[float, ...]) -> jax.Array:
  """`radon` for a tuple of angles."""
  n = image_hw.shape[0]
  theta, chunk, groups = _angle_chunks(angles, n)
  centre = n // 2
  cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
  offsets = np.arange(n) - centre  # detector position u and position along the ray v
  # skimage's warp samples the input at col = c + cos u + sin v, row = c - sin u + cos v.
  tables = [_table(t, groups, chunk) for t in (centre + cos * offsets, sin * offsets,
                                               centre - sin * offsets, cos * offsets)]

  def project(chunk_tables):
    col_u, col_v, row_u, row_v = chunk_tables
    return _bilinear_ray_sums(image_hw, row_u[:, :, None] + row_v[:, None, :],
                              col_u[:, :, None] + col_v[:, None, :])

  # Remat: under grad, recompute the sampling positions in the backward pass instead of saving
  # them (4 arrays of n_angles * n^2, 190 MB for 256 px and 180 views).
  sums = jax.lax.map(jax.checkpoint(project), tables).reshape(groups * chunk, n)[:len(angles)]
  return sums.T.astype(image_hw.dtype)


def backproject(sinogram: jax.Array, angles_deg: Sequence[float], size: int) -> jax.Array:
  """The exact adjoint (transpose) of `radon`: <radon(x), y> = <x, backproject(y)>.

  Not scaled or filtered; use `fbp` to reconstruct.

  Args:
    sinogram: [size, n_angles].
    angles_deg: the angles of the sinogram's columns, in degrees.
    size: side of the image.

  Returns:
    The back-projection [size, size].
  """
  angles = _static_angles(angles_deg)
  if sinogram.shape != (size, len(angles)):
    raise ValueError(f'sinogram shape {sinogram.shape} != (size={size}, n_angles={len(angles)})')
  return _backproject(sinogram, angles=angles)


@functools.partial(jax.jit, static_argnames='angles')
def _backproject(sinogram: jax.Array, *, angles: tuple[float, ...]) -> jax.Array:
  """`backproject` for a tuple of angles."""
  # radon is linear: its transpose is XLA's scatter-add of the same bilinear weights, exact by
  # construction (the same index tables). Scatters are slower than gathers on CPU (256 px, 180
  # views: 190 ms against 75 ms), which is fine for the adjoint: training only needs radon and fbp.
  size = sinogram.shape[0]
  zeros = jax.ShapeDtypeStruct((size, size), sinogram.dtype)
  (image,) = jax.linear_transpose(lambda image: _radon(image, angles=angles), zeros)(sinogram)
  return image


def fourier_filter(size: int, name: str) -> np.ndarray:
  """skimage's FBP filter of `size` (even) frequencies, float64, symmetrised for a real FFT.

  The ramp is the Fourier transform of the band-limited spatial ramp (Kak & Slaney eq. 61),
  which removes the DC bias of a sampled |w|; 'shepp-logan' and 'hann' multiply it by
  skimage's windows.
  """
  if name not in FILTERS:
    raise ValueError(f'unknown FBP filter {name!r}; choose one of {", ".join(FILTERS)}')
  lags = np.concatenate((np.arange(1, size / 2 + 1, 2, dtype=int), np.arange(size / 2 - 1, 0, -2, dtype=int)))
  spatial = np.zeros(size)
  spatial[0] = 0.25
  spatial[1::2] = -1 / (np.pi * lags)**2
  response = 2 * np.real(np.fft.fft(spatial))
  if name == 'shepp-logan':
    omega = np.pi * np.fft.fftfreq(size)[1:]
    response[1:] *= np.sin(omega) / omega
  elif name == 'hann':
    response *= np.fft.fftshift(np.hanning(size))
  # skimage keeps the real part of ifft(fft(p) * H); for a real p that equals filtering with
  # (H[k] + H[-k]) / 2, which a real FFT can use (Hann's shifted window is off by one bin).
  return (response + np.roll(response[::-1], 1)) / 2


def _padding(n_det: int) -> tuple[int, int, int]:
  """iradon's padding: to the inscribing square's diagonal, then to a power of two >= 2x (and 64).

  Returns (diagonal, detectors added before, padded size).
  """
  diagonal = int(np.ceil(np.sqrt(2) * n_det))
  return diagonal, diagonal // 2 - n_det // 2, max(64, int(2**np.ceil(np.log2(2 * diagonal))))


def fbp(sinogram: jax.Array, angles_deg: Sequence[float], size: int, filter_name: str = 'ramp') -> jax.Array:
  """Filtered back-projection, as `skimage.transform.iradon(circle=True, interpolation='linear')`.

  Works for any angles (sparse-view, limited angle); like iradon, the sum over views is scaled
  by pi / (2 n_angles) whatever range they cover. Differentiable in the sinogram; angles static.

  Args:
    sinogram: [n_detectors, n_angles] line integrals (n_detectors = the image side).
    angles_deg: the angles of its columns, in degrees.
    size: side of the reconstruction.
    filter_name: 'ramp', 'shepp-logan' or 'hann' (skimage's definitions).

  Returns:
    The reconstruction [size, size], zero outside the inscribed circle.
  """
  angles = _static_angles(angles_deg)
  if sinogram.ndim != 2 or sinogram.shape[1] != len(angles):
    raise ValueError(f'sinogram shape {sinogram.shape} does not match {len(angles)} angles')
  padded_size = _padding(sinogram.shape[0])[2]
  # The response is an argument, not a constant: the three filters share one program.
  response = jnp.asarray(fourier_filter(padded_size, filter_name)[:padded_size // 2 + 1, None], sinogram.dtype)
  return _fbp(sinogram, response, angles=angles, size=int(size))


@functools.partial(jax.jit, static_argnames=('angles', 'size'))
def _fbp(sinogram: jax.Array, response: jax.Array, *, angles: tuple[float, ...], size: int) -> jax.Array:
  """`fbp` with the filter's real-FFT response [padded // 2 + 1, 1]."""
  n_det = sinogram.shape[0]
  diagonal, before, padded_size = _padding(n_det)
  padded = jnp.pad(sinogram, ((before, padded_size - n_det - before), (0, 0)))
  filtered = jnp.fft.irfft(jnp.fft.rfft(padded, axis=0) * response, n=padded_size, axis=0)[:diagonal]
  theta, chunk, groups = _angle_chunks(angles, size)
  # One zero detector at each end; padded angles back-project zero columns.
  columns = jnp.pad(filtered, ((1, 1), (0, groups * chunk - len(angles))))
  columns = columns.T.reshape(groups, chunk, diagonal + 2)
  radius = size // 2
  offsets = np.arange(size) - radius
  # iradon samples each filtered projection at t = (col - r) cos - (row - r) sin (a detector index
  # t + diagonal // 2), linearly, zero outside: the same separable-table trick as `radon`.
  by_col = _table(np.cos(theta)[:, None] * offsets + diagonal // 2 + 1, groups, chunk)
  by_row = _table(-np.sin(theta)[:, None] * offsets, groups, chunk)

  def smear(chunk_args):
    cols, col_part, row_part = chunk_args
    position = row_part[:, :, None] + col_part[:, None, :]
    left = jnp.floor(position).astype(jnp.int32)
    frac = position - left
    # Outside the detector, both neighbours clip onto the zero ends: np.interp's left=right=0.
    take = jax.vmap(lambda column, index: column[jnp.clip(index, 0, diagonal + 1)])
    return (take(cols, left) * (1 - frac) + take(cols, left + 1) * frac).sum(0)

  # Accumulate over chunks of angles (a map, then a sum, would keep one image per chunk); remat
  # as in `radon`.
  accumulate = lambda image, chunk_args: (image + jax.checkpoint(smear)(chunk_args), None)
  image, _ = jax.lax.scan(accumulate, jnp.zeros((size, size), filtered.dtype), (columns, by_col, by_row))
  inside = offsets[:, None]**2 + offsets[None, :]**2 <= radius**2
  return image * jnp.asarray(inside, image.dtype) * (math.pi / (2 * len(angles)))


@dataclasses.dataclass(frozen=True)
class ParallelBeamCT:
  """Parallel-beam CT: `views` projections over `angle_range` degrees, optionally low-dose.

  The clean image is [n, n, 1]; the observation is its sinogram [n, views, 1] (line integrals in
  pixel units, skimage's). Angles are `angle_range * i / views`, i < views: 180 degrees is a full
  scan (sparse-view when `views` is small), less is a limited-angle scan (the missing wedge).

  With `photons`, the sinogram gets Poisson (low-dose) noise: an X-ray path of line integral p
  counts Poisson(photons * exp(-mu_scale * p / n)) photons (`mu_scale` is the attenuation of a
  unit-valued path across the whole image, so the dose does not depend on the resolution),
  and the observation is the measured line integral -log(counts / photons) * n / mu_scale.
  """

  views: int
  angle_range: float = 180.0
  photons: Optional[float] = None
  mu_scale: float = 4.0
  filter_name: str = 'ramp'

  def __post_init__(self):
    views = self.views
    if (isinstance(views, bool) or not isinstance(views, (int, float)) or not math.isfinite(views)
        or views != int(views)):
      raise CnnreconError(f'task.ct.views={views!r} is not a whole number; set e.g. --config.task.ct.views=45')
    if views <= 0:
      raise CnnreconError(f'task.ct.views={views!r} must be > 0 (the number of projections); '
                          'set e.g. --config.task.ct.views=45')
    angle_range = check_number(self.angle_range, name='task.ct.angle_range', example='180', low=0,
                               low_inclusive=False)
    if angle_range > 180:
      raise CnnreconError(f'task.ct.angle_range={self.angle_range!r} must be in (0, 180] degrees (180 is a full '
                          'parallel-beam scan); set e.g. --config.task.ct.angle_range=120')
    if self.photons is not None:
      check_number(self.photons, name='task.ct.photons', example='10000', low=0, low_inclusive=False)
    check_number(self.mu_scale, name='task.ct.mu_scale', example='4', low=0, low_inclusive=False)
    if self.filter_name not in FILTERS:
      raise CnnreconError(f'task.ct.filter_name={self.filter_name!r} is not an FBP filter; choose one of '
                          f'{", ".join(FILTERS)}, e.g. --config.task.ct.filter_name=ramp')

  @property
  def angles_deg(self) -> np.ndarray:
    """The projection angles in degrees (float64)."""
    return float(self.angle_range) * np.arange(int(self.views)) / int(self.views)

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """The sinogram [n, views, 1] of one clean [n, n, 1] image, with noise if `photons` is set."""
    if clean.ndim != 3 or clean.shape[0] != clean.shape[1] or clean.shape[2] != 1:
      raise CnnreconError(f'CT needs square one-channel images [n, n, 1], got shape {tuple(clean.shape)}; '
                          'set --config.data.channels=1 and square patches (data.patch_size)')
    sinogram = radon(clean[..., 0], self.angles_deg)
    if self.photons is not None:
      sinogram = add_transmission_noise(key, sinogram, photons=float(self.photons),
                                        attenuation=float(self.mu_scale) / clean.shape[0])
    return sinogram[..., None]

  def initial_estimate(self, observed: jax.Array) -> jax.Array:
    """FBP of one sinogram [n, views, 1] back to [n, n, 1]."""
    size = observed.shape[0]
    return fbp(observed[..., 0], self.angles_deg, size, self.filter_name)[..., None]

  def describe(self) -> str:
    """e.g. 'CT 45 views over 180 deg, FBP ramp, Poisson 1e+04 photons'."""
    dose = f', Poisson {self.photons:.0e} photons' if self.photons is not None else ''
    return f'CT {int(self.views)} views over {self.angle_range:g} deg, FBP {self.filter_name}{dose}'


# Photon counts of 0 would give an infinite line integral; like LoDoPaB-CT, count them as 0.1.
_MIN_COUNT = 0.1


@functools.partial(jax.jit, static_argnames=('photons', 'attenuation'))
def add_transmission_noise(key: jax.Array, sinogram: jax.Array, *, photons: float,
                           attenuation: float) -> jax.Array:
  """Poisson (low-dose) noise on line integrals through the Beer-Lambert law.

  Args:
    key: typed PRNG key.
    sinogram: line integrals (any shape), in pixel units.
    photons: incident photons per detector (> 0); fewer means noisier.
    attenuation: attenuation per unit of line integral.

  Returns:
    The measured line integrals -log(counts / photons) / attenuation, same shape and dtype.
  """
  expected = photons * jnp.exp(-attenuation * sinogram)
  counts = jax.random.poisson(key, expected, sinogram.shape).astype(sinogram.dtype)
  return (-jnp.log(jnp.maximum(counts, _MIN_COUNT) / photons) / attenuation).astype(sinogram.dtype)
