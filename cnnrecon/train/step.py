"""Pure train and eval steps for any task: `step(state, batch) -> (state, metrics)`.

A batch is `{'target': f32[B, H, W, C], 'example_seed': u32[B]}`: clean
examples from the data pipeline plus one seed per example. The task
(`cnnrecon.tasks`) turns them into model input and target here, on device,
from a key that depends only on the example's own seed and `config.seed`
(through `state.rng`), so an example is observed identically on 1 or N
devices, in 1 or M processes, and after a resume.

`axis_name` is the mesh axis over which the data-parallel wrappers in
`parallel.py` split the batch; the steps average gradients, BatchNorm
statistics (inside the model) and metrics over it. `None` means one device.
"""

import jax
import jax.numpy as jnp
import optax

from cnnrecon import metrics as metrics_lib
from cnnrecon.tasks import Task
from cnnrecon.train.state import TrainState

Batch = dict[str, jax.Array]


def example_keys(state: TrainState, example_seeds: jax.Array) -> jax.Array:
  """One typed PRNG key per example, from the root key and the example's seed."""
  root = jax.random.wrap_key_data(state.rng)
  return jax.vmap(lambda seed: jax.random.fold_in(root, seed))(example_seeds)


def _mean_over(value: jax.Array, axis_name: str | None) -> jax.Array:
  return value if axis_name is None else jax.lax.pmean(value, axis_name)


def _model_variables(state: TrainState, params=None) -> dict:
  return {'params': state.params if params is None else params, 'batch_stats': state.batch_stats}


def train_step(state: TrainState, batch: Batch, *, task: Task,
               axis_name: str | None = None,
               skip_nonfinite: bool = False) -> tuple[TrainState, dict[str, jax.Array]]:
  """One optimizer step on a (per-device) batch.

  Args:
    state: the train state (replicated across devices).
    batch: this device's share of the global batch.
    task: from `cnnrecon.tasks.build_task`; makes model input and target and
      computes the loss.
    axis_name: data-parallel mesh axis, or None on one device.
    skip_nonfinite: keep the old BatchNorm statistics when the loss or the
      gradient norm is not finite (`train.on_nonfinite='skip_step'`; the
      optimizer itself is wrapped in `optax.apply_if_finite`).

  Returns:
    The new state and `{'loss', 'psnr', 'grad_norm'}` averaged over the global
    batch (`grad_norm` of the averaged gradient, before clipping).
  """
  example = task.prepare(example_keys(state, batch['example_seed']), batch['target'], state.frozen)

  def compute_loss(params):
    outputs, updates = state.apply_fn(_model_variables(state, params), example['model_input'],
                                      train=True, mutable=['batch_stats'])
    return task.compute_loss(outputs, example, state.frozen), (outputs, updates)

  (loss, (outputs, updates)), grads = jax.value_and_grad(compute_loss, has_aux=True)(state.params)
  grads = _mean_over(grads, axis_name)
  loss, grad_norm = _mean_over(loss, axis_name), optax.tree.norm(grads)
  batch_stats = updates.get('batch_stats', {})
  if skip_nonfinite:
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    batch_stats = jax.tree.map(lambda new, old: jnp.where(finite, new, old), batch_stats, state.batch_stats)
  state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  psnr = jnp.mean(metrics_lib.psnr(jnp.clip(outputs, 0.0, 1.0), example['target']))
  return state, {'loss': loss, 'psnr': _mean_over(psnr, axis_name), 'grad_norm': grad_norm}


def eval_step(state: TrainState, batch: Batch, *, task: Task,
              axis_name: str | None = None) -> tuple[dict[str, jax.Array], dict[str, jax.Array]]:
  """Evaluates the model (BatchNorm in inference mode) on a (per-device) batch.

  Returns:
    `{'loss', **task.eval_metrics}` averaged over the global batch (e.g.
    `psnr` and `initial_estimate_psnr`, which scores the model input, the
    estimate without a model), and the `{'model_input', 'estimate'}` images
    (for image grids: both have the target's shape, whatever the shape of the
    observation; `model_input` is the task's estimate without a model).
  """
  example = task.prepare(example_keys(state, batch['example_seed']), batch['target'], state.frozen)
  outputs = state.apply_fn(_model_variables(state), example['model_input'], train=False)
  results = {'loss': task.compute_loss(outputs, example, state.frozen), **task.eval_metrics(outputs, example)}
  metrics = {name: _mean_over(value, axis_name) for name, value in results.items()}
  return metrics, {'model_input': task.no_model_estimate(example), 'estimate': jnp.clip(outputs, 0.0, 1.0)}
