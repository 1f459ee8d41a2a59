"""Noise degradations: additive white Gaussian and Poisson (shot) noise."""

import jax
import jax.numpy as jnp


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
