"""Inpainting: recover pixels dropped at random."""

from cnnrecon.ops.masks import RandomPixelMask
from cnnrecon.tasks.base import Labels, Loss, ReconstructionTask


def inpaint(*, keep_prob: float, loss: Loss) -> ReconstructionTask:
  """Random-pixel inpainting: each pixel is kept with probability `keep_prob`."""
  return ReconstructionTask(operator=RandomPixelMask(keep_prob), loss=loss,
                            labels=Labels(observed='masked', estimate='inpainted'))
