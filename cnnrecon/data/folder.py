"""TFDS builder for a user's folder of images, and the example format we share.

Every cnnrecon builder writes examples `{'image': uint8 HxWx3, 'name': str}`.
Images are stored PNG-encoded: `tfds.features.Image` is fed PIL images, which
TFDS encodes with PIL (feeding numpy arrays would need TensorFlow), and
`builder.as_data_source(split)` decodes them with PIL. Neither building to
array_record nor reading needs TensorFlow. Read back, 'name' is bytes.
"""

import dataclasses
import hashlib
import pathlib

import numpy as np
import PIL.Image
import skimage.util
import tensorflow_datasets as tfds

from cnnrecon.data import images


class NamedImagesBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of cnnrecon's builders: named uint8 RGB images of any size, in order."""

  # tfds 4.9.10 resolves `code_path` through importlib_resources, which it does
  # not declare as a dependency (tensorflow/datasets#11212). It is only used to
  # find a download checksums file; these builders download nothing.
  code_path = None

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.__doc__,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(None, None, 3), encoding_format='png'),
            'name': tfds.features.Text(),
        }),
        # Keep generation order (sorted names) instead of TFDS's key-hash order.
        disable_shuffling=True,
    )


def named_image_example(name: str, pixels: np.ndarray) -> dict[str, object]:
  """Returns the example a `NamedImagesBuilder` yields for one uint8 image.

  Args:
    name: the image's name (a file name or a sample name).
    pixels: uint8 HxW or HxWxC image; gray is replicated to RGB.

  Returns:
    {'image': PIL RGB image, 'name': name}.
  """
  return {'image': PIL.Image.fromarray(images.to_channels(pixels, 3)), 'name': name}


@dataclasses.dataclass
class ImageFolderConfig(tfds.core.BuilderConfig):
  """One folder's contents; the name fingerprints them (see `folder_config`).

  Attributes:
    folder: absolute path of the image folder.
  """
  folder: str = ''


def folder_fingerprint(folder: pathlib.Path, paths: list[pathlib.Path]) -> str:
  """Hashes a folder's path and its images' names, sizes and mtimes.

  Args:
    folder: absolute folder path.
    paths: the folder's image files.

  Returns:
    16 hex digits that change whenever an image is added, removed or edited.
  """
  digest = hashlib.sha256(str(folder).encode())
  for path in paths:
    stat = path.stat()
    digest.update(f'\0{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}'.encode())
  return digest.hexdigest()[:16]


def folder_config(folder: str | pathlib.Path) -> ImageFolderConfig:
  """Builds the config of `folder`'s current contents.

  Args:
    folder: a directory of png/jpg/bmp/tif images.

  Returns:
    A config named `folder_<fingerprint>`, so a changed folder gets rebuilt.

  Raises:
    CnnreconError: the folder is missing or holds no image file.
  """
  folder = pathlib.Path(folder).expanduser().resolve()
  fingerprint = folder_fingerprint(folder, images.list_images(folder))
  return ImageFolderConfig(name=f'folder_{fingerprint}', folder=str(folder),
                           description=f'images in {folder}')


class ImageFolderImages(NamedImagesBuilder):
  """Every image of one folder (png/jpg/bmp/tif, gray or RGB), as uint8 RGB."""

  name = 'cnnrecon_image_folder'
  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': "One 'train' split: the folder's images sorted by file name."}

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download: the images are local.
    return {'train': self._generate_examples(images.list_images(self.builder_config.folder))}

  def _generate_examples(self, paths):
    for path in paths:
      # Raises CnnreconError naming the file when it is not a readable image.
      pixels = skimage.util.img_as_ubyte(images.read_image(path, channels=3))
      yield path.name, named_image_example(path.name, pixels)


def image_folder_builder(folder: str | pathlib.Path, *, data_dir: str) -> ImageFolderImages:
  """Returns the (not yet prepared) builder of `folder`'s current contents.

  Args:
    folder: a directory of png/jpg/bmp/tif images.
    data_dir: TFDS data directory to build into.

  Raises:
    CnnreconError: the folder is missing or holds no image file.
  """
  return ImageFolderImages(config=folder_config(folder), data_dir=data_dir,
                           file_format='array_record')
