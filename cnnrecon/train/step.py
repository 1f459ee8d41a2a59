"""Pure train and eval steps: `step(state, batch) -> (state, metrics)`.

A batch is `{'target': f32[B, H, W, C], 'noise_seed': u32[B]}`: clean patches
from the data pipeline plus one seed per example. The degradation is applied
here, on device, from a key that depends only on the example's own seed and
`config.seed` (through `state.rng`), so an example is degraded identically on
1 or N devices, in 1 or M processes, and after a resume.

`axis_name` is the mesh axis over which the data-parallel wrappers in
`parallel.py` split the batch; the steps average gradients, BatchNorm
statistics (inside the model) and metrics over it. `None` means one device.
"""

from typing import Callable

import jax
import jax.numpy as jnp

from cnnrecon import metrics as metrics_lib
from cnnrecon.train.state import TrainState

Batch = dict[str, jax.Array]
Degradation = Callable[[jax.Array, jax.Array], jax.Array]
Loss = Callable[[jax.Array, jax.Array], jax.Array]


def example_keys(state: TrainState, noise_seeds: jax.Array) -> jax.Array:
  """One typed PRNG key per example, from the root key and the example's seed."""
  root = jax.random.wrap_key_data(state.rng)
  return jax.vmap(lambda seed: jax.random.fold_in(root, seed))(noise_seeds)


def _mean_over(value: jax.Array, axis_name: str | None) -> jax.Array:
  return value if axis_name is None else jax.lax.pmean(value, axis_name)


def train_step(state: TrainState, batch: Batch, *, degrade: Degradation, loss_fn: Loss,
               axis_name: str | None = None) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a (per-device) batch.

  Args:
    state: the train state (replicated across devices).
    batch: this device's share of the global batch.
    degrade: `ops.degrade.make_degradation(config.degradation)`.
    loss_fn: e.g. `losses.mse`.
    axis_name: data-parallel mesh axis, or None on one device.

  Returns:
    The new state and `{'loss', 'psnr'}` averaged over the global batch.
  """
  targets = batch['target']
  observed = degrade(example_keys(state, batch['noise_seed']), targets)

  def compute_loss(params):
    outputs, updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, observed,
        train=True, mutable=['batch_stats'])
    return loss_fn(outputs, targets), (outputs, updates)

  (loss, (outputs, updates)), grads = jax.value_and_grad(compute_loss, has_aux=True)(state.params)
  grads = _mean_over(grads, axis_name)
  state = state.apply_gradients(grads=grads, batch_stats=updates.get('batch_stats', {}))
  psnr = jnp.mean(metrics_lib.psnr(jnp.clip(outputs, 0.0, 1.0), targets))
  return state, {'loss': _mean_over(loss, axis_name), 'psnr': _mean_over(psnr, axis_name)}


def eval_step(state: TrainState, batch: Batch, *, degrade: Degradation, loss_fn: Loss,
              axis_name: str | None = None) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """Evaluates the model (BatchNorm in inference mode) on a (per-device) batch.

  Returns:
    `{'loss', 'psnr', 'noisy_psnr'}` averaged over the global batch, and the
    `{'observed', 'estimate'}` images (for image grids).
  """
  targets = batch['target']
  observed = degrade(example_keys(state, batch['noise_seed']), targets)
  outputs = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                           observed, train=False)
  results = {
      'loss': loss_fn(outputs, targets),
      'psnr': jnp.mean(metrics_lib.psnr(jnp.clip(outputs, 0.0, 1.0), targets)),
      'noisy_psnr': jnp.mean(metrics_lib.psnr(observed, targets)),
  }
  metrics = {name: _mean_over(value, axis_name) for name, value in results.items()}
  return metrics, {'observed': observed, 'estimate': jnp.clip(outputs, 0.0, 1.0)}


def predict(state: TrainState, observed: jax.Array) -> jax.Array:
  """Applies the model in inference mode to degraded images (NHWC)."""
  return state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats},
                        observed, train=False)
