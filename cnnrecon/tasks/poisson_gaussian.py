"""Poisson-Gaussian denoising: shot noise plus read noise, the model of a raw camera sensor."""

from cnnrecon.ops.noise import PoissonGaussianNoise
from cnnrecon.tasks.base import Loss, ReconstructionTask
from cnnrecon.tasks.denoise import DENOISE_LABELS


def poisson_gaussian(*, peak: float, sigma: float, loss: Loss) -> ReconstructionTask:
  """Denoising of `Poisson(x * peak) / peak + N(0, (sigma/255)^2)` observations.

  Classical Gaussian denoisers are not offered as baselines: the noise is
  signal-dependent, so no single sigma describes it.
  """
  return ReconstructionTask(operator=PoissonGaussianNoise(peak, sigma), loss=loss, labels=DENOISE_LABELS)
