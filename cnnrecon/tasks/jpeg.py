"""JPEG deblocking: recover an 8-bit image from its JPEG compression at quality q."""

import numpy as np

from cnnrecon.losses import Loss
from cnnrecon.ops.jpeg import JpegCompression
from cnnrecon.tasks.base import Labels, MetricConvention
from cnnrecon.tasks.reconstruction import ReconstructionTask

JPEG_LABELS = Labels(observed='compressed', estimate='deblocked')


class JpegDeblocking(ReconstructionTask):
  """Remove JPEG artefacts at `quality` (1..100; libjpeg through Pillow, as MATLAB's imwrite).

  JPEG encodes 8-bit pixels, so the target is the 8-bit image that was compressed
  (`evaluation_image` rounds a float image to 1/255 steps), and estimates are
  rounded to 8 bits before scoring, as the DnCNN authors' `im2uint8(output)`.
  """

  @classmethod
  def from_options(cls, *, loss: Loss, quality: int = 20) -> 'JpegDeblocking':
    return cls(operator=JpegCompression(quality), loss=loss, labels=JPEG_LABELS,
               convention=MetricConvention(quantize=True))

  def evaluation_image(self, clean: np.ndarray) -> np.ndarray:
    """The image at 8 bits: what a JPEG file compresses."""
    return (np.round(np.clip(clean, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)

  def protocol(self) -> str:
    """The JPEG protocol: 8-bit target, libjpeg at q, estimates rounded to 8 bits."""
    return (f'Protocol: each 8-bit image is JPEG-compressed at quality {int(self.operator.quality)} with libjpeg '
            '(standard IJG tables, as MATLAB imwrite) and decoded; estimates are clipped and rounded to 8 bits '
            f'(im2uint8); {self.convention.describe()}.')
