"""Degradations chosen by config: validation and a batched, per-example op."""

from typing import Callable

import jax
import ml_collections

from cnnrecon.errors import CnnreconError
from cnnrecon.ops import masks
from cnnrecon.ops import noise

Degradation = Callable[[jax.Array, jax.Array], jax.Array]

DEGRADATIONS = ('gaussian', 'poisson', 'inpaint')


def _number(cfg: ml_collections.ConfigDict, field: str, example: str) -> float:
  value = cfg.get(field)
  if isinstance(value, bool) or not isinstance(value, (int, float)):
    raise CnnreconError(
        f'degradation.{field}={value!r} is not a number; '
        f'set --config.degradation.{field}={example}.')
  return float(value)


def validate_degradation(cfg: ml_collections.ConfigDict) -> None:
  """Checks a degradation config, so a CLI can fail before any compile.

  Only the fields the chosen degradation uses are checked.

  Args:
    cfg: the `degradation` section of an experiment config: `name` in
      DEGRADATIONS, and `sigma` (gaussian, 0-255 scale, >= 0), `peak`
      (poisson, > 0) or `keep_prob` (inpaint, in (0, 1]).

  Raises:
    CnnreconError: unknown name or an out-of-range value.
  """
  name = cfg.get('name')
  if name not in DEGRADATIONS:
    raise CnnreconError(
        f'unknown degradation.name={name!r}; known degradations: '
        f'{", ".join(DEGRADATIONS)}. Set --config.degradation.name to one.')
  if name == 'gaussian':
    sigma = _number(cfg, 'sigma', '25')
    if sigma < 0:
      raise CnnreconError(
          f'degradation.sigma={cfg.sigma} is negative: noise level must be '
          '>= 0 on the 0-255 scale; set --config.degradation.sigma=25.')
  elif name == 'poisson':
    if _number(cfg, 'peak', '30') <= 0:
      raise CnnreconError(
          f'degradation.peak={cfg.peak} must be > 0 (photons at white; lower '
          'is noisier); set --config.degradation.peak=30.')
  elif not 0 < _number(cfg, 'keep_prob', '0.5') <= 1:
    raise CnnreconError(
        f'degradation.keep_prob={cfg.keep_prob} must be in (0, 1] (fraction '
        'of pixels kept); set --config.degradation.keep_prob=0.5.')


def _per_example_op(cfg: ml_collections.ConfigDict) -> Degradation:
  """Returns `op(key, image)` for one HWC image."""
  if cfg.name == 'gaussian':
    sigma = float(cfg.sigma)
    return lambda key, image: noise.add_gaussian_noise(key, image, sigma=sigma)
  if cfg.name == 'poisson':
    peak = float(cfg.peak)
    return lambda key, image: noise.add_poisson_noise(key, image, peak=peak)
  keep_prob = float(cfg.keep_prob)

  def inpaint(key, image):
    mask = masks.random_pixel_mask(
        key, image.shape[:-1] + (1,), keep_prob=keep_prob)
    return masks.apply_pixel_mask(image, mask)
  return inpaint


def make_degradation(cfg: ml_collections.ConfigDict) -> Degradation:
  """Builds the batched degradation a config names.

  The per-example op is vmapped over one key per example, so an example's
  result depends only on its own key, never on the batch it is in: training
  is then identical across device counts and batch splits.

  Args:
    cfg: the `degradation` section of a config (see `validate_degradation`).

  Returns:
    `degrade(keys, images) -> observed`, with typed keys [B] and images
    [B, H, W, C]; the observation has the images' shape and dtype.

  Raises:
    CnnreconError: if the config is invalid.
  """
  validate_degradation(cfg)
  return jax.vmap(_per_example_op(cfg))
