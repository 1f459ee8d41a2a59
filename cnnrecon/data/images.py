"""Image files <-> HWC numpy arrays (float32 in [0, 1], or uint8).

Reading goes through imageio with the pillow plugin (tifffile for TIFF), the
readers behind `skimage.io`, whose plugin layer is deprecated. 8-bit and
16-bit PNG, JPEG, BMP and TIFF files all come back scaled to [0, 1], DICOM
slices through pydicom (`cnnrecon.data.dicom`). Writing uses PIL.
"""

import io
import pathlib

import imageio.v3 as iio
import numpy as np
import PIL.Image
import skimage.color
import skimage.util

from cnnrecon.data.dicom import DICOM_EXTENSIONS, is_dicom, read_dicom
from cnnrecon.errors import CnnreconError
from cnnrecon.io import write_file_atomic

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff') + DICOM_EXTENSIONS


def is_image_file(path: str | pathlib.Path) -> bool:
  """Whether `path` names an image file by its extension (case-insensitive).

  Args:
    path: a file path.

  Returns:
    True for a visible file whose extension is in `IMAGE_EXTENSIONS`.
  """
  path = pathlib.Path(path)
  # Names starting with '.' are editor / macOS metadata ("._x.png"), not images.
  return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith('.')


def list_images(folder: str | pathlib.Path) -> list[pathlib.Path]:
  """Lists the image files directly inside `folder` (not recursive).

  Args:
    folder: a directory of png/jpg/bmp/tif images.

  Returns:
    The image paths, sorted by file name.

  Raises:
    CnnreconError: the folder is missing or holds no image file.
  """
  folder = pathlib.Path(folder).expanduser()
  if not folder.is_dir():
    raise CnnreconError(f'data folder {folder} does not exist: pass a folder of '
                        'png/jpg/bmp/tif images')
  paths = sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p))
  if not paths:
    raise CnnreconError(f'data folder {folder} holds no image files: add '
                        f'{"/".join(IMAGE_EXTENSIONS)} images or pass another folder')
  return paths


def check_channels(channels: int) -> None:
  """Raises CnnreconError unless `channels` is 1 (gray) or 3 (RGB)."""
  if channels not in (1, 3):
    raise CnnreconError(f'channels must be 1 (gray) or 3 (RGB), got {channels!r}: '
                        'set the channels option to 1 or 3')


GRAY_CONVERSIONS = ('luminance', 'bt601_y')


def to_channels(image: np.ndarray, channels: int, *, gray: str = 'luminance') -> np.ndarray:
  """Converts an image to `channels` channels.

  Gray becomes RGB by replication; RGB becomes gray by `gray`: 'luminance'
  with the `skimage.color.rgb2gray` weights (0.2125 R + 0.7154 G + 0.0721 B),
  or 'bt601_y', the luma Y of ITU-R BT.601 as MATLAB's `rgb2ycbcr` gives it
  (16..235 of 255; `skimage.color.rgb2ycbcr`), which super-resolution scores
  use. An alpha channel (the 2nd of gray+alpha, the 4th of RGBA) is dropped.

  Args:
    image: HxW or HxWxC array with C in 1..4, either uint8 or floating point
      in [0, 1].
    channels: 1 or 3.
    gray: how RGB becomes one channel (`config.data.gray`).

  Returns:
    An HxWx`channels` array of the same dtype: uint8 in gives uint8 out (the
    luminance rounded to the nearest integer), float in gives float out.
  """
  check_channels(channels)
  image = np.asarray(image)
  if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
    raise TypeError(f'to_channels expects uint8 or float images, got {image.dtype}')
  if image.ndim == 2:
    image = image[..., None]
  color = image[..., :3] if image.shape[-1] >= 3 else image[..., :1]
  if color.shape[-1] == channels:
    return color
  if channels == 3:
    return np.repeat(color, 3, axis=-1)
  if gray == 'bt601_y':
    luma = skimage.color.rgb2ycbcr(color)[..., 0]  # on the 0..255 scale
    luma = np.round(luma) if image.dtype == np.uint8 else luma / 255.0
    return luma.astype(image.dtype)[..., None]
  if gray != 'luminance':
    raise CnnreconError(f'data.gray={gray!r}: use one of {", ".join(GRAY_CONVERSIONS)}')
  luminance = skimage.color.rgb2gray(color)
  if image.dtype == np.uint8:
    luminance = skimage.util.img_as_ubyte(luminance)
  return luminance.astype(image.dtype)[..., None]


def _plugin(path: pathlib.Path) -> str:
  """imageio's plugin for a file: an explicit one keeps imageio from probing every backend on a bad file."""
  return 'tifffile' if path.suffix.lower() in ('.tif', '.tiff') else 'pillow'


def holds_color(path: str | pathlib.Path) -> bool:
  """Whether an image file holds colour (RGB or RGBA), from its header; False for a file that is no image."""
  path = pathlib.Path(path).expanduser()
  if is_dicom(path):
    return False  # `read_dicom` reads one gray frame
  try:
    shape = iio.improps(path, plugin=_plugin(path)).shape
  except (OSError, ValueError, SyntaxError):
    return False
  return len(shape) == 3 and shape[-1] >= 3


def read_image(path: str | pathlib.Path, *, channels: int) -> np.ndarray:
  """Reads an image file as float32 in [0, 1].

  Args:
    path: a png/jpg/bmp/tif file, 8 or 16 bits per sample, gray or RGB(A), or
      a single-frame DICOM slice (`.dcm`, gray; `cnnrecon.data.dicom`).
    channels: 1 (luminance) or 3 (RGB; gray files are replicated).

  Returns:
    An HxWx`channels` float32 array in [0, 1].

  Raises:
    CnnreconError: the file is missing or is not a readable single image.
  """
  check_channels(channels)
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise CnnreconError(f'image file {path} does not exist: check the path')
  if is_dicom(path):
    return to_channels(read_dicom(path), channels)
  try:
    array = iio.imread(path, plugin=_plugin(path))
  except (OSError, ValueError, SyntaxError) as error:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise CnnreconError(f'{path} is not a readable image ({reason}): replace it '
                        'with a valid png/jpg/bmp/tif file or remove it') from error
  # Multi-page TIFFs and volumes come back as stacks; we need one 2-D image.
  if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] > 4):
    raise CnnreconError(f'{path} holds an array of shape {array.shape}, not one '
                        'gray or RGB image: save a single 2-D image instead')
  image = np.clip(skimage.util.img_as_float32(array), 0.0, 1.0)
  return to_channels(image, channels)


def write_image(path: str | pathlib.Path, image: np.ndarray) -> None:
  """Saves a float image in [0, 1] as an 8-bit PNG (rounded, clipped).

  The file is replaced (written beside it, then renamed), never written
  through: a hard or symbolic link at `path` is replaced, and the file it
  shared an inode with keeps its bytes.

  Args:
    path: destination file (name it .png); its parent folders are created.
    image: HxW, HxWx1 or HxWx3 float array; values outside [0, 1] are clipped.
  """
  image = np.asarray(image, dtype=np.float32)
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
    raise ValueError(f'write_image expects HxW, HxWx1 or HxWx3, got {image.shape}')
  pixels = skimage.util.img_as_ubyte(np.clip(image, 0.0, 1.0))
  encoded = io.BytesIO()
  PIL.Image.fromarray(pixels).save(encoded, format='PNG')
  write_file_atomic(path, encoded.getvalue())


PAINTINGS = pathlib.Path(__file__).resolve().parent / 'paintings'


def style_image_path(name_or_path: str) -> pathlib.Path:
  """A style image: a file path, or the name of a painting shipped in `cnnrecon/data/paintings` ('starry_night')."""
  shipped = PAINTINGS / f'{name_or_path}.jpg'
  return shipped if not pathlib.Path(name_or_path).exists() and shipped.is_file() else pathlib.Path(name_or_path)
