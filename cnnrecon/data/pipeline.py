"""grain pipelines: random training patches and fixed validation crops.

Training stream (deterministic by seed, resumable through grain's iterator
state):

  source -> shuffle (reshuffled every epoch) -> repeat forever
         -> random patch + flip/rot90 + per-example seed
         -> this process's share (every M-th example) -> batch

The random transform runs before the process split, so an example's crop,
augmentation and example seed depend only on its position in the global
stream: M processes with batch B/M see exactly the examples one process with
batch B sees. The noise itself is drawn on device from the example's seed
(`train/step.py`), so it is the same on any number of devices.
"""

from typing import Any, Mapping, Sequence

from absl import flags
import grain
import jax
import numpy as np

from cnnrecon.data.images import to_channels

_SEED_LIMIT = 2**31 - 1


def dihedral(image: np.ndarray, index: int) -> np.ndarray:
  """The `index`-th of the 8 flips/rotations (DnCNN's augmentation), 0 = identity."""
  rotated = np.rot90(image, index % 4)
  return rotated[:, ::-1] if index >= 4 else rotated


def pad_to(image: np.ndarray, size: int) -> np.ndarray:
  """Pads an image that is smaller than `size` on either side by mirroring it (numpy's 'symmetric': edge pixels repeat)."""
  pad_h, pad_w = max(size - image.shape[0], 0), max(size - image.shape[1], 0)
  if not pad_h and not pad_w:
    return image
  return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode='symmetric')


class RandomPatch(grain.transforms.RandomMap):
  """Crops a random patch, applies a random dihedral transform, draws an example seed."""

  def __init__(self, *, patch_size: int, channels: int, augment: bool, gray: str = 'luminance'):
    self.patch_size = patch_size
    self.channels = channels
    self.augment = augment
    self.gray = gray

  def random_map(self, element: Mapping[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
    image = pad_to(element['image'], self.patch_size)
    top = rng.integers(0, image.shape[0] - self.patch_size + 1)
    left = rng.integers(0, image.shape[1] - self.patch_size + 1)
    patch = image[top:top + self.patch_size, left:left + self.patch_size]
    if self.augment:
      patch = dihedral(patch, int(rng.integers(0, 8)))
    target = to_channels(np.ascontiguousarray(patch), self.channels, gray=self.gray).astype(np.float32) / 255.0
    return {'target': target, 'example_seed': np.uint32(rng.integers(0, _SEED_LIMIT))}


def train_iterator(source: Sequence, *, seed: int, patch_size: int, channels: int, batch_size: int,
                   augment: bool = True, num_threads: int = 2, cache: bool = True, gray: str = 'luminance',
                   workers: int = 0, process_index: int | None = None,
                   process_count: int | None = None) -> grain.DatasetIterator:
  """An endless, checkpointable iterator of training batches for this process.

  Args:
    source: random-access images (`data.sources.load_source`).
    seed: `config.seed`.
    patch_size: side of the square training patches.
    channels: 1 (gray) or 3 (RGB).
    batch_size: this process's batch size (global batch / process count).
    augment: apply a random flip/rot90.
    num_threads: grain reader threads (output order does not depend on it).
    cache: decode every image once and keep it in memory; without it each
      patch decodes its whole source image again (turn off only for data
      sets that do not fit in RAM).
    gray: how RGB becomes gray (`data.images.to_channels`).
    workers: worker processes that cut whole batches in parallel (grain's
      `mp_prefetch`; 0 = none). The batches and their order do not depend on
      it: worker w makes batches w, w + workers, ... of the same sequence.
    process_index: this process's index (default `jax.process_index()`).
    process_count: number of processes (default `jax.process_count()`).

  Returns:
    A grain DatasetIterator of `{'target': f32[B,p,p,C], 'example_seed': u32[B]}`
    whose `get_state()` / `set_state()` save and restore its position.
  """
  index = jax.process_index() if process_index is None else process_index
  count = jax.process_count() if process_count is None else process_count
  if cache:
    source = [source[i] for i in range(len(source))]
  dataset = (
      grain.MapDataset.source(source)
      .seed(seed)
      .shuffle()
      .repeat(None)
      .random_map(RandomPatch(patch_size=patch_size, channels=channels, augment=augment, gray=gray))
  )[index::count].batch(batch_size, drop_remainder=True)
  # grain uses at most prefetch_buffer_size of the threads (measured on 16 cores: 1506 img/s with a buffer of 2).
  read_options = grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=max(2, num_threads))
  batches = dataset.to_iter_dataset(read_options)
  if workers:
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()  # grain's workers read its absl flags: outside an absl app, their defaults
    batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return iter(batches)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
  """The central `size` x `size` window (mirror-padded, edge pixels repeated, when the image is smaller)."""
  image = pad_to(image, size)
  top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
  return image[top:top + size, left:left + size]


def validation_batch(source: Sequence, *, seed: int, crop: int, channels: int,
                     gray: str = 'luminance') -> dict[str, np.ndarray]:
  """Fixed center crops of every validation image with fixed example seeds.

  Returns:
    `{'target': f32[N, crop, crop, C], 'example_seed': u32[N]}`, identical on
    every call and in every process.
  """
  targets = [to_channels(center_crop(source[i]['image'], crop), channels, gray=gray) for i in range(len(source))]
  example_seeds = np.random.default_rng([seed, 1]).integers(0, _SEED_LIMIT, size=len(targets))
  return {'target': np.stack(targets).astype(np.float32) / 255.0, 'example_seed': example_seeds.astype(np.uint32)}
