"""Reconstruction losses: pure functions returning a scalar mean.

Style losses (Gram matrices, perceptual terms) live with the style package's
feature extractor; this module holds the pixel losses the train step picks
by name.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

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


LOSSES: Registry = Registry('train.loss')
LOSSES.register('mse')(mse)
LOSSES.register('l1')(l1)


def get_loss(name: str) -> Loss:
  """Returns the loss function registered under `name` (`config.train.loss`).

  Raises:
    CnnreconError: if `name` is unknown.
  """
  return LOSSES.get(name)
