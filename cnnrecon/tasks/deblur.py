"""Deblurring: recover an image blurred by a known kernel (Gaussian, motion or a file) plus a little noise.

Baselines: Wiener and Richardson-Lucy deconvolution (scikit-image, `cnnrecon.ops.blur`) with the
true kernel and parameters from the noise level by rules measured on the training samples (see
`wiener_balance` and `richardson_lucy_iterations`), never tuned on evaluation images.
"""

import numpy as np

from cnnrecon.losses import Loss
from cnnrecon.ops.blur import Blur, richardson_lucy_baseline, wiener_baseline
from cnnrecon.tasks.base import Labels
from cnnrecon.tasks.baselines import Baseline
from cnnrecon.tasks.reconstruction import ReconstructionTask

# Below this noise level (0-255 scale) the rules use it: the smallest level measured, and it keeps the
# Wiener balance above 0 and the Richardson-Lucy iterations finite for noise-free blur.
SMALLEST_SIGMA = 0.5
# More iterations cost seconds per image and gained < 0.1 dB where the rule asked for them (sigma 3, noise 0.5).
MAX_ITERATIONS = 300

# How the rules were measured: 6 gray 160x160 centre crops of the bundled TRAINING samples (brick,
# chelsea, clock, moon, motorcycle, rocket), noise 0.5/1/2/5/10 on 0-255, mean PSNR over the crops on a
# grid of 26 balances (1e-5..1, log-spaced) and 15 iteration counts (1..240); kernels: 25x25 Gaussians
# of sigma 1.6 and 3, 15 px motion at 0 and 45 degrees. Losses below are against the grid best
# (log-interpolated between grid points), symmetric boundary.
# - Wiener: for the Gaussians the best balance is 400 (sigma/255)^2 to one grid step at every level
#   (loss <= 0.06 dB). Motion kernels want far more smoothing at every level (best 0.16..1: their
#   frequency response has zeros); 0.4 + 400 (sigma/255)^2 loses <= 0.04 dB.
# - Richardson-Lucy: the best count falls with the noise and grows with the kernel's spread:
#   16 v sigma^-1.4 (v: the kernel's variance per axis in px^2, 2.56 for sigma 1.6) loses <= 0.14 dB for
#   both Gaussians; motion kernels peak at 2-5 iterations at every level (3 loses <= 0.17 dB).
# With a circular boundary the same rules lose <= 0.06 dB (Wiener, Gaussians), 0.25 dB (Wiener, 45-degree
# motion) and 0.17 dB (Richardson-Lucy).


def wiener_balance(operator: Blur) -> float:
  """The Wiener regularisation weight for `operator`'s kernel and noise (the measured rule above)."""
  balance = 400.0 * (max(operator.sigma, SMALLEST_SIGMA) / 255.0) ** 2
  return balance + 0.4 if operator.kernel == 'motion' else balance


def kernel_variance(kernel: np.ndarray) -> float:
  """The kernel's spread: its variance along each axis, in px^2, averaged over the two axes."""
  spreads = []
  for axis in (0, 1):
    weights = kernel.sum(axis=1 - axis)
    positions = np.arange(weights.size)
    mean = np.sum(weights * positions)
    spreads.append(np.sum(weights * (positions - mean) ** 2))
  return float(np.mean(spreads))


def richardson_lucy_iterations(operator: Blur) -> int:
  """The Richardson-Lucy iteration count for `operator`'s kernel and noise (the measured rule above)."""
  if operator.kernel == 'motion':
    return 3
  sigma = max(operator.sigma, SMALLEST_SIGMA)
  return int(np.clip(round(16 * kernel_variance(operator.kernel_array) * sigma ** -1.4), 1, MAX_ITERATIONS))


def deconvolution_baselines(operator: Blur) -> dict[str, Baseline]:
  """Wiener and Richardson-Lucy with the true kernel and boundary, their parameters by the rules above."""
  kernel, boundary = operator.kernel_array, operator.boundary
  balance, iterations = wiener_balance(operator), richardson_lucy_iterations(operator)
  return {
      'wiener': lambda example: wiener_baseline(example['observed'], kernel, balance, boundary=boundary),
      'richardson_lucy': lambda example: richardson_lucy_baseline(example['observed'], kernel, iterations,
                                                                  boundary=boundary),
  }


class Deblurring(ReconstructionTask):
  """Non-blind deblurring: the `Blur` operator's kernel and boundary, then AWGN of `sigma` (0-255 scale).

  The defaults are the classic benchmark of IRCNN / DPIR (a 25x25 Gaussian of sigma 1.6, noise 2/255)
  with a symmetric boundary: photographs are not periodic, and a circular blur would give the
  FFT-based Wiener filter exact knowledge of the wrapped borders that no photograph offers.
  """

  @classmethod
  def from_options(cls, *, loss: Loss, kernel: str = 'gaussian', boundary: str = 'symmetric', sigma: float = 2.0,
                   kernel_size: int = 25, kernel_sigma: float = 1.6, length: float = 15.0,
                   angle: float = 0.0) -> 'Deblurring':
    operator = Blur(kernel=kernel, boundary=boundary, sigma=sigma, kernel_size=kernel_size,
                    kernel_sigma=kernel_sigma, length=length, angle=angle)
    return cls(operator=operator, loss=loss, labels=Labels(observed='blurred', estimate='deblurred'),
               baselines=deconvolution_baselines(operator))
