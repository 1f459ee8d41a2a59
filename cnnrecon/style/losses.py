"""The losses of style transfer: Gram-matrix style loss, feature (content) loss, AdaIN's statistics, TV.

Pure functions on NHWC activations of a loss network (`cnnrecon.models.vgg`,
through `cnnrecon.style.loss_network`); the pixel losses of reconstruction are
`cnnrecon.losses`.
"""

import jax
import jax.numpy as jnp

from cnnrecon.losses import mse

GRAM_NORMALISATIONS = ('gatys', 'johnson')


def gram_matrix(features: jax.Array, *, normalisation: str = 'johnson') -> jax.Array:
  """Channel correlations of feature maps, [B, C, C].

  Args:
    features: [B, H, W, C].
    normalisation: 'johnson' divides by C*H*W (Johnson et al. 2016); 'gatys'
      leaves the plain sum of products (Gatys et al. 2016 normalise in the
      loss instead, see `style_loss`).

  Returns:
    `G[b, i, j] = sum_hw F[b, h, w, i] F[b, h, w, j]` (/ CHW for 'johnson').
  """
  if normalisation not in GRAM_NORMALISATIONS:
    raise ValueError(f'normalisation {normalisation!r}: use gatys or johnson')
  batch, height, width, channels = features.shape
  flat = features.reshape(batch, height * width, channels).astype(jnp.float32)
  gram = jnp.einsum('bpi,bpj->bij', flat, flat, precision=jax.lax.Precision.HIGHEST)
  return gram / (channels * height * width) if normalisation == 'johnson' else gram


def style_loss(features: jax.Array, target_gram: jax.Array, *, normalisation: str = 'johnson') -> jax.Array:
  """Gram-matrix style loss of one layer, mean over the batch.

  'johnson': `||G(F) - G_t||_F^2` with G normalised by C*H*W.
  'gatys': `1 / (4 N^2 M^2) * ||G(F) - G_t||_F^2` with plain sums, N = C
  channels and M = H*W positions (Gatys et al. 2016, eq. 4).

  Args:
    features: [B, H, W, C] activations of the image being optimised.
    target_gram: [B or 1, C, C] Gram matrix of the style image, same normalisation.
    normalisation: 'johnson' or 'gatys'.
  """
  gram = gram_matrix(features, normalisation=normalisation)
  squared = jnp.sum(jnp.square(gram - target_gram), axis=(1, 2))
  if normalisation == 'gatys':
    _, height, width, channels = features.shape
    squared = squared / (4.0 * channels**2 * (height * width) ** 2)
  return jnp.mean(squared)


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
  """Feature reconstruction loss: the mean squared difference of activations."""
  return mse(features.astype(jnp.float32), target.astype(jnp.float32))


def mean_std(features: jax.Array, *, eps: float = 1e-5) -> tuple[jax.Array, jax.Array]:
  """Per-channel mean and standard deviation over H, W: each [B, 1, 1, C]."""
  mean = jnp.mean(features, axis=(1, 2), keepdims=True)
  std = jnp.sqrt(jnp.var(features, axis=(1, 2), keepdims=True) + eps)
  return mean, std


def adain(content: jax.Array, style: jax.Array, *, eps: float = 1e-5) -> jax.Array:
  """Adaptive instance normalisation (Huang & Belongie 2017): `std(s) * (c - mean(c)) / std(c) + mean(s)`.

  Not a loss, but it lives beside `mean_std` (its statistics), which the AdaIN
  task's loss (`style.adain_loss`) and its inference net (`style.adain`) share.

  Args:
    content: [B, H, W, C] content features.
    style: [B or 1, H', W', C] style features (any spatial size).
    eps: added to the variances.

  Returns:
    The content features with each channel's mean and std replaced by the style's, [B, H, W, C].
  """
  content_mean, content_std = mean_std(content, eps=eps)
  style_mean, style_std = mean_std(style, eps=eps)
  return style_std * (content - content_mean) / content_std + style_mean


def mean_std_loss(features: jax.Array, target: jax.Array) -> jax.Array:
  """AdaIN's style loss (Huang & Belongie 2017): squared L2 distance of channel means and stds, averaged."""
  mean, std = mean_std(features.astype(jnp.float32))
  target_mean, target_std = mean_std(target.astype(jnp.float32))
  return jnp.mean(jnp.square(mean - target_mean)) + jnp.mean(jnp.square(std - target_std))


def total_variation(images: jax.Array) -> jax.Array:
  """Anisotropic total variation, mean over the batch: sum of |x[i+1,j] - x[i,j]| + |x[i,j+1] - x[i,j]|.

  Written out: neither optax nor dm-pix has a total-variation function.
  """
  down = jnp.abs(images[:, 1:, :, :] - images[:, :-1, :, :])
  right = jnp.abs(images[:, :, 1:, :] - images[:, :, :-1, :])
  return (jnp.sum(down) + jnp.sum(right)) / images.shape[0]
