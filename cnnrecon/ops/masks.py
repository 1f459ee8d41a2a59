"""Random pixel masks for inpainting (missing-pixel) degradations."""

from typing import Sequence

import jax
import jax.numpy as jnp


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
