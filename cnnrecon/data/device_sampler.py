"""Training patches drawn on the accelerator from images kept in its memory (`config.data.sampler='device'`).

Every training image is decoded once, converted to the model's channels and
packed as uint8 into one 2-D buffer on the devices (`PackedImages`): image i
starts at row `starts[i]` and runs on row-major through rows of `ROW_BYTES`
values, so images of any size share the buffer and every index fits in
int32 (a DIV2K-like set of 800 images of 2040x1400 RGB is 6.9 GB: 1.7 M rows).

Example g of the training stream (g = step * global batch + position in the
batch) is a pure function of (`config.seed`, g):

  stream = fold_in(key(seed), STREAM_TAG)
  image    = permutation(fold_in(fold_in(stream, 0), g // N))[g % N]  (each image once per epoch)
  the rest from fold_in(fold_in(stream, 1), g):
  top/left = uniform over the image's valid positions
  transform = uniform over the 8 flips/rotations (`pipeline.dihedral`'s order)
  example_seed = uniform in [0, 2**31 - 1)

so the stream is the same for any number of devices and processes, and
resuming needs only the step. No library samples crops from a ragged set of
images inside a jitted program (grain and tf.data work on the host), hence
this module.
"""

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.data.images import to_channels
from cnnrecon.data.pipeline import pad_to
from cnnrecon.errors import CnnreconError

ROW_BYTES = 4096
STREAM_TAG = 0x5A3D  # separates the sampler's keys from other uses of key(seed)
_SEED_LIMIT = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class PackedImages:
  """Images of any sizes packed row-major into one uint8 [rows, ROW_BYTES] buffer.

  Attributes:
    pixels: uint8 [rows, ROW_BYTES]; image i's value (y, x, c) is at flat
      position `starts[i] * ROW_BYTES + (y * widths[i] + x) * channels + c`.
    starts: int32 [N], the first row of each image.
    heights, widths: int32 [N], each image's size (at least the patch size:
      smaller images are mirror-padded as the host pipeline pads them).
    channels: 1 or 3.
  """

  pixels: np.ndarray
  starts: np.ndarray
  heights: np.ndarray
  widths: np.ndarray
  channels: int

  @property
  def nbytes(self) -> int:
    """The device memory the buffer takes."""
    return int(self.pixels.nbytes)


def _rows(values: int) -> int:
  """How many `ROW_BYTES` rows an image of `values` uint8 values takes (each image starts a row)."""
  return -(-values // ROW_BYTES)


def _image_rows(source: Sequence, *, channels: int, patch_size: int) -> np.ndarray:
  """int64 [N]: the rows each image of `source` takes once padded to the patch size, from its shape alone."""
  rows = []
  for index in range(len(source)):
    height, width = np.shape(source[index]['image'])[:2]
    rows.append(_rows(max(height, patch_size) * max(width, patch_size) * channels))
  return np.asarray(rows, np.int64)


def packed_size(source: Sequence, *, channels: int, patch_size: int) -> int:
  """Bytes `pack_images` would take, from the images' shapes alone (to choose the sampler)."""
  return int(_image_rows(source, channels=channels, patch_size=patch_size).sum()) * ROW_BYTES


def pack_images(source: Sequence, *, channels: int, patch_size: int, gray: str = 'luminance') -> PackedImages:
  """Converts every image of `source` to `channels` (uint8) and packs them (`PackedImages`).

  The buffer is sized from the images' shapes first, then filled one converted image at a time, so
  packing needs the buffer's memory once (6.9 GB for a DIV2K-sized set), not a second copy.
  """
  rows = _image_rows(source, channels=channels, patch_size=patch_size)
  starts = np.concatenate([[0], np.cumsum(rows)[:-1]]).astype(np.int64)
  if rows.sum() >= 2**31:
    raise CnnreconError(f'{len(rows)} training images need {rows.sum()} rows of {ROW_BYTES} bytes, too many for '
                        'the device sampler: use --config.data.sampler=host')
  pixels = np.zeros((int(rows.sum()), ROW_BYTES), np.uint8)
  flat = pixels.reshape(-1)
  heights, widths = np.zeros(len(rows), np.int32), np.zeros(len(rows), np.int32)
  for index, start in enumerate(starts):
    image = to_channels(pad_to(np.asarray(source[index]['image']), patch_size), channels, gray=gray)
    flat[start * ROW_BYTES:start * ROW_BYTES + image.size] = image.reshape(-1)
    heights[index], widths[index] = image.shape[:2]
  return PackedImages(pixels=pixels, starts=starts.astype(np.int32), heights=heights, widths=widths,
                      channels=channels)


def dihedral_coordinates(rows: jax.Array, cols: jax.Array, transform: jax.Array, size: int):
  """Where output pixel (rows, cols) of `pipeline.dihedral(patch, transform)` comes from in the patch.

  `dihedral` rotates by 90 degrees `transform % 4` times (numpy's rot90: counter-clockwise), then
  mirrors left-right when `transform >= 4`; this is its inverse map on coordinates, so a patch is
  gathered already transformed.
  """
  last = size - 1
  cols = jnp.where(transform >= 4, last - cols, cols)
  turns = transform % 4
  source_rows = jnp.select([turns == 0, turns == 1, turns == 2], [rows, cols, last - rows], last - cols)
  source_cols = jnp.select([turns == 0, turns == 1, turns == 2], [cols, last - rows, last - cols], rows)
  return source_rows, source_cols


def example_draws(seed: int | jax.Array, index: jax.Array, *, heights: jax.Array, widths: jax.Array,
                  patch_size: int) -> dict[str, jax.Array]:
  """The random choices of example `index` of the stream: image, top-left corner, transform, example seed."""
  stream = jax.random.fold_in(jax.random.key(seed), STREAM_TAG)
  epochs, examples = jax.random.fold_in(stream, 0), jax.random.fold_in(stream, 1)
  count = heights.shape[0]
  image = jax.random.permutation(jax.random.fold_in(epochs, index // count), count)[index % count]
  key_top, key_left, key_transform, key_seed = jax.random.split(jax.random.fold_in(examples, index), 4)
  return {'image': image,
          'top': jax.random.randint(key_top, (), 0, heights[image] - patch_size + 1),
          'left': jax.random.randint(key_left, (), 0, widths[image] - patch_size + 1),
          'transform': jax.random.randint(key_transform, (), 0, 8),
          'example_seed': jax.random.randint(key_seed, (), 0, _SEED_LIMIT).astype(jnp.uint32)}


def sample_patches(pixels: jax.Array, starts: jax.Array, heights: jax.Array, widths: jax.Array,
                   indices: jax.Array, *, seed: int, patch_size: int, channels: int,
                   augment: bool = True) -> dict[str, jax.Array]:
  """The training examples at stream positions `indices` [B], gathered from the packed images.

  Returns:
    `{'target': f32[B, p, p, C] in [0, 1], 'example_seed': u32[B]}`, as the host pipeline gives.
  """

  def one(index):
    draws = example_draws(seed, index, heights=heights, widths=widths, patch_size=patch_size)
    grid = jnp.arange(patch_size)
    rows, cols = jnp.meshgrid(grid, grid, indexing='ij')
    if augment:
      rows, cols = dihedral_coordinates(rows, cols, draws['transform'], patch_size)
    image = draws['image']
    offsets = ((draws['top'] + rows) * widths[image] + draws['left'] + cols)[..., None] * channels
    offsets = offsets + jnp.arange(channels)
    row, col = starts[image] + offsets // ROW_BYTES, offsets % ROW_BYTES
    return {'target': pixels[row, col].astype(jnp.float32) / 255.0, 'example_seed': draws['example_seed']}

  return jax.vmap(one)(indices)
