"""Pixel losses: pure functions returning a scalar, registered by name for `config.train.loss`.

The style losses (Gram matrix, content, AdaIN mean/std, total variation) are
`cnnrecon.style.losses`.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from cnnrecon.metrics import ssim
from cnnrecon.registry import Registry

Loss = Callable[[jax.Array, jax.Array], jax.Array]


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean squared error (the plain mean, not optax.l2_loss's half of it).

  Args:
    predictions: model outputs, any shape.
    targets: clean images, same shape as `predictions`.

  Returns:
    Scalar mean of (predictions - targets)**2.
  """
  return jnp.mean(optax.squared_error(predictions, targets))


def l1(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean absolute error.

  Args:
    predictions: model outputs, any shape.
    targets: clean images, same shape as `predictions`.

  Returns:
    Scalar mean of |predictions - targets|.
  """
  if predictions.shape != targets.shape:
    raise ValueError(
        f'l1 needs equal shapes, got {predictions.shape} and {targets.shape}.')
  return jnp.mean(jnp.abs(predictions - targets))


def ssim_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """1 - SSIM (`metrics.ssim`: dm-pix, 11x11 Gaussian window, data range 1), averaged over the batch.

  Args:
    predictions: model outputs [B, H, W, C], sides of at least 11 pixels.
    targets: clean images, same shape.

  Returns:
    Scalar 1 - mean SSIM (0 for identical images).
  """
  return 1.0 - jnp.mean(ssim(predictions, targets))


LOSSES: Registry = Registry('train.loss')
LOSSES.register('mse')(mse)
LOSSES.register('l1')(l1)
LOSSES.register('ssim')(ssim_loss)


def get_loss(name: str) -> Loss:
  """Returns the loss function registered under `name` (`config.train.loss`).

  Raises:
    CnnreconError: if `name` is unknown.
  """
  return LOSSES.get(name)
