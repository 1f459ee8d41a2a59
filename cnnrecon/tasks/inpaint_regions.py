"""Region inpainting: fill holes of random boxes and free-form strokes; the net is given the mask as a channel."""

import pathlib

import imageio.v3 as iio
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
# skimage's subpackages load lazily: `restoration.inpaint_biharmonic` imports SciPy's sparse solvers
# (a quarter of a second) on first use, not when the command starts.
from skimage import restoration
import skimage.util

from cnnrecon.data.images import read_image
from cnnrecon.errors import CnnreconError
from cnnrecon.losses import Loss
from cnnrecon.ops.masks import RegionMask, fill_holes
from cnnrecon.tasks.base import Input, Labels
from cnnrecon.tasks.reconstruction import ReconstructionTask


def biharmonic_baseline(example: dict) -> np.ndarray:
  """scikit-image's biharmonic inpainting of one observation ([H, W, C + 1], mask last), [H, W, C] float32."""
  observed = np.asarray(example['observed'], np.float64)
  image, holes = observed[..., :-1], observed[..., -1] < 0.5
  if not holes.any() or holes.all():  # nothing to fill, or nothing to fill it from
    return image.astype(np.float32)
  if image.shape[-1] == 1:
    return restoration.inpaint_biharmonic(image[..., 0], holes)[..., None].astype(np.float32)
  return restoration.inpaint_biharmonic(image, holes, channel_axis=-1).astype(np.float32)


class RegionInpainting(ReconstructionTask):
  """Inpainting of random regions: boxes, free-form strokes or both (`RegionMask`).

  The observation is the image with its holes zeroed plus the mask as a last channel (1 = known
  pixel), and the net is given all of it: the mask tells a hole from a black pixel. The baseline
  is scikit-image's biharmonic inpainting.

  For `cnnrecon restore` (alias `denoise`) an observation is a PNG with an alpha channel (gray +
  alpha or RGBA): alpha 0 marks a missing pixel, any other alpha a known one; the colour of
  missing pixels is ignored.
  """

  @classmethod
  def from_options(cls, *, loss: Loss, kind: str = 'both', boxes: float = 1.0, box_min: int = 8, box_max: int = 24,
                   strokes: float = 1.0, stroke_segments: int = 4, stroke_length: float = 20.0,
                   stroke_min_width: float = 3.0, stroke_max_width: float = 9.0) -> 'RegionInpainting':
    operator = RegionMask(kind=kind, boxes=boxes, box_min=box_min, box_max=box_max, strokes=strokes,
                          stroke_segments=stroke_segments, stroke_length=stroke_length,
                          stroke_min_width=stroke_min_width, stroke_max_width=stroke_max_width)
    return cls(operator=operator, loss=loss, labels=Labels(observed='masked', estimate='inpainted'),
               baselines={'biharmonic': biharmonic_baseline})

  @classmethod
  def check_evaluation(cls, trained: ml_collections.ConfigDict, evaluated: ml_collections.ConfigDict) -> None:
    """A region model takes the image and its mask channel: it runs on this task's observations only."""
    if evaluated.task.name != trained.task.name:
      raise CnnreconError(f'a model trained on {trained.task.name} takes the image plus its mask channel, so it '
                          f'cannot be evaluated on task {evaluated.task.name!r}: leave --task out')

  def model_input(self, observed: jax.Array, initial_estimate: jax.Array) -> jax.Array:
    """The whole observation, its holes filled smoothly first (`fill_holes`), and its mask channel.

    The fill gives the net's residual output a start near the answer (as bicubic does for
    super-resolution); the mask still tells it which pixels were filled.
    """
    del initial_estimate
    image, mask = observed[..., :-1], observed[..., -1:]
    return jnp.concatenate([fill_holes(image, mask), mask], axis=-1)

  @classmethod
  def observation_input(cls, config: ml_collections.ConfigDict) -> Input:
    """Exports take the observation: the image's channels, then the mask (1 = known)."""
    return Input('observed', 'image', channels=config.data.channels + 1, value_range=(0.0, 1.0))

  @classmethod
  def read_observation(cls, path, channels: int) -> np.ndarray:
    """A PNG with alpha as an observation [H, W, C + 1]: alpha 0 = missing (see the class docstring).

    Args:
      path: the PNG.
      channels: the image's channels C (1 or 3; a trained workdir's), or the observation's C + 1 (2 or 4;
        an export states its input's).

    Raises:
      CnnreconError: the file is unreadable, or has no alpha channel to say which pixels are missing.
    """
    # read_image checks the file and gives the colour channels (it drops the alpha).
    image = read_image(path, channels=channels - 1 if channels in (2, 4) else channels)
    pixels = iio.imread(pathlib.Path(path).expanduser(), plugin='pillow')
    if pixels.ndim != 3 or pixels.shape[-1] not in (2, 4):
      raise CnnreconError(f'{path} has no alpha channel: save the image to restore as a PNG with alpha 0 on its '
                          'missing pixels (gray+alpha or RGBA)')
    known = (skimage.util.img_as_float32(pixels[..., -1:]) > 0).astype(np.float32)
    return np.concatenate([image * known, known], axis=-1)

