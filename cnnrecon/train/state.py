"""Train state and optimizer construction."""

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.registry import Registry


class TrainState(train_state.TrainState):
  """Flax TrainState plus BatchNorm statistics, the root PRNG key and frozen variables.

  `rng` holds raw key data (uint32) rather than a typed key so that orbax can
  checkpoint it like any other array; steps wrap it with
  `jax.random.wrap_key_data`. `frozen` holds variables the loss needs but
  the optimizer never touches (e.g. a loss network's weights); checkpoints
  leave it out (`train/checkpoint.py`) and the task supplies it again.
  """

  batch_stats: Any = None
  rng: jax.Array = None
  frozen: Any = None


OPTIMIZERS: Registry = Registry('optim.name')
SCHEDULES: Registry = Registry('optim.schedule')


@SCHEDULES.register('cosine')
def cosine_schedule(*, learning_rate: float, warmup: int, total_steps: int,
                    end_lr_factor: float = 0.01) -> optax.Schedule:
  """Linear warmup to `learning_rate`, then cosine decay to `learning_rate * end_lr_factor`."""
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup else learning_rate, peak_value=learning_rate, warmup_steps=warmup,
      decay_steps=max(total_steps, warmup + 1), end_value=learning_rate * end_lr_factor)


@SCHEDULES.register('step')
def step_schedule(*, learning_rate: float, warmup: int, total_steps: int, boundaries=(0.6,),
                  factor: float = 0.1) -> optax.Schedule:
  """Linear warmup, then the rate times `factor` at each fraction `boundaries` of the run.

  DnCNN's recipe: 1e-3, then 1e-4 after 30 of 50 epochs (boundaries (0.6,), factor 0.1).
  """
  if any(not 0 < fraction < 1 for fraction in boundaries):
    raise CnnreconError(f'optim.step.boundaries={tuple(boundaries)} must be fractions '
                        'of train.steps in (0, 1), e.g. --config.optim.step.boundaries="(0.6,)"')
  # join_schedules hands the second schedule `step - warmup`, so the drops are shifted back by the
  # warmup to land at the fractions of the whole run.
  drops = {int(fraction * total_steps) - warmup: factor for fraction in boundaries}
  steps = optax.piecewise_constant_schedule(learning_rate, drops)
  if not warmup:
    return steps
  return optax.join_schedules([optax.linear_schedule(0.0, learning_rate, warmup), steps], [warmup])


OPTIMIZERS.register('adam')(optax.adam)
OPTIMIZERS.register('adamw')(optax.adamw)


def make_schedule(optim_config: ml_collections.ConfigDict, total_steps: int) -> optax.Schedule:
  """Linear warmup, then the schedule `optim.schedule` names (options in `optim.<schedule>`).

  Args:
    optim_config: `config.optim`.
    total_steps: `config.train.steps`.

  Returns:
    The learning-rate schedule.
  """
  warmup = min(optim_config.warmup_steps, max(total_steps - 1, 0))
  name = optim_config.schedule
  return SCHEDULES.build(name, optim_config.get(name), learning_rate=optim_config.learning_rate,
                         warmup=warmup, total_steps=total_steps)


def make_optimizer(optim_config: ml_collections.ConfigDict, total_steps: int, *,
                   skip_nonfinite: bool = False) -> optax.GradientTransformation:
  """The optimizer `optim.name` names (options in `optim.<name>`), with global-norm clipping.

  Args:
    optim_config: `config.optim` (name, learning_rate, warmup_steps, schedule,
      grad_clip, and the chosen optimizer's and schedule's sub-dicts).
    total_steps: length of the schedule (`config.train.steps`).
    skip_nonfinite: drop updates whose gradients are not finite
      (`optax.apply_if_finite`; the training loop stops after 10 in a row).

  Returns:
    The optax transformation.
  """
  if optim_config.learning_rate <= 0:
    raise CnnreconError(f'optim.learning_rate={optim_config.learning_rate} must be > 0: '
                        'set e.g. --config.optim.learning_rate=1e-3')
  schedule = make_schedule(optim_config, total_steps)
  optimizer = OPTIMIZERS.build(optim_config.name, optim_config.get(optim_config.name), learning_rate=schedule)
  if optim_config.grad_clip > 0:
    optimizer = optax.chain(optax.clip_by_global_norm(optim_config.grad_clip), optimizer)
  if skip_nonfinite:
    # The loop, not optax, decides when to give up, so optax never lets a non-finite update through.
    optimizer = optax.apply_if_finite(optimizer, max_consecutive_errors=2**30)
  return optimizer


def create_train_state(model: flax.linen.Module, optimizer: optax.GradientTransformation, *,
                       seed: int, sample_shape: tuple[int, ...], frozen: Any = None,
                       sample_input: Any = None) -> TrainState:
  """Initializes params and BatchNorm statistics from `seed`.

  Args:
    model: the flax module.
    optimizer: from `make_optimizer`.
    seed: `config.seed`; the only source of randomness.
    sample_shape: NHWC shape of one input batch (used for shapes only).
    frozen: variables the optimizer must not touch (`task.init_frozen()`).
    sample_input: what to initialise on instead of zeros of `sample_shape`, for
      models whose input is not an image (`task.sample_model_input`).

  Returns:
    A TrainState at step 0.
  """
  init_key, root_key = jax.random.split(jax.random.key(seed))
  # Jitted: run op by op, the orthogonal init of a 17-layer net takes seconds on CPU.
  init = compiler.jit_run_once(functools.partial(model.init, train=False))
  if sample_input is None:
    sample_input = jnp.zeros(sample_shape, jnp.float32)
  variables = init(init_key, sample_input)
  return TrainState.create(
      apply_fn=model.apply,
      params=variables['params'],
      tx=optimizer,
      batch_stats=variables.get('batch_stats', {}),
      rng=jax.random.key_data(root_key),
      frozen=frozen if frozen is not None else {})
