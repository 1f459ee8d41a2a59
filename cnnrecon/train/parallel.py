"""Data parallelism over every device of every process.

Two interchangeable wrappers run the same per-device step from `step.py`:
- `shard_map` (default): `jax.jit` of `jax.shard_map` over a 1-D `data` mesh;
  the state is replicated (`P()`), the batch split along its first axis.
- `pmap`: `jax.pmap` over local devices with the state replicated along a
  leading device axis, for users who prefer it.
Both average gradients, BatchNorm statistics and metrics with `pmean` over
`data`, so results match a single device on the same global batch.
"""

import functools
import os
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.registry import Registry

AXIS = 'data'


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
  """Joins a multi-process run (no-op for a single process).

  Args default to `jax.distributed.initialize`'s own discovery (cluster
  environment variables, or JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES /
  JAX_PROCESS_ID). On CPU the cross-process collectives use gloo.
  """
  address = coordinator_address or os.environ.get('JAX_COORDINATOR_ADDRESS')
  count = num_processes or int(os.environ.get('JAX_NUM_PROCESSES', '0') or 0)
  if not address and not count:
    return
  pid = process_id if process_id is not None else int(os.environ.get('JAX_PROCESS_ID', '0'))
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  jax.distributed.initialize(coordinator_address=address, num_processes=count or None, process_id=pid)


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh named `data` over all devices of all processes."""
  return jax.sharding.Mesh(np.asarray(jax.devices()), (AXIS,))


def per_process_batch_size(global_batch: int) -> int:
  """Returns this process's batch size, or explains why `global_batch` cannot be split."""
  devices = jax.device_count()
  if global_batch % devices:
    raise CnnreconError(f'data.batch_size={global_batch} is not divisible by the {devices} devices: '
                        f'set --config.data.batch_size to a multiple of {devices}')
  return global_batch // jax.process_count()


STRATEGIES: Registry = Registry('parallel')


class _DataParallel:
  """What both strategies share: the mesh and host<->device moves of plain (unmapped) values."""

  strategy = ''

  def __init__(self):
    self.mesh = make_mesh()
    self._replicated = NamedSharding(self.mesh, P())
    self._split = NamedSharding(self.mesh, P(AXIS))

  @property
  def batch_sharding(self) -> NamedSharding:
    """How `shard_map`'s train step takes a global batch: split along its first axis over `data`."""
    return self._split

  def put_for_jit(self, tree: Any) -> Any:
    """Places host values where plain `jax.jit` code (eval, single_copy states) can use them."""
    return jax.tree.map(
        lambda leaf: jax.make_array_from_callback(np.shape(leaf), self._replicated,
                                                  lambda index: np.asarray(leaf)[index]),
        jax.device_get(tree))

  def host_state(self, state: Any) -> Any:
    """The replicated state as one host copy (e.g. for checkpoints and export)."""
    return jax.device_get(self.single_copy(state))


@STRATEGIES.register('shard_map')
class ShardMapParallel(_DataParallel):
  """`jax.jit` of `jax.shard_map` over the 1-D `data` mesh: state replicated, batch split."""

  strategy = 'shard_map'

  def compile_train_step(self, step_fn: Callable, *, cpu_conv: str = 'eigen', **static) -> Callable:
    """Wraps `step_fn(state, batch, axis_name=...)`; the state argument is donated.

    `cpu_conv` is `config.compile.cpu_conv` (see `cnnrecon.compiler`).
    """
    per_device = functools.partial(step_fn, axis_name=AXIS, **static)
    # check_vma=False: with jax's varying-axes checks on, the gradient of a replicated param is
    # already summed over `data` when it leaves jax.grad, so the step's own pmean left it
    # `device_count` times too large (pmap and one device were right); tests/test_parallel.py
    # compares the gradient of one step on 4 devices with one device.
    mapped = jax.shard_map(per_device, mesh=self.mesh, in_specs=(P(), P(AXIS)), out_specs=(P(), P()),
                           check_vma=False)
    return compiler.jit(mapped, cpu_conv=cpu_conv, donate_argnums=0)

  def single_copy(self, state: Any) -> Any:
    """A view of the replicated state usable by plain `jax.jit` code (no host copy)."""
    return state

  def put_state(self, state: Any) -> Any:
    """Replicates a host state onto every device (same values in every process)."""
    return self.put_for_jit(state)

  def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Places this process's batch: split over local devices, forming the global batch."""
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(self._split, x), local_batch)

  def for_checkpoint(self, state: Any) -> Any:
    """The state as orbax saves it (the replicated device arrays themselves)."""
    return state

  def get_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Fetches (already averaged) metrics to the host as floats."""
    return {name: float(value) for name, value in jax.device_get(metrics).items()}


@STRATEGIES.register('pmap')
class PmapParallel(_DataParallel):
  """`jax.pmap` over local devices, the state stacked along a leading device axis."""

  strategy = 'pmap'

  def compile_train_step(self, step_fn: Callable, *, cpu_conv: str = 'eigen', **static) -> Callable:
    """Wraps `step_fn(state, batch, axis_name=...)`; the state argument is donated."""
    per_device = functools.partial(step_fn, axis_name=AXIS, **static)
    return compiler.pmap(per_device, cpu_conv=cpu_conv, axis_name=AXIS, donate_argnums=0)

  def put_for_jit(self, tree: Any) -> Any:
    """Places host values on the first local device, where `single_copy` puts the state."""
    return jax.device_put(tree, jax.local_devices()[0])

  def single_copy(self, state: Any) -> Any:
    """The first device's copy of the stacked state, for plain `jax.jit` code."""
    return jax.device_put(jax.tree.map(lambda leaf: leaf[0], state), jax.local_devices()[0])

  def put_state(self, state: Any) -> Any:
    """Stacks a host state once per local device."""
    count = jax.local_device_count()
    return jax.tree.map(lambda leaf: np.stack([np.asarray(leaf)] * count), jax.device_get(state))

  def put_batch(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Reshapes this process's batch to [local devices, per-device batch, ...]."""
    count = jax.local_device_count()
    return jax.tree.map(lambda x: x.reshape((count, -1) + x.shape[1:]), local_batch)

  def for_checkpoint(self, state: Any) -> Any:
    """One host copy: orbax cannot save pmap's stacked arrays as the replicated state."""
    return self.host_state(state)

  def get_metrics(self, metrics: dict[str, jax.Array]) -> dict[str, float]:
    """Fetches the first device's (already averaged) metrics as floats."""
    return {name: float(value[0]) for name, value in jax.device_get(metrics).items()}


def make_data_parallel(strategy: str) -> ShardMapParallel | PmapParallel:
  """The data-parallel wrapper `config.parallel` names ('shard_map' or 'pmap')."""
  return STRATEGIES.build(strategy)
