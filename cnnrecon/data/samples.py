"""TFDS builder of sample images shipped inside the scikit-image wheel.

Nothing is downloaded: every image below is a file in `skimage/data` (checked
offline with scikit-image 0.26). Skipped on purpose: `cat` (same picture as
`chelsea`), `horse` (a binary mask), and the synthetic `logo`, `colorwheel`
and `checkerboard`; `motorcycle` is the left view of `stereo_motorcycle`.
"""

import numpy as np
import skimage.data
import skimage.transform
import skimage.util
import tensorflow_datasets as tfds

from cnnrecon.data import folder

# Fixed split: two gray and two color images of different kinds.
VALIDATION_IMAGES = ('astronaut', 'camera', 'coffee', 'coins')
TRAIN_IMAGES = (
    'brick', 'cell', 'chelsea', 'clock', 'grass', 'gravel', 'hubble_deep_field',
    'immunohistochemistry', 'microaneurysms', 'moon', 'motorcycle', 'page',
    'retina', 'rocket', 'shepp_logan_phantom', 'text',
)
# Larger images (hubble_deep_field, retina, cell, ...) are downscaled to this
# longest side, which keeps building and sampling patches fast.
MAX_SIDE = 512

_LOADERS = {'motorcycle': lambda: skimage.data.stereo_motorcycle()[0]}


def _limit_size(pixels: np.ndarray) -> np.ndarray:
  """Downscales (anti-aliased) so that the longest side is at most MAX_SIDE."""
  scale = MAX_SIDE / max(pixels.shape[:2])
  if scale >= 1:
    return pixels
  shape = tuple(round(side * scale) for side in pixels.shape[:2])
  resized = skimage.transform.resize(pixels, shape, anti_aliasing=True)
  return skimage.util.img_as_ubyte(np.clip(resized, 0.0, 1.0))


def load_sample(name: str) -> np.ndarray:
  """Loads one sample image as stored in the dataset (before RGB replication).

  Args:
    name: one of TRAIN_IMAGES or VALIDATION_IMAGES.

  Returns:
    uint8 HxW (gray) or HxWx3 (color) array, longest side <= MAX_SIDE.
  """
  loader = _LOADERS.get(name) or getattr(skimage.data, name)
  return _limit_size(skimage.util.img_as_ubyte(loader()))


class SkimageSamples(folder.NamedImagesBuilder):
  """Sample images from scikit-image (no download); gray ones replicated to RGB."""

  name = 'cnnrecon_skimage_samples'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {
      '1.0.0': (f'{len(TRAIN_IMAGES)} train and {len(VALIDATION_IMAGES)} validation '
                f'images from skimage.data, longest side <= {MAX_SIDE}.'),
  }

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the images ship with scikit-image.
    return {
        'train': self._generate_examples(TRAIN_IMAGES),
        'validation': self._generate_examples(VALIDATION_IMAGES),
    }

  def _generate_examples(self, names):
    for name in names:
      yield name, folder.named_image_example(name, load_sample(name))
