"""A mixture of degradations, one drawn per example: DnCNN-3's blind denoising, SR and JPEG task.

Zhang et al. 2017 ("Beyond a Gaussian Denoiser", DnCNN-3) train one network on
three degradations at once: Gaussian noise at any sigma in [0, 55], bicubic
down-and-up-sampling by 2, 3 or 4, and JPEG at any quality in [5, 99]. Every
observation has the clean image's size (the SR input is the bicubic upsampling
of the low-resolution image), so the initial estimate is the identity.

Each example draws its degradation and level from its own key only, so its
observation does not depend on the batch. The degradations are the branches of
a `jax.lax.switch`: under `vmap` (a batch) every branch is computed and the drawn
one selected, so the levels are traced values: the JPEG host callback
(`jpeg_compress_traced`) takes the quality as an array, and the SR branch picks
its scale's down-up matrices (`down_up_matrices`) by index.
"""

import dataclasses
import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.ops.base import IdentityEstimate
from cnnrecon.ops.jpeg import jpeg_compress_traced
from cnnrecon.ops.noise import add_gaussian_noise
from cnnrecon.ops.resize import SR_SCALES, resize_matrix

MIXTURE_TASKS = ('gaussian', 'super_resolve', 'jpeg')
_OPTION = 'task.mixture'


def _is_number(value, kind=numbers.Real) -> bool:
  return isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)


def _check_range(value, *, name: str, low: float, high: float, integer: bool, example: str) -> tuple:
  """(lo, hi) with low <= lo <= hi <= high, or one line naming the option and a fix."""
  kind = numbers.Integral if integer else numbers.Real
  pair = tuple(value) if isinstance(value, (tuple, list)) else (value,)
  if len(pair) != 2 or not all(_is_number(v, kind) for v in pair) or not low <= pair[0] <= pair[1] <= high:
    what = 'integers' if integer else 'numbers'
    raise CnnreconError(f'{_OPTION}.{name}={value!r} must be two {what} lo <= hi within [{low:g}, {high:g}]; '
                        f'set e.g. --config.{_OPTION}.{name}="{example}"')
  return tuple(int(v) if integer else float(v) for v in pair)


def _check_tasks(tasks) -> tuple[str, ...]:
  names = (tasks,) if isinstance(tasks, str) else tuple(tasks) if isinstance(tasks, (tuple, list)) else ()
  if not names or len(set(names)) != len(names) or not set(names) <= set(MIXTURE_TASKS):
    raise CnnreconError(f'{_OPTION}.tasks={tasks!r} must name distinct tasks among {", ".join(MIXTURE_TASKS)}; '
                        f'set e.g. --config.{_OPTION}.tasks="{MIXTURE_TASKS}"')
  return names


def _check_scales(scales) -> tuple[int, ...]:
  values = tuple(scales) if isinstance(scales, (tuple, list)) else (scales,)
  if (not values or len(set(values)) != len(values)
      or not all(_is_number(s, numbers.Integral) and s in SR_SCALES for s in values)):
    raise CnnreconError(f'{_OPTION}.scales={scales!r} must be distinct super-resolution scales among '
                        f'{", ".join(map(str, SR_SCALES))}; set e.g. --config.{_OPTION}.scales="(2, 3, 4)"')
  return tuple(int(s) for s in values)


def _pick(uniform: jax.Array, count: int) -> jax.Array:
  """An integer uniform over 0..count-1 from a uniform in [0, 1)."""
  return jnp.minimum(jnp.floor(uniform * count).astype(jnp.int32), count - 1)


def down_up_matrices(side: int, scales: tuple[int, ...]) -> np.ndarray:
  """MATLAB-bicubic downsampling by s then upsampling by s along one axis, as one [side, side] matrix per scale.

  Resizing is linear and separable, so DnCNN-3's SR input `imresize(imresize(x, 1/s), s)` is these
  matrices applied to the rows and the columns; picking one per example by a traced index keeps
  every scale in one branch (the product is taken in float64: within float32 rounding of two resizes).

  Returns:
    [len(scales), side, side] float64.
  """
  return np.stack([resize_matrix(side // s, side, s) @ resize_matrix(side, side // s, 1 / s) for s in scales])


def _down_up(clean: jax.Array, scale_index: jax.Array, scales: tuple[int, ...]) -> jax.Array:
  rows = jnp.asarray(down_up_matrices(clean.shape[-3], scales), clean.dtype)[scale_index]
  columns = jnp.asarray(down_up_matrices(clean.shape[-2], scales), clean.dtype)[scale_index]
  # HIGHEST: GPUs (TF32) and TPUs (bfloat16) would otherwise round the weights, as in `imresize`.
  resized = jnp.einsum('oh,hwc->owc', rows, clean, precision=jax.lax.Precision.HIGHEST)
  return jnp.einsum('ow,hwc->hoc', columns, resized, precision=jax.lax.Precision.HIGHEST)


@dataclasses.dataclass(frozen=True)
class DegradationMixture(IdentityEstimate):
  """One of Gaussian noise, bicubic down-and-up-sampling and JPEG per example, each equally likely.

  Attributes:
    tasks: the degradations in the mix, among 'gaussian', 'super_resolve', 'jpeg'.
    sigma_range: Gaussian noise sigma ~ U[lo, hi] (0-255 scale).
    scales: bicubic scale, uniform over these (2, 3, 4); clean sides must be multiples of each.
    quality_range: JPEG quality, an integer uniform over lo..hi (1..100).
  """

  tasks: tuple[str, ...] = MIXTURE_TASKS
  sigma_range: tuple[float, float] = (0.0, 55.0)
  scales: tuple[int, ...] = SR_SCALES
  quality_range: tuple[int, int] = (5, 99)

  def __post_init__(self):
    # Options from a config's JSON arrive as lists: store checked tuples (hashable, as jit needs).
    checked = {'tasks': _check_tasks(self.tasks),
               'sigma_range': _check_range(self.sigma_range, name='sigma_range', low=0, high=math.inf,
                                           integer=False, example='(0, 55)'),
               'scales': _check_scales(self.scales),
               'quality_range': _check_range(self.quality_range, name='quality_range', low=1, high=100,
                                             integer=True, example='(5, 99)')}
    for name, value in checked.items():
      object.__setattr__(self, name, value)

  @property
  def side_multiple(self) -> int:
    """Clean image sides must be multiples of this: the lcm of the scales in the mix (1 without SR)."""
    return math.lcm(*self.scales) if 'super_resolve' in self.tasks else 1

  def draw(self, key: jax.Array) -> dict[str, jax.Array]:
    """One example's degradation, drawn from its key: what `apply(key, ...)` does to it.

    Returns:
      `{'task'}`: index into `tasks`; `{'sigma', 'scale', 'quality'}`: the levels and
      `{'noise_key'}`: the key of the Gaussian noise (all drawn whichever task is chosen,
      so that no draw depends on another).
    """
    draw_key, noise_key = jax.random.split(key)
    # One uniform draw for the four choices: each random op is a threefry kernel XLA compiles anew.
    task_u, sigma_u, scale_u, quality_u = jax.random.uniform(draw_key, (4,))
    (sigma_lo, sigma_hi), (quality_lo, quality_hi) = self.sigma_range, self.quality_range
    return {'task': _pick(task_u, len(self.tasks)),
            'sigma': sigma_lo + sigma_u * (sigma_hi - sigma_lo),
            'scale': jnp.asarray(self.scales)[_pick(scale_u, len(self.scales))],
            'quality': quality_lo + _pick(quality_u, quality_hi - quality_lo + 1),
            'noise_key': noise_key}

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """The observation of one clean HWC image: the degradation `draw(key)` chose, the clean image's size."""
    self.check_sides(clean.shape[-3], clean.shape[-2])
    return _degrade(self, key, clean)

  def _apply_unchecked(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """`apply` without the size check, traced once per operator and image shape (`_degrade`)."""
    drawn = self.draw(key)
    drawn['scale_index'] = jnp.argmax(jnp.asarray(self.scales) == drawn['scale'])
    operations = {'gaussian': lambda x, d: add_gaussian_noise(d['noise_key'], x, sigma=d['sigma']),
                  'super_resolve': lambda x, d: _down_up(x, d['scale_index'], self.scales),
                  'jpeg': lambda x, d: jpeg_compress_traced(x, d['quality'])}
    return jax.lax.switch(drawn['task'], [operations[task] for task in self.tasks], clean.astype(jnp.float32),
                          drawn)

  def check_sides(self, height: int, width: int) -> None:
    """One line when an image's sides are not multiples of every scale in the mix."""
    multiple = self.side_multiple
    if height % multiple or width % multiple:
      raise CnnreconError(f'a {height}x{width} image is not a multiple of {multiple} (the lcm of the mixture\'s '
                          f'scales {self.scales}): crop it to a multiple (cnnrecon.ops.resize.modcrop) or use '
                          f'patch sizes that are multiples of {multiple}')

  def describe(self) -> str:
    """The mix in words, e.g. 'one of AWGN sigma~U[0, 55]/255 | bicubic down-up x2/x3/x4 | JPEG q~U{5..99} (...)'."""
    parts = {'gaussian': 'AWGN sigma~U[{:g}, {:g}]/255'.format(*self.sigma_range),
             'super_resolve': 'bicubic down-up x' + '/x'.join(map(str, self.scales)),
             'jpeg': 'JPEG q~U{{{}..{}}}'.format(*self.quality_range)}
    return 'one of ' + ' | '.join(parts[task] for task in self.tasks) + ' (equally likely)'



# Jitted so that eager callers (tables score one image at a time) compile one program per image
# shape instead of one per operation; inside a jitted step it is inlined.
@functools.partial(jax.jit, static_argnums=0)
def _degrade(operator: DegradationMixture, key: jax.Array, clean: jax.Array) -> jax.Array:
  return operator._apply_unchecked(key, clean)
