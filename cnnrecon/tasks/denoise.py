"""Denoising tasks: additive white Gaussian noise (DnCNN's task) and Poisson noise."""

from cnnrecon.ops.noise import GaussianNoise, PoissonNoise
from cnnrecon.tasks.base import Labels, Loss, ReconstructionTask

DENOISE_LABELS = Labels(observed='noisy', estimate='denoised')


def gaussian(*, sigma: float, loss: Loss) -> ReconstructionTask:
  """AWGN denoising at `sigma` (0-255 scale); classical denoisers are its baselines."""
  operator = GaussianNoise(sigma)
  return ReconstructionTask(operator=operator, loss=loss, labels=DENOISE_LABELS,
                            classical_sigma=float(sigma) / 255.0 if sigma > 0 else None)


def poisson(*, peak: float, loss: Loss) -> ReconstructionTask:
  """Poisson (shot) noise denoising with `peak` photons at white."""
  return ReconstructionTask(operator=PoissonNoise(peak), loss=loss, labels=DENOISE_LABELS)
