"""Inpainting: recover pixels dropped at random."""

from cnnrecon.losses import Loss
from cnnrecon.ops.masks import RandomPixelMask
from cnnrecon.tasks.base import Labels
from cnnrecon.tasks.reconstruction import ReconstructionTask


class RandomPixelInpainting(ReconstructionTask):
  """Random-pixel inpainting: each pixel is kept with probability `keep_prob`."""

  @classmethod
  def from_options(cls, *, keep_prob: float, loss: Loss) -> 'RandomPixelInpainting':
    return cls(operator=RandomPixelMask(keep_prob), loss=loss, labels=Labels(observed='masked', estimate='inpainted'))
