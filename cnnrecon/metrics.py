"""Image-quality metrics (dm-pix) and the literature's evaluation conventions.

PSNR and SSIM are per image (shape [B] for NHWC input) so callers can
average over a test set as the papers do: mean of per-image values.
"""

import dm_pix
import jax
import jax.numpy as jnp

# ITU-R BT.601 luma for RGB in [0, 1], giving Y in [16, 235] (MATLAB rgb2ycbcr).
_BT601_Y_WEIGHTS = (65.481, 128.553, 24.966)
_BT601_Y_OFFSET = 16.0


def psnr(a: jax.Array, b: jax.Array, *, data_range: float = 1.0) -> jax.Array:
  """Peak signal-to-noise ratio, 10 log10(data_range**2 / MSE), per image.

  Args:
    a: images [B, H, W, C] (or one image [H, W, C]).
    b: images, same shape as `a`.
    data_range: max minus min possible value (1 for [0, 1] images).

  Returns:
    PSNR in dB, shape [B] (a scalar for a single image).
  """
  # dm-pix assumes a range of 1; rescaling the inputs is exact.
  return dm_pix.psnr(a / data_range, b / data_range)


SSIM_WINDOW = 11  # the Gaussian window's side (Wang et al. 2004)


def ssim(a: jax.Array, b: jax.Array, *, data_range: float = 1.0) -> jax.Array:
  """Structural similarity with an 11x11 Gaussian window (sigma 1.5), per image.

  Equals skimage's `structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=data_range, channel_axis=-1)`:
  both average the SSIM map over pixels whose window lies inside the image,
  and over channels.

  Args:
    a: images [B, H, W, C] (or one image [H, W, C]), sides >= 11.
    b: images, same shape as `a`.
    data_range: max minus min possible value (1 for [0, 1] images).

  Returns:
    SSIM, shape [B] (a scalar for a single image).
  """
  return dm_pix.ssim(a, b, max_val=data_range, filter_size=SSIM_WINDOW,
                     filter_sigma=1.5)


def rgb_to_y(images: jax.Array) -> jax.Array:
  """Luma Y of RGB images in [0, 1], as MATLAB's rgb2ycbcr computes it.

  Super-resolution papers report PSNR/SSIM on this channel.

  Args:
    images: RGB images [..., H, W, 3] in [0, 1].

  Returns:
    Y channel [..., H, W, 1] in [16/255, 235/255].
  """
  weights = jnp.asarray(_BT601_Y_WEIGHTS, images.dtype)
  # An elementwise sum, not a matmul: TPUs default matmuls to bfloat16.
  luma = jnp.sum(images * weights, axis=-1) + _BT601_Y_OFFSET
  return (luma / 255.0)[..., None]


def crop_border(images: jax.Array, n: int) -> jax.Array:
  """Removes `n` pixels from each side of H and W (the SR convention).

  Args:
    images: images [..., H, W, C].
    n: border width in pixels, >= 0 (usually the scale factor).

  Returns:
    Images [..., H - 2n, W - 2n, C].
  """
  if n == 0:
    return images
  return images[..., n:-n, n:-n, :]
