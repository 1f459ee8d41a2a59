"""Where a training run's batches come from: the host pipeline (grain) or the device sampler.

`config.data.sampler`:
- 'device': the training images live on the devices (`data.device_sampler`); each step's batch is
  drawn there from (seed, step), so the input never waits on Python and resuming needs only the step.
- 'host': grain crops on the host (`data.pipeline.train_iterator`), for data sets that do not fit.
- 'auto' (the default): 'device' when the packed images fit `data.device_memory_mb` and
  `data.cache` is on, else 'host'; a resumed run keeps the sampler it was trained with (runs saved
  before samplers existed used the host pipeline).
The chosen sampler is recorded in the run's config.
"""

import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon.data import device_sampler
from cnnrecon.data.pipeline import train_iterator
from cnnrecon.errors import CnnreconError

SAMPLERS = ('auto', 'device', 'host')
# The sampler of runs saved before `data.sampler` existed.
LEGACY_SAMPLER = 'host'


def resolve_sampler(config: ml_collections.ConfigDict, saved: dict | None, train_source) -> str:
  """The sampler 'auto' stands for in this run (`config.data.sampler` itself when it is not 'auto').

  Args:
    config: the run's config.
    saved: the config a resumed run was saved with (None for a fresh run).
    train_source: the training images (their shapes decide whether they fit).
  """
  data = config.data
  if data.sampler != 'auto':
    return data.sampler
  if saved is not None:
    return saved.get('data', {}).get('sampler', LEGACY_SAMPLER)
  if not data.cache:
    return 'host'  # the user said the images do not fit in host memory
  size = device_sampler.packed_size(train_source, channels=data.channels, patch_size=data.patch_size)
  return 'device' if size <= data.device_memory_mb * 2**20 else 'host'


class HostBatches:
  """Batches from the grain pipeline, placed on the devices step by step."""

  def __init__(self, config: ml_collections.ConfigDict, train_source, data_parallel, *, local_batch: int):
    data = config.data
    self.iterator = train_iterator(train_source, seed=config.seed, patch_size=data.patch_size,
                                   channels=data.channels, batch_size=local_batch, augment=data.augment,
                                   num_threads=data.num_threads, cache=data.cache, gray=data.gray,
                                   workers=data.workers)
    self.data_parallel = data_parallel

  @property
  def checkpointed(self) -> Any:
    """The grain iterator, whose position orbax saves with each checkpoint."""
    return self.iterator

  def next(self) -> dict[str, jax.Array]:
    """The next batch, split over this process's devices."""
    return self.data_parallel.put_batch(next(self.iterator))


class DeviceBatches:
  """Batches drawn on the devices from the packed training images (`data.device_sampler`).

  With `shard_map`, one jitted program draws the global batch of step n (stream positions
  n * B .. n * B + B - 1) straight into the batch's sharding, each device its own rows; with
  `pmap`, each process draws its rows of the same global batch, split over its local devices
  (the images replicated on each).
  """

  def __init__(self, config: ml_collections.ConfigDict, train_source, data_parallel):
    data = config.data
    packed = device_sampler.pack_images(train_source, channels=data.channels, patch_size=data.patch_size,
                                        gray=data.gray)
    self.nbytes = packed.nbytes
    arrays = (packed.pixels, packed.starts, packed.heights, packed.widths)
    sample = functools.partial(device_sampler.sample_patches, seed=config.seed, patch_size=data.patch_size,
                               channels=data.channels, augment=data.augment)
    global_batch = data.batch_size
    if data_parallel.strategy == 'shard_map':
      self.arrays = data_parallel.put_for_jit(arrays)
      self._sample = jax.jit(lambda arrays, step: sample(*arrays, step * global_batch + jnp.arange(global_batch)),
                             out_shardings=data_parallel.batch_sharding)
    else:
      rows = global_batch // jax.process_count()
      first, devices = jax.process_index() * rows, jax.local_device_count()

      def local_rows(arrays, step):
        batch = sample(*arrays, step * global_batch + first + jnp.arange(rows))
        return jax.tree.map(lambda x: x.reshape((devices, -1) + x.shape[1:]), batch)

      # pmap takes a batch split over the local devices along its first axis, as a NamedSharding.
      local_devices = jax.sharding.Mesh(np.asarray(jax.local_devices()), ('data',))
      self.arrays = jax.device_put(arrays, jax.sharding.NamedSharding(local_devices, jax.sharding.PartitionSpec()))
      self._sample = jax.jit(local_rows, out_shardings=jax.sharding.NamedSharding(
          local_devices, jax.sharding.PartitionSpec('data')))
    self.step = 0

  @property
  def checkpointed(self) -> 'DeviceBatches':
    """Itself: grain's orbax handler saves `get_state()` with each checkpoint, as for a grain iterator."""
    return self

  def get_state(self) -> bytes:
    """The stream position (the next batch's step), as grain's checkpoint handler stores it."""
    return json.dumps({'sampler': 'device', 'next_step': self.step}).encode()

  def set_state(self, state: bytes) -> None:
    """Continues the stream where a checkpoint left it."""
    saved = json.loads(state)
    if saved.get('sampler') != 'device':
      raise CnnreconError(f'this checkpoint holds a host pipeline position ({sorted(saved)}), not the device '
                          "sampler's: resume with --config.data.sampler=host")
    self.step = int(saved['next_step'])

  def start_prefetch(self) -> None:
    """Nothing to start (grain's handler calls it after `set_state`)."""

  def next(self) -> dict[str, jax.Array]:
    """The batch of the next step, already on the devices."""
    batch = self._sample(self.arrays, np.int32(self.step))  # a host value: the same in every process
    self.step += 1
    return batch


def make_batches(sampler: str, config: ml_collections.ConfigDict, train_source, data_parallel, *,
                 local_batch: int) -> HostBatches | DeviceBatches:
  """The batch source of a resolved `sampler` ('device' or 'host')."""
  if sampler == 'device':
    return DeviceBatches(config, train_source, data_parallel)
  return HostBatches(config, train_source, data_parallel, local_batch=local_batch)
