"""Poisson-Gaussian denoising: shot noise plus read noise, the model of a raw camera sensor."""

from cnnrecon.losses import Loss
from cnnrecon.ops.noise import PoissonGaussianNoise
from cnnrecon.tasks.denoise import DENOISE_LABELS
from cnnrecon.tasks.reconstruction import ReconstructionTask


class PoissonGaussianDenoising(ReconstructionTask):
  """Denoising of `Poisson(x * peak) / peak + N(0, (sigma/255)^2)` observations.

  Classical Gaussian denoisers are not offered as baselines: the noise is
  signal-dependent, so no single sigma describes it.
  """

  @classmethod
  def from_options(cls, *, peak: float, sigma: float, loss: Loss) -> 'PoissonGaussianDenoising':
    return cls(operator=PoissonGaussianNoise(peak, sigma), loss=loss, labels=DENOISE_LABELS)
