"""JPEG compression at quality q: libjpeg through Pillow, run on the host.

The codec is Pillow's libjpeg(-turbo) with the standard IJG quantisation tables and
IJG quality scaling (`jpeg_set_quality`, baseline), the integer (ISLOW) DCT and no
optimised Huffman tables, as MATLAB `imwrite(x, f, 'Quality', q)` writes: gray images
have one component (no chroma); RGB images are written as YCbCr with 4:2:0 chroma
subsampling, libjpeg's default, which MATLAB keeps. Decoding is Pillow's (fancy
upsampling of the chroma), as MATLAB `imread`.

Where it runs: JPEG is not a JAX op, so `JpegCompression.apply` calls the codec on the
host through `jax.pure_callback`. It works under `jit` and `vmap` (one host call per
batch) and inside the data-parallel step (each device's shard calls back for its own
examples). The codec is deterministic and the key is unused, so an example's
observation is a function of its own pixels only: identical across device counts,
batch splits and reruns. It is NOT differentiable: taking a gradient through it raises
a `CnnreconError` (the observation of a clean target never needs one).
"""

import dataclasses
import functools
import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.base import IdentityEstimate

# Pillow's `subsampling`: 2 is 4:2:0 (chroma halved both ways), libjpeg's and MATLAB's default.
_SUBSAMPLING_420 = 2


def check_quality(quality) -> int:
  """Returns `quality` as an int in 1..100, or one line naming `--quality` / `task.jpeg.quality`."""
  integral = isinstance(quality, (int, float, np.integer, np.floating)) and not isinstance(quality, bool)
  if not integral or quality != quality or int(quality) != quality or not 1 <= quality <= 100:
    raise CnnreconError(f'JPEG quality {quality!r} must be an integer in 1..100; '
                        'set e.g. --quality 20 (or --config.task.jpeg.quality=20)')
  return int(quality)


def to_uint8(image) -> np.ndarray:
  """uint8 pixels of an image: uint8 as is, floats in [0, 1] clipped and rounded (MATLAB im2uint8)."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image
  return np.round(np.clip(image.astype(np.float64), 0, 1) * 255).astype(np.uint8)


def jpeg_compress(image, quality: int) -> np.ndarray:
  """Encodes an image as JPEG at `quality` and decodes it again.

  Args:
    image: [H, W, 1] (gray) or [H, W, 3] (RGB) image, or [H, W] gray; uint8, or
      float in [0, 1] (clipped, then rounded to uint8 first).
    quality: IJG quality, an integer in 1..100.

  Returns:
    The decoded image, float32 in [0, 1], the shape of `image`.
  """
  quality = check_quality(quality)
  pixels = to_uint8(image)
  if pixels.ndim == 3 and pixels.shape[-1] == 1:
    return jpeg_compress(pixels[..., 0], quality)[..., None]
  if pixels.ndim == 2:
    picture = Image.fromarray(pixels, 'L')
  elif pixels.ndim == 3 and pixels.shape[-1] == 3:
    picture = Image.fromarray(pixels, 'RGB')
  else:
    raise CnnreconError(f'JPEG takes a gray or RGB image, got shape {pixels.shape}')
  buffer = io.BytesIO()
  picture.save(buffer, format='JPEG', quality=quality, subsampling=_SUBSAMPLING_420, optimize=False)
  buffer.seek(0)
  with Image.open(buffer) as decoded:
    return np.asarray(decoded, np.float32) / np.float32(255)


def _jpeg_host(images: np.ndarray, quality: int) -> np.ndarray:
  """`jpeg_compress` on every HWC image of a [..., H, W, C] array (the host side of the callback)."""
  images = np.asarray(images)
  flat = images.reshape((-1,) + images.shape[-3:])
  out = np.stack([jpeg_compress(image, quality) for image in flat])
  return out.reshape(images.shape).astype(np.float32)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _jpeg_on_host(image: jax.Array, quality: int) -> jax.Array:
  """The JPEG round trip of `image` through a host callback (works under jit and vmap)."""
  return jax.pure_callback(lambda x: _jpeg_host(x, quality), jax.ShapeDtypeStruct(image.shape, jnp.float32),
                           image, vmap_method='expand_dims')


@_jpeg_on_host.defjvp
def _jpeg_jvp(quality, primals, tangents):
  """A clear refusal where JAX would otherwise fail deep inside pure_callback."""
  del primals, tangents
  raise CnnreconError(f'JPEG compression (q={quality}) is not differentiable: compute the observation '
                      'outside jax.grad (it does not depend on the parameters)')


def _jpeg_host_per_quality(images: np.ndarray, qualities: np.ndarray) -> np.ndarray:
  """`jpeg_compress` of every HWC image of `images` at its own quality (broadcast against the batch axes)."""
  images, qualities = np.asarray(images), np.asarray(qualities)
  # vmap's 'expand_dims' gives unbatched arguments size-1 batch axes: broadcast both to the batch shape.
  batch = np.broadcast_shapes(images.shape[:-3], qualities.shape)
  flat = np.broadcast_to(images, batch + images.shape[-3:]).reshape((-1,) + images.shape[-3:])
  flat_qualities = np.broadcast_to(qualities, batch).reshape(-1)
  out = np.stack([jpeg_compress(image, int(q)) for image, q in zip(flat, flat_qualities)])
  return out.reshape(batch + images.shape[-3:]).astype(np.float32)


@jax.custom_jvp
def jpeg_compress_traced(image: jax.Array, quality: jax.Array) -> jax.Array:
  """The JPEG round trip of one HWC image at a quality that may be traced (e.g. drawn per example).

  `JpegCompression` fixes its quality when it is traced; this variant takes it as
  an integer array, so under `vmap` every example can have its own. Like
  `JpegCompression.apply` it runs on the host through `jax.pure_callback`.

  Args:
    image: [H, W, C] image (C = 1 or 3), float in [0, 1] (clipped and rounded to 8 bits first).
    quality: integer scalar array in 1..100 (the caller checks the range: a value outside it fails
      inside the callback).

  Returns:
    The decoded image, float32, the shape of `image`.
  """
  image = image.astype(jnp.float32)
  return jax.pure_callback(_jpeg_host_per_quality, jax.ShapeDtypeStruct(image.shape, jnp.float32),
                           image, jnp.asarray(quality, jnp.int32), vmap_method='expand_dims')


@jpeg_compress_traced.defjvp
def _jpeg_traced_jvp(primals, tangents):
  """The same refusal as `JpegCompression`'s."""
  del primals, tangents
  raise CnnreconError('JPEG compression is not differentiable: compute the observation outside jax.grad '
                      '(it does not depend on the parameters)')


@dataclasses.dataclass(frozen=True)
class JpegCompression(IdentityEstimate):
  """JPEG at `quality` (1..100); the observation is the decoded image (see the module note)."""

  quality: int

  def __post_init__(self):
    check_quality(self.quality)

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """The decoded JPEG of one HWC image; `key` is unused (the codec is deterministic)."""
    del key
    return _jpeg_on_host(clean.astype(jnp.float32), int(self.quality))

  def describe(self) -> str:
    """'JPEG q=Q (libjpeg, 4:2:0 for RGB)'."""
    return f'JPEG q={int(self.quality)} (libjpeg, 4:2:0 for RGB)'
