"""Classical (non-learned) denoisers from scikit-image, the baselines of the AWGN denoising task.

Every denoiser has the signature `denoise(noisy, sigma) -> estimate`:
`noisy` is one float image HxWxC (C = 1 or 3) that may lie outside [0, 1]
because the added noise is not clipped, and `sigma` is the noise standard
deviation on the 0..1 scale (sigma=25 in a config -> 25/255 here). The
estimate has the same shape and is float32; it is not clipped (evaluation
decides that, see `cnnrecon.tasks.scoring`).

Parameter rules (measured with AWGN, numpy seed 0, PSNR on [0, 1]):

* nl_means: scikit-image gallery recipe for `fast_mode` with a known sigma:
  h = 0.8 * sigma, patch_size 5, patch_distance 6.
* tv: Chambolle weight = (0.65 + 1.5 * sigma) * sigma. A grid over
  weight = k * sigma (k in 0.5..1.3) showed the best k growing with the noise
  level (camera 512x512: k = 0.7 / 0.8 / 0.9 at sigma 15 / 25 / 50, giving
  30.94 / 28.90 / 26.59 dB); this rule lands within 0.15 dB of the grid best
  on camera, astronaut (gray), coins and brick at all three levels, where a
  constant 0.8 * sigma loses up to 0.3 dB. eps=1e-5 and up to 1000
  iterations because the default stopping rule (eps=2e-4) quits early at
  high noise (camera, sigma 50: 26.36 instead of 26.59 dB).
* wavelet: BayesShrink, soft thresholding, the given sigma with
  rescale_sigma=True; RGB is denoised in YCbCr as in the scikit-image
  gallery. Needs PyWavelets (`pip install PyWavelets`).
"""

from typing import Any, Callable

import numpy as np
from skimage import restoration

from cnnrecon.errors import CnnreconError

Denoiser = Callable[[np.ndarray, float], np.ndarray]
# A task's classical baseline: one observed example (numpy `{'observed', 'initial_estimate', ...}`) -> an estimate.
Baseline = Callable[[dict[str, Any]], np.ndarray]


def _check_inputs(noisy: np.ndarray, sigma: float) -> None:
  """Rejects shapes and noise levels the denoisers cannot handle."""
  if noisy.ndim != 3 or noisy.shape[-1] not in (1, 3):
    raise CnnreconError(
        f'baseline denoisers take one HxWxC image with C=1 or 3, got shape '
        f'{noisy.shape}; pass images one at a time (drop the batch axis)')
  if not 0.0 < sigma <= 1.0:
    raise CnnreconError(
        f'baseline sigma must be on the 0..1 scale, got {sigma}; pass '
        f'sigma/255 (e.g. 25/255 for sigma=25)')


def _per_channel_layout(
    denoise_2d_or_rgb: Callable[[np.ndarray, int | None, float], np.ndarray],
) -> Denoiser:
  """Wraps a scikit-image call so gray images go in as HxW, RGB as HxWx3.

  scikit-image treats a trailing axis of size 1 as a spatial axis unless it is
  declared a channel axis, so gray images are squeezed and restored instead.

  Args:
    denoise_2d_or_rgb: function `(image, channel_axis, sigma) -> estimate`
      where image is HxW (channel_axis None) or HxWx3 (channel_axis -1).

  Returns:
    A `Denoiser` for HxWxC float images.
  """

  def denoise(noisy: np.ndarray, sigma: float) -> np.ndarray:
    noisy = np.asarray(noisy, dtype=np.float32)
    sigma = float(sigma)
    _check_inputs(noisy, sigma)
    if noisy.shape[-1] == 1:
      estimate = denoise_2d_or_rgb(noisy[..., 0], None, sigma)[..., None]
    else:
      estimate = denoise_2d_or_rgb(noisy, -1, sigma)
    return np.asarray(estimate, dtype=np.float32)

  return denoise


def _nl_means(image, channel_axis, sigma):
  return restoration.denoise_nl_means(
      image, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
      fast_mode=True, channel_axis=channel_axis)


def tv_weight(sigma: float) -> float:
  """Chambolle TV weight for noise level `sigma` (0..1 scale); see module doc.

  Args:
    sigma: noise standard deviation on the 0..1 scale.

  Returns:
    The `weight` passed to `denoise_tv_chambolle`.
  """
  return (0.65 + 1.5 * sigma) * sigma


def _tv(image, channel_axis, sigma):
  return restoration.denoise_tv_chambolle(
      image, weight=tv_weight(sigma), eps=1e-5, max_num_iter=1000,
      channel_axis=channel_axis)


def _wavelet(image, channel_axis, sigma):
  try:
    import pywt  # noqa: F401  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError as e:
    raise CnnreconError(
        "the 'wavelet' baseline needs PyWavelets; install it with "
        "`pip install PyWavelets` or leave 'wavelet' out of the baselines"
    ) from e
  return restoration.denoise_wavelet(
      image, sigma=sigma, method='BayesShrink', mode='soft',
      rescale_sigma=True, channel_axis=channel_axis,
      convert2ycbcr=channel_axis is not None)


def classical_denoisers() -> dict[str, Denoiser]:
  """Returns the classical baselines by name.

  Returns:
    Dict with keys 'nl_means', 'tv' and 'wavelet'; each value maps
    `(noisy HxWxC float image, sigma on the 0..1 scale)` to a float32
    estimate of the same shape.
  """
  return {
      'nl_means': _per_channel_layout(_nl_means),
      'tv': _per_channel_layout(_tv),
      'wavelet': _per_channel_layout(_wavelet),
  }


def classical_denoisers_at(sigma: float) -> dict[str, Baseline]:
  """The classical denoisers as a task's baselines: each denoises the observation (the initial estimate) at `sigma` (0..1)."""
  def at_sigma(denoise: Denoiser) -> Baseline:
    return lambda example: denoise(example['initial_estimate'], sigma)
  return {name: at_sigma(denoise) for name, denoise in classical_denoisers().items()}
