"""Random pixel masks for inpainting (missing-pixel) observations."""

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.base import IdentityEstimate
from cnnrecon.ops.noise import check_number


def random_pixel_mask(key: jax.Array, shape: Sequence[int], *,
                      keep_prob: float) -> jax.Array:
  """Draws a mask whose entries are 1 (kept) with probability `keep_prob`.

  Pass a trailing channel axis of 1 (e.g. [H, W, 1]) so that all channels of
  a pixel are dropped together when the mask broadcasts over an image.

  Args:
    key: typed PRNG key (`jax.random.key`).
    shape: mask shape.
    keep_prob: probability that an entry is kept, in (0, 1].

  Returns:
    A float32 array of 0s and 1s of the given shape.
  """
  return jax.random.bernoulli(key, keep_prob, tuple(shape)).astype(jnp.float32)


def apply_pixel_mask(images: jax.Array, mask: jax.Array) -> jax.Array:
  """Zeroes the masked-out pixels.

  Args:
    images: images, e.g. [B, H, W, C] or [H, W, C].
    mask: 0/1 mask broadcastable to `images` (e.g. [..., H, W, 1]).

  Returns:
    `images * mask` in the dtype of `images`.
  """
  return images * mask.astype(images.dtype)


@dataclasses.dataclass(frozen=True)
class RandomPixelMask(IdentityEstimate):
  """Keeps each pixel (all its channels) with probability `keep_prob`, zeroes the rest."""

  keep_prob: float

  def __post_init__(self):
    keep_prob = check_number(self.keep_prob, name='task.inpaint.keep_prob', example='0.5', low=0,
                             low_inclusive=False)
    if keep_prob > 1:
      raise CnnreconError(f'task.inpaint.keep_prob={keep_prob} must be in (0, 1] (the fraction of pixels kept); '
                          'set e.g. --config.task.inpaint.keep_prob=0.5')

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """One masked observation of an HWC image."""
    mask = random_pixel_mask(key, clean.shape[:-1] + (1,), keep_prob=float(self.keep_prob))
    return apply_pixel_mask(clean, mask)

  def describe(self) -> str:
    """'inpainting, keep K% of pixels'."""
    return f'inpainting, keep {self.keep_prob:.0%} of pixels'
