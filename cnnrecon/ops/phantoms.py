"""CT test objects: the Shepp-Logan phantom and random-ellipse phantoms drawn from a key.

Both are [n, n, 1] float32 images in [0, 1], zero outside the inscribed circle, as the
parallel-beam operator (skimage's `circle=True` convention) assumes.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import skimage.data
import skimage.transform


def inscribed_circle(size: int) -> np.ndarray:
  """The [size, size] boolean disc about pixel (size // 2, size // 2) of radius size // 2 (skimage's)."""
  offsets = np.arange(size) - size // 2
  return offsets[:, None]**2 + offsets[None, :]**2 <= (size // 2)**2


def shepp_logan(size: int) -> np.ndarray:
  """The (modified) Shepp-Logan phantom that scikit-image ships, resized to [size, size, 1].

  Args:
    size: side in pixels.

  Returns:
    float32 [size, size, 1] in [0, 1].
  """
  phantom = skimage.data.shepp_logan_phantom()  # 400 x 400
  resized = skimage.transform.resize(phantom, (size, size), anti_aliasing=True)
  # Anti-aliasing smears a little mass past the disc's edge: keep the operator's assumption exact.
  return (np.clip(resized, 0.0, 1.0) * inscribed_circle(size))[..., None].astype(np.float32)


def _ellipse(x: jax.Array, y: jax.Array, params: jax.Array) -> jax.Array:
  """The indicator of one ellipse (centre x, y, semi-axes a, b, angle) on a coordinate grid."""
  cx, cy, a, b, angle = params
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  along = (x - cx) * cos + (y - cy) * sin
  across = -(x - cx) * sin + (y - cy) * cos
  return ((along / a)**2 + (across / b)**2 <= 1.0).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=('size', 'count'))
def random_ellipses(key: jax.Array, size: int, *, count: int = 8) -> jax.Array:
  """A random-ellipse phantom: a body ellipse plus `count - 1` denser or lighter inclusions.

  A pure function of `key` (works under `jit` and `vmap`: one phantom per key), so a data set
  of phantoms is a seed, generated on the fly on the device.

  Args:
    key: typed PRNG key.
    size: side in pixels.
    count: number of ellipses, >= 1 (static).

  Returns:
    float32 [size, size, 1] in [0, 1], zero outside the inscribed circle.
  """
  # Rows: the body, then the inclusions; columns: centre x, y and semi-axes a, b (in units of the
  # disc's radius), angle, value. The body stays inside the disc (0.1 + 0.85 < 1), the inclusions
  # (centres within 0.5, semi-axes below 0.35) mostly inside the body; they add or remove density.
  low = np.array([[-0.1, -0.1, 0.6, 0.6, 0.0, 0.2]] + [[-0.5, -0.5, 0.03, 0.03, 0.0, -0.3]] * (count - 1))
  high = np.array([[0.1, 0.1, 0.85, 0.85, np.pi, 0.5]] + [[0.5, 0.5, 0.35, 0.35, np.pi, 0.5]] * (count - 1))
  params = low + (high - low) * jax.random.uniform(key, low.shape, jnp.float32)
  offsets = (jnp.arange(size, dtype=jnp.float32) - size // 2) / max(size // 2, 1)
  y, x = jnp.meshgrid(offsets, offsets, indexing='ij')
  image = jnp.tensordot(params[:, 5], jax.vmap(lambda p: _ellipse(x, y, p[:5]))(params), axes=1)
  image = jnp.clip(image, 0.0, 1.0) * jnp.asarray(inscribed_circle(size), jnp.float32)
  return image[..., None]
