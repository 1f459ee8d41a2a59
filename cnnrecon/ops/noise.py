"""Noise operators: additive white Gaussian, Poisson (shot) and Poisson-Gaussian noise."""

import dataclasses

import jax
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.base import IdentityEstimate


def add_gaussian_noise(key: jax.Array, images: jax.Array, *,
                       sigma: float) -> jax.Array:
  """Adds white Gaussian noise of standard deviation `sigma / 255`.

  The result is not clipped to [0, 1]: the denoising literature (DnCNN,
  BM3D) evaluates on unclipped noisy inputs.

  Args:
    key: typed PRNG key (`jax.random.key`).
    images: images of any shape, values in [0, 1].
    sigma: noise standard deviation on the 0-255 scale (25 -> 25/255).

  Returns:
    Noisy images, same shape and dtype as `images`.
  """
  noise = jax.random.normal(key, images.shape, images.dtype)
  return images + (sigma / 255.0) * noise


def add_poisson_noise(key: jax.Array, images: jax.Array, *,
                      peak: float) -> jax.Array:
  """Applies Poisson noise: photon counts `Poisson(images * peak) / peak`.

  A lower `peak` (photons at white) means stronger noise; the per-pixel
  variance is `images / peak`.

  Args:
    key: typed PRNG key (`jax.random.key`).
    images: images of any shape, values in [0, 1] (negatives count as 0).
    peak: expected photon count of a pixel of value 1; must be > 0.

  Returns:
    Noisy images, same shape and dtype as `images`.
  """
  rate = jnp.maximum(images, 0.0) * peak
  counts = jax.random.poisson(key, rate, images.shape)
  return (counts / peak).astype(images.dtype)


def add_poisson_gaussian_noise(key: jax.Array, images: jax.Array, *, peak: float,
                               sigma: float) -> jax.Array:
  """Poisson shot noise followed by Gaussian read noise (the raw-sensor model).

  Per pixel, `Poisson(x * peak) / peak + N(0, (sigma/255)**2)`: variance
  `x / peak + (sigma/255)**2`.

  Args:
    key: typed PRNG key; split into one key per noise source.
    images: images of any shape, values in [0, 1].
    peak: photons at white (> 0).
    sigma: read-noise standard deviation on the 0-255 scale (>= 0).

  Returns:
    Noisy images, same shape and dtype as `images` (not clipped).
  """
  shot_key, read_key = jax.random.split(key)
  return add_gaussian_noise(read_key, add_poisson_noise(shot_key, images, peak=peak), sigma=sigma)


def check_number(value, *, name: str, example: str, low: float, low_inclusive: bool) -> float:
  """Returns `value` as a float, or a one-line error naming the option `name` and a fix."""
  if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
    raise CnnreconError(f'{name}={value!r} is not a number; set --config.{name}={example}')
  if value < low or (value == low and not low_inclusive):
    bound = f'>= {low:g}' if low_inclusive else f'> {low:g}'
    raise CnnreconError(f'{name}={value!r} must be {bound}; set e.g. --config.{name}={example}')
  return float(value)


@dataclasses.dataclass(frozen=True)
class GaussianNoise(IdentityEstimate):
  """Additive white Gaussian noise, `sigma` on the 0-255 scale."""

  sigma: float

  def __post_init__(self):
    check_number(self.sigma, name='task.gaussian.sigma', example='25', low=0, low_inclusive=True)

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One noisy observation (see `add_gaussian_noise`)."""
    return add_gaussian_noise(key, clean, sigma=float(self.sigma))

  def describe(self) -> str:
    """'AWGN sigma=S/255'."""
    return f'AWGN sigma={self.sigma:g}/255'


@dataclasses.dataclass(frozen=True)
class PoissonNoise(IdentityEstimate):
  """Poisson shot noise with `peak` photons at white."""

  peak: float

  def __post_init__(self):
    check_number(self.peak, name='task.poisson.peak', example='30', low=0, low_inclusive=False)

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One noisy observation (see `add_poisson_noise`)."""
    return add_poisson_noise(key, clean, peak=float(self.peak))

  def describe(self) -> str:
    """'Poisson peak=P'."""
    return f'Poisson peak={self.peak:g}'


@dataclasses.dataclass(frozen=True)
class PoissonGaussianNoise(IdentityEstimate):
  """Poisson shot noise (`peak`) plus Gaussian read noise (`sigma`, 0-255 scale)."""

  peak: float
  sigma: float

  def __post_init__(self):
    check_number(self.peak, name='task.poisson_gaussian.peak', example='30', low=0, low_inclusive=False)
    check_number(self.sigma, name='task.poisson_gaussian.sigma', example='10', low=0, low_inclusive=True)

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One noisy observation (see `add_poisson_gaussian_noise`)."""
    return add_poisson_gaussian_noise(key, clean, peak=float(self.peak), sigma=float(self.sigma))

  def describe(self) -> str:
    """'Poisson peak=P + AWGN sigma=S/255'."""
    return f'Poisson peak={self.peak:g} + AWGN sigma={self.sigma:g}/255'
