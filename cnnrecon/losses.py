"""Reconstruction losses: pure functions returning a scalar mean.

Style losses (Gram matrices, perceptual terms) live with the style package's
feature extractor; this module holds the pixel losses the train step picks
by name.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import optax

from cnnrecon.errors import CnnreconError

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


LOSSES: dict[str, Loss] = {'mse': mse, 'l1': l1}


def get_loss(name: str) -> Loss:
  """Returns the loss function registered under `name`.

  Args:
    name: a key of LOSSES.

  Returns:
    `loss(predictions, targets) -> scalar`.

  Raises:
    CnnreconError: if `name` is unknown.
  """
  if name not in LOSSES:
    raise CnnreconError(
        f'unknown loss {name!r}; known losses: {", ".join(LOSSES)}. '
        'Set --config.train.loss to one of them.')
  return LOSSES[name]
