"""Train state and optimizer construction."""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from cnnrecon.errors import CnnreconError


class TrainState(train_state.TrainState):
  """Flax TrainState plus BatchNorm statistics and the root PRNG key.

  `rng` holds raw key data (uint32) rather than a typed key so that orbax can
  checkpoint it like any other array; steps wrap it with
  `jax.random.wrap_key_data`.
  """

  batch_stats: Any = None
  rng: jax.Array = None


def make_schedule(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warmup, then cosine decay or step drops (`optim.schedule`).

  Args:
    optim_config: `config.optim`.
    total_steps: `config.train.steps`.

  Returns:
    The learning-rate schedule.
  """
  rate = optim_config.learning_rate
  warmup = min(optim_config.warmup_steps, max(total_steps - 1, 0))
  if optim_config.schedule == 'cosine':
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0 if warmup else rate, peak_value=rate, warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1), end_value=rate * optim_config.end_lr_factor)
  if optim_config.schedule != 'step':
    raise CnnreconError(f'unknown optim.schedule {optim_config.schedule!r}: use cosine or step')
  if any(not 0 < fraction < 1 for fraction in optim_config.step_boundaries):
    raise CnnreconError(f'optim.step_boundaries={tuple(optim_config.step_boundaries)} must be fractions '
                        'of train.steps in (0, 1), e.g. --config.optim.step_boundaries="(0.6,)"')
  drops = {int(fraction * total_steps): optim_config.step_factor for fraction in optim_config.step_boundaries}
  steps = optax.piecewise_constant_schedule(rate, drops)
  if not warmup:
    return steps
  return optax.join_schedules([optax.linear_schedule(0.0, rate, warmup), steps], [warmup])


def make_optimizer(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.GradientTransformation:
  """Adam/AdamW with linear warmup, cosine decay and global-norm clipping.

  Args:
    optim_config: `config.optim` (name, learning_rate, weight_decay,
      warmup_steps, end_lr_factor, grad_clip).
    total_steps: length of the schedule (`config.train.steps`).

  Returns:
    The optax transformation.
  """
  if optim_config.learning_rate <= 0:
    raise CnnreconError(f'optim.learning_rate={optim_config.learning_rate} must be > 0: '
                        'set e.g. --config.optim.learning_rate=1e-3')
  schedule = make_schedule(optim_config, total_steps)
  if optim_config.name == 'adam':
    optimizer = optax.adam(schedule)
  elif optim_config.name == 'adamw':
    optimizer = optax.adamw(schedule, weight_decay=optim_config.weight_decay)
  else:
    raise CnnreconError(f'unknown optim.name {optim_config.name!r}: use adam or adamw')
  if optim_config.grad_clip > 0:
    optimizer = optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), optimizer)
  return optimizer


def create_train_state(model: flax.linen.Module, optimizer: optax.GradientTransformation, *,
                       seed: int, sample_shape: tuple[int, ...]) -> TrainState:
  """Initializes params and BatchNorm statistics from `seed`.

  Args:
    model: the flax module.
    optimizer: from `make_optimizer`.
    seed: `config.seed`; the only source of randomness.
    sample_shape: NHWC shape of one input batch (used for shapes only).

  Returns:
    A TrainState at step 0.
  """
  init_key, root_key = jax.random.split(jax.random.key(seed))
  # Jitted: run op by op, the orthogonal init of a 17-layer net takes seconds on CPU.
  init = jax.jit(functools.partial(model.init, train=False))
  variables = init(init_key, jnp.zeros(sample_shape, jnp.float32))
  return TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=optimizer,
      batch_stats=variables.get('batch_stats', {}),
      rng=jax.random.key_data(root_key))
