"""Blur: Gaussian, motion and user kernels, circular or symmetric boundaries, plus noise.

The convolution follows MATLAB `conv2(x, k, 'same')` and `scipy.ndimage.convolve`:
a true convolution (the kernel is flipped) whose centre is index `k // 2` along each
axis, `out[i] = sum_m k[m] * x[i + k // 2 - m]`, applied to each channel alone.
Boundaries: 'circular' (periodic, what FFT-based deconvolution such as Wiener assumes)
and 'symmetric' (MATLAB `imfilter(..., 'symmetric')` = numpy pad 'symmetric' =
scipy mode 'reflect': the edge pixel is repeated).
"""

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from skimage import restoration

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.base import IdentityEstimate
from cnnrecon.ops.noise import add_gaussian_noise, check_number

BOUNDARIES = ('circular', 'symmetric')
_PAD_MODES = {'circular': 'wrap', 'symmetric': 'symmetric'}
# Gray (or 1-bit) PNG modes: a kernel is one 2-D array, never a colour picture.
_GRAY_PNG_MODES = ('1', 'L', 'I', 'I;16', 'I;16B', 'I;16L', 'F')


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
  """A `size` x `size` Gaussian, as MATLAB `fspecial('gaussian', size, sigma)`.

  Args:
    size: side in pixels (>= 1); odd sizes keep the kernel centred on a pixel.
    sigma: standard deviation in pixels (> 0).

  Returns:
    A float64 [size, size] array that sums to 1.
  """
  radius = (size - 1) / 2
  x = np.arange(size) - radius
  kernel = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * sigma ** 2))
  # fspecial drops the far tail below eps * max, so equal options give equal kernels.
  kernel[kernel < np.finfo(float).eps * kernel.max()] = 0
  return kernel / kernel.sum()


def motion_kernel(length: float, angle_deg: float) -> np.ndarray:
  """A linear motion blur of `length` pixels at `angle_deg` (counter-clockwise), MATLAB style.

  The algorithm of MATLAB `fspecial('motion', length, angle)`: a line one pixel wide
  whose pixel weights fall off linearly with their distance to it (anti-aliasing),
  built for one half and mirrored through the centre, so the kernel is point-symmetric
  and odd-sized.

  Args:
    length: length of the line in pixels (values below 1 count as 1).
    angle_deg: direction in degrees, counter-clockwise from the x axis.

  Returns:
    A float64 2-D array that sums to 1 (1 x length for angle 0).
  """
  eps = np.finfo(float).eps
  length = max(1.0, float(length))
  half = (length - 1) / 2
  phi = np.deg2rad(np.mod(angle_deg, 180))
  cos, sin = np.cos(phi), np.sin(phi)
  xsign = np.sign(cos)
  # The `- length * eps` keeps 0 and 90 degrees from growing an extra row or column.
  sx = np.trunc(half * cos + xsign - length * eps)
  sy = np.trunc(half * sin + 1 - length * eps)
  x, y = np.meshgrid(np.arange(0, sx + xsign / 2, xsign), np.arange(0, sy + 0.5))
  dist = y * cos - x * sin
  beyond_end = (np.hypot(x, y) >= half) & (np.abs(dist) <= 1)
  along = half - np.abs((x + dist * sin) / cos)
  dist = np.where(beyond_end, np.hypot(dist, along), dist)
  weights = np.maximum(1 + eps - np.abs(dist), 0)
  rows, cols = weights.shape
  kernel = np.zeros((2 * rows - 1, 2 * cols - 1))
  kernel[:rows, :cols] = np.rot90(weights, 2)
  kernel[rows - 1:, cols - 1:] = weights
  if cos > 0:
    kernel = np.flipud(kernel)
  return kernel / kernel.sum()


def kernel_from_file(path) -> np.ndarray:
  """Reads a blur kernel from `.npy` or a gray `.png`, normalised to sum 1.

  Args:
    path: the file; `.npy` is read without pickle.

  Returns:
    A float64 2-D array that sums to 1.

  Raises:
    CnnreconError: one line naming the file and what is wrong (unreadable, not 2-D,
      non-finite or negative entries, sums to 0).
  """
  path = pathlib.Path(path)
  kernel = _read_kernel_array(path)
  if kernel.ndim != 2 or kernel.size == 0:
    raise _bad_kernel(path, f'holds an array of shape {kernel.shape}, not a non-empty 2-D one')
  if not np.issubdtype(kernel.dtype, np.number) or np.issubdtype(kernel.dtype, np.complexfloating):
    raise _bad_kernel(path, f'holds {kernel.dtype} values, not real numbers')
  kernel = kernel.astype(np.float64)
  if not np.all(np.isfinite(kernel)):
    raise _bad_kernel(path, 'has non-finite entries (inf or nan)')
  if kernel.min() < 0:
    raise _bad_kernel(path, f'has negative entries (min {kernel.min():g})')
  if kernel.sum() <= 0:
    raise _bad_kernel(path, 'sums to 0')
  return kernel / kernel.sum()


def _bad_kernel(path: pathlib.Path, what: str) -> CnnreconError:
  """One line: the file, what is wrong with it, and what a kernel file must be."""
  return CnnreconError(f'kernel file {path} (task.deblur.kernel) {what}; a blur kernel is a 2-D non-negative '
                       'array that sums to > 0, in a .npy file or a gray .png')


def _read_kernel_array(path: pathlib.Path) -> np.ndarray:
  """The raw array in a `.npy` or `.png` file, or one line saying why it cannot be read."""
  if path.suffix.lower() not in ('.npy', '.png'):
    raise _bad_kernel(path, 'is neither .npy nor .png')
  try:
    if path.suffix.lower() == '.npy':
      return np.load(path, allow_pickle=False)
    with Image.open(path) as picture:
      if picture.mode not in _GRAY_PNG_MODES:
        raise _bad_kernel(path, f'is a {picture.mode} picture, not a gray one (a 2-D array)')
      return np.asarray(picture)
  except (OSError, ValueError, SyntaxError) as error:
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    raise _bad_kernel(path, f'is unreadable ({reason})') from None


def check_boundary(boundary) -> str:
  """Returns `boundary`, or a one-line error naming `task.deblur.boundary` and the choices."""
  if boundary not in BOUNDARIES:
    raise CnnreconError(f'task.deblur.boundary={boundary!r} is not one of {", ".join(BOUNDARIES)}; '
                        'set e.g. --config.task.deblur.boundary=circular')
  return boundary


# Jitted so that an eager call compiles one program, not each padding and slicing op.
@functools.partial(jax.jit, static_argnames='boundary')
def blur(image: jax.Array, kernel, *, boundary: str = 'circular') -> jax.Array:
  """Convolves each channel of an HWC image with `kernel` (a linear map, differentiable).

  Args:
    image: [H, W, C] image.
    kernel: [kh, kw] kernel (numpy or JAX; its values may be traced).
    boundary: 'circular' (periodic) or 'symmetric' (MATLAB imfilter 'symmetric').

  Returns:
    The blurred [H, W, C] image, same dtype as `image`.
  """
  check_boundary(boundary)
  kernel = jnp.asarray(kernel, image.dtype)
  if kernel.ndim != 2:
    raise CnnreconError(f'a blur kernel must be 2-D, got shape {kernel.shape}')
  kh, kw = kernel.shape
  # out[i] reads x[i + k//2 - (k-1)] .. x[i + k//2]: that many pixels before and after.
  pad = ((kh - 1 - kh // 2, kh // 2), (kw - 1 - kw // 2, kw // 2), (0, 0))
  padded = jnp.pad(image, pad, mode=_PAD_MODES[boundary])
  # Channels become the batch of a one-channel VALID correlation with the flipped kernel; HIGHEST
  # keeps GPUs from rounding the products to TF32 (the dot-product test wants 1e-4).
  channels = jnp.moveaxis(padded, -1, 0)[..., None]
  out = jax.lax.conv_general_dilated(
      channels, kernel[::-1, ::-1, None, None], window_strides=(1, 1), padding='VALID',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), precision=jax.lax.Precision.HIGHEST)
  return jnp.moveaxis(out[..., 0], 0, -1)


def blur_adjoint(image: jax.Array, kernel, *, boundary: str = 'circular') -> jax.Array:
  """The adjoint (transpose) of `blur` with the same kernel and boundary.

  For 'circular' this is the correlation with the kernel; for 'symmetric' the
  correlation followed by folding the padding back onto the pixels it copied.
  """
  def forward(x):
    return blur(x, kernel, boundary=boundary)
  (adjoint,) = jax.linear_transpose(forward, jax.ShapeDtypeStruct(image.shape, image.dtype))(image)
  return adjoint


@dataclasses.dataclass(frozen=True)
class Blur(IdentityEstimate):
  """Blur with a kernel and a boundary, then additive Gaussian noise (`sigma` on 0-255).

  `kernel` is 'gaussian' (`kernel_size`, `kernel_sigma`), 'motion' (`length`,
  `angle` in degrees) or the path of a `.npy` / gray `.png` kernel. The observation
  is not clipped, like the noise operators'.
  """

  kernel: str = 'gaussian'
  boundary: str = 'circular'
  sigma: float = 0.0
  kernel_size: int = 25
  kernel_sigma: float = 1.6
  length: float = 15.0
  angle: float = 0.0
  _array: np.ndarray = dataclasses.field(init=False, repr=False, compare=False)

  def __post_init__(self):
    check_boundary(self.boundary)
    check_number(self.sigma, name='task.deblur.sigma', example='2', low=0, low_inclusive=True)
    object.__setattr__(self, '_array', self._build_kernel())

  def _build_kernel(self) -> np.ndarray:
    if not isinstance(self.kernel, (str, pathlib.PurePath)):
      raise CnnreconError(f'task.deblur.kernel={self.kernel!r} is not a name or a file; '
                          'set --config.task.deblur.kernel=gaussian, motion or a .npy/.png path')
    if self.kernel == 'gaussian':
      size = self.kernel_size
      if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise CnnreconError(f'task.deblur.kernel_size={size!r} must be a positive integer; '
                            'set e.g. --config.task.deblur.kernel_size=25')
      sigma = check_number(self.kernel_sigma, name='task.deblur.kernel_sigma', example='1.6', low=0,
                           low_inclusive=False)
      return gaussian_kernel(size, sigma)
    if self.kernel == 'motion':
      length = check_number(self.length, name='task.deblur.length', example='15', low=1, low_inclusive=True)
      angle = check_number(self.angle, name='task.deblur.angle', example='45', low=-np.inf, low_inclusive=True)
      return motion_kernel(length, angle)
    return kernel_from_file(self.kernel)

  @property
  def kernel_array(self) -> np.ndarray:
    """The normalised kernel (a copy)."""
    return self._array.copy()

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One blurred, noisy observation of an HWC image (same size)."""
    blurred = blur(clean, self._array, boundary=self.boundary)
    return add_gaussian_noise(key, blurred, sigma=float(self.sigma))

  def describe(self) -> str:
    """E.g. 'Gaussian blur 25x25 sigma=1.6, circular, AWGN sigma=2/255'."""
    if self.kernel == 'gaussian':
      what = f'Gaussian blur {self.kernel_size}x{self.kernel_size} sigma={self.kernel_sigma:g}'
    elif self.kernel == 'motion':
      what = f'motion blur length={self.length:g} angle={self.angle:g}'
    else:
      what = f'blur kernel {pathlib.Path(self.kernel).name}'
    return f'{what}, {self.boundary}, AWGN sigma={self.sigma:g}/255'


def _deconvolve_channels(observed, kernel, boundary: str, restore) -> np.ndarray:
  """`restore(channel, kernel)` on each channel of an HWC image, as float32 in [0, 1].

  The observation is first extended by the kernel's size with the blur's own
  boundary (periodic or mirrored), and the result cropped back: the deconvolutions
  assume other boundaries (Wiener periodic at the FFT size, Richardson-Lucy zeros),
  and this puts the mismatched edges outside the image.
  """
  check_boundary(boundary)
  kernel = np.asarray(kernel, np.float64)
  ph, pw = kernel.shape
  padded = np.pad(np.asarray(observed, np.float64), ((ph, ph), (pw, pw), (0, 0)), mode=_PAD_MODES[boundary])
  channels = [restore(padded[..., c], kernel)[ph:-ph, pw:-pw] for c in range(padded.shape[-1])]
  return np.clip(np.stack(channels, axis=-1), 0, 1).astype(np.float32)


def wiener_baseline(observed, kernel, balance: float, *, boundary: str = 'circular') -> np.ndarray:
  """Wiener deconvolution (`skimage.restoration.wiener`) of each channel.

  Wiener divides in the Fourier domain, so it models a CIRCULAR boundary with the
  kernel centred at `k // 2`, exactly `blur(..., boundary='circular')`; for
  'symmetric' blur the mirrored extension (see `_deconvolve_channels`) removes most
  of the edge ringing (camera 128 px, Gaussian 1.6, noise 2/255: 23.0 dB unextended, 26.3 extended).

  Args:
    observed: [H, W, C] blurred (and noisy) image.
    kernel: the 2-D blur kernel.
    balance: regularisation weight (larger: smoother; about the noise-to-signal ratio).
    boundary: the boundary the observation was blurred with.

  Returns:
    The estimate, float32 [H, W, C], clipped to [0, 1].
  """
  return _deconvolve_channels(observed, kernel, boundary,
                              lambda x, k: restoration.wiener(x, k, balance, clip=False))


def richardson_lucy_baseline(observed, kernel, iterations: int, *, boundary: str = 'circular') -> np.ndarray:
  """Richardson-Lucy deconvolution (`skimage.restoration.richardson_lucy`) of each channel.

  It models ZERO padding outside the image (scipy `convolve(..., 'same')`), which
  alone would brighten and ring the borders; the observation is extended with the
  blur's boundary first (see `_deconvolve_channels`) and clipped to [0, 1] (the
  multiplicative updates need non-negative data).

  Args:
    observed: [H, W, C] blurred (and noisy) image.
    kernel: the 2-D blur kernel.
    iterations: number of multiplicative updates (more: sharper and noisier).
    boundary: the boundary the observation was blurred with.

  Returns:
    The estimate, float32 [H, W, C], clipped to [0, 1].
  """
  return _deconvolve_channels(np.clip(observed, 0, 1), kernel, boundary,
                              lambda x, k: restoration.richardson_lucy(x, k, num_iter=iterations, clip=False))
