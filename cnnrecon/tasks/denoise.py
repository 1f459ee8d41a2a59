"""Denoising tasks: additive white Gaussian noise (DnCNN's task) and Poisson noise."""

from cnnrecon.losses import Loss
from cnnrecon.ops.noise import GaussianNoise, PoissonNoise
from cnnrecon.tasks.baselines import classical_denoisers_at
from cnnrecon.tasks.base import Labels
from cnnrecon.tasks.reconstruction import ReconstructionTask

DENOISE_LABELS = Labels(observed='noisy', estimate='denoised')


class GaussianDenoising(ReconstructionTask):
  """AWGN denoising at `sigma` (0-255 scale); scikit-image's classical denoisers are its baselines."""

  @classmethod
  def from_options(cls, *, sigma: float, loss: Loss) -> 'GaussianDenoising':
    operator = GaussianNoise(sigma)
    return cls(operator=operator, loss=loss, labels=DENOISE_LABELS,
               baselines=classical_denoisers_at(float(sigma) / 255.0) if sigma > 0 else {})


class PoissonDenoising(ReconstructionTask):
  """Poisson (shot) noise denoising with `peak` photons at white."""

  @classmethod
  def from_options(cls, *, peak: float, loss: Loss) -> 'PoissonDenoising':
    return cls(operator=PoissonNoise(peak), loss=loss, labels=DENOISE_LABELS)
