"""The device sampler on a DIV2K-sized set: 800 RGB images of 2040 x 1296..1500 px, 6.9 GB as uint8.

  python benchmarks/div2k_like.py [--images 800] [--patch-size 96] [--batch-size 16] [--out FILE]

The images are made on the fly: every value is a hash of (image, row, column, channel), so a patch
read from the wrong image or offset cannot pass for the right one. The script packs them
(`device_sampler.pack_images`), puts the buffer on the default device, draws batches with the
sampler the training loop uses, checks every patch of the first batches against a numpy crop of
its own image (with its dihedral transform), and prints one JSON line: bytes, rows, pack seconds,
images/s of the sampler, patches checked. A CPU host needs about twice the buffer in memory (the
packed numpy buffer and its device copy); a GPU holds one copy.
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.data import device_sampler
from cnnrecon.data.pipeline import dihedral

WIDTH, HEIGHTS = 2040, (1296, 1500)  # DIV2K's HR images: 2040 px on the long side


class HashedImage:
  """An image whose shape is known without making its pixels (`pack_images` sizes its buffer first)."""

  def __init__(self, index: int, height: int):
    self.index, self.shape = index, (height, WIDTH, 3)

  def __array__(self, dtype=None, copy=None):
    """The pixels: a multiplicative hash of (image, row, column, channel), uint8."""
    rows = np.arange(self.shape[0], dtype=np.uint32)[:, None, None] * np.uint32(19349663)
    cols = np.arange(WIDTH, dtype=np.uint32)[None, :, None] * np.uint32(83492791)
    channels = np.arange(3, dtype=np.uint32)[None, None, :] * np.uint32(2654435761)
    mixed = (rows ^ cols ^ channels ^ np.uint32(self.index * 73856093 % 2**32)) * np.uint32(2246822519)
    return (mixed >> np.uint32(24)).astype(dtype or np.uint8)


def hashed_images(count: int) -> list[dict]:
  """`count` DIV2K-sized images (heights spread over `HEIGHTS`), as a training source lists them."""
  heights = np.linspace(*HEIGHTS, count).round().astype(int)
  return [{'image': HashedImage(index, int(height))} for index, height in enumerate(heights)]


def check_patches(source, packed, batch, indices, patch_size: int) -> int:
  """Asserts each patch equals the transformed numpy crop of the image its draws name; returns how many."""
  draws = jax.device_get(jax.vmap(lambda index: device_sampler.example_draws(
      0, index, heights=jnp.asarray(packed.heights), widths=jnp.asarray(packed.widths),
      patch_size=patch_size))(indices))
  targets = np.round(np.asarray(batch['target']) * 255).astype(np.uint8)
  for i in range(len(indices)):
    image = np.asarray(source[int(draws['image'][i])]['image'])
    top, left = int(draws['top'][i]), int(draws['left'][i])
    expected = dihedral(image[top:top + patch_size, left:left + patch_size], int(draws['transform'][i]))
    np.testing.assert_array_equal(targets[i], expected)
  return len(indices)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--images', type=int, default=800)
  parser.add_argument('--patch-size', type=int, default=96)
  parser.add_argument('--batch-size', type=int, default=16)
  parser.add_argument('--checked-batches', type=int, default=4)
  parser.add_argument('--timed-batches', type=int, default=50)
  parser.add_argument('--out', help='also write the JSON line to this file')
  args = parser.parse_args()
  source = hashed_images(args.images)
  started = time.perf_counter()
  packed = device_sampler.pack_images(source, channels=3, patch_size=args.patch_size)
  pack_s = time.perf_counter() - started
  arrays = jax.device_put((packed.pixels, packed.starts, packed.heights, packed.widths))
  sample = jax.jit(lambda arrays, indices: device_sampler.sample_patches(
      *arrays, indices, seed=0, patch_size=args.patch_size, channels=3))
  batch_indices = lambda step: step * args.batch_size + jnp.arange(args.batch_size)
  checked = sum(check_patches(source, packed, sample(arrays, batch_indices(step)), batch_indices(step),
                              args.patch_size) for step in range(args.checked_batches))
  # Far into the stream too: the last image of an epoch's permutation, a late epoch.
  late = jnp.arange(args.images * 7 - args.batch_size // 2, args.images * 7 + args.batch_size // 2)
  checked += check_patches(source, packed, sample(arrays, late), late, args.patch_size)
  jax.block_until_ready(sample(arrays, batch_indices(0)))
  started = time.perf_counter()
  for step in range(args.timed_batches):
    jax.block_until_ready(sample(arrays, batch_indices(step)))
  images_per_s = args.timed_batches * args.batch_size / (time.perf_counter() - started)
  result = {'name': 'device_sampler_div2k_like', 'device': str(jax.devices()[0].device_kind),
            'images': args.images, 'bytes': packed.nbytes, 'rows': int(packed.pixels.shape[0]),
            'pack_s': round(pack_s, 1), 'patch_size': args.patch_size, 'batch_size': args.batch_size,
            'images_per_s': round(images_per_s, 1), 'patches_checked': checked}
  print(json.dumps(result))
  if args.out:
    with open(args.out, 'w', encoding='utf-8') as file:
      file.write(json.dumps(result) + '\n')


if __name__ == '__main__':
  main()
