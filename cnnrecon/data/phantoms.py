"""CT phantoms as a data source: random-ellipse phantoms drawn on the fly, and the Shepp-Logan phantom.

Spec grammar (`cnnrecon.data.sources.load_source`):
  `phantoms:ellipses[:SPLIT][:size=N][:count=N][:seed=N]`   random ellipses (splits train|validation|test)
  `phantoms:shepp_logan[:size=N]`                           the one (modified) Shepp-Logan phantom
Defaults: size 128 px, count 10000 for train and 32 for the other splits, seed 0.

Phantom `i` of a split is drawn from `fold_in(fold_in(key(seed), split), i)`: the same spec gives
the same images on every call, machine and process, and the splits never share a phantom. Nothing
is stored: images are drawn when read, a block at a time.
"""

import dataclasses
import functools
import importlib

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.errors import CnnreconError

PREFIX = 'phantoms:'
KINDS = ('ellipses', 'shepp_logan')
SPLITS = ('train', 'validation', 'test')
DEFAULT_SIZE = 128
DEFAULT_COUNTS = {'train': 10_000, 'validation': 32, 'test': 32}
# Phantoms drawn per compiled call: amortises the dispatch, small enough for 512 px images.
_BLOCK = 64
_EXAMPLE = 'e.g. phantoms:ellipses:validation:size=64:count=16'


@dataclasses.dataclass(frozen=True)
class PhantomSpec:
  """A parsed `phantoms:` spec (see the module docstring)."""

  kind: str
  split: str = 'train'
  size: int = DEFAULT_SIZE
  count: int = 1
  seed: int = 0


def _whole_number(spec: str, key: str, text: str, low: int) -> int:
  try:
    value = int(text)
  except ValueError:
    value = None
  if value is None or not low <= value < 2**32:
    raise CnnreconError(f'data source {spec!r}: {key}={text} must be a whole number from {low} to 2**32 - 1 '
                        f'({_EXAMPLE})')
  return value


def parse(spec: str) -> PhantomSpec:
  """Parses `phantoms:KIND[:SPLIT][:key=value...]`.

  Raises:
    CnnreconError: an unknown kind, split or key, or a bad number (one line with an example).
  """
  kind, *parts = spec[len(PREFIX):].split(':')
  if kind not in KINDS:
    raise CnnreconError(f'data source {spec!r}: unknown phantom {kind!r}; use one of {", ".join(KINDS)} '
                        f'({_EXAMPLE})')
  split, options = 'train' if kind == 'ellipses' else 'test', {}
  for part in parts:
    key, sep, value = part.partition('=')
    if not sep and part in SPLITS:
      split = part
    elif sep and key in ('size', 'count', 'seed') and (kind == 'ellipses' or key == 'size'):
      options[key] = _whole_number(spec, key, value, 0 if key == 'seed' else 1)
    else:
      allowed = f'a split ({"|".join(SPLITS)}), size=, count= or seed=' if kind == 'ellipses' else 'size='
      raise CnnreconError(f'data source {spec!r}: cannot read {part!r}; after {kind} give {allowed} ({_EXAMPLE})')
  count = options.pop('count', DEFAULT_COUNTS[split]) if kind == 'ellipses' else 1
  return PhantomSpec(kind, split, count=count, **options)


def _generators():
  """`cnnrecon.ops.phantoms`, imported when a phantom is drawn.

  The drawing code is the CT operator's (`cnnrecon.ops`), a layer right of `cnnrecon.data`, which may
  not import it statically (the `flow` contract in pyproject.toml): like `cnnrecon.tasks.PLUGIN_MODULES`,
  the module is imported by name when first needed.
  """
  return importlib.import_module('cnnrecon.ops.phantoms')


@functools.partial(jax.jit, static_argnames='size')
def _ellipse_block(split_key: jax.Array, indices: np.ndarray, size: int) -> jax.Array:
  """Phantoms `indices` of a split [len(indices), size, size, 1] as uint8 (rounded, as images are stored)."""
  keys = jax.vmap(lambda index: jax.random.fold_in(split_key, index))(indices)
  images = jax.vmap(lambda key: _generators().random_ellipses(key, size))(keys)
  return jnp.round(images * 255.0).astype(jnp.uint8)


class PhantomRecords:
  """Random access to `{'image': uint8 [size, size, 1], 'name': str}`, like the other sources' records."""

  def __init__(self, spec: PhantomSpec, *, description: str):
    self.spec = spec
    self.description = description
    self._split_key = jax.random.fold_in(jax.random.key(spec.seed), SPLITS.index(spec.split))

  def __len__(self) -> int:
    return self.spec.count

  @functools.lru_cache(maxsize=4)
  def _block(self, block: int) -> np.ndarray:
    # Always a whole block (past the end too): one compiled program per image size.
    indices = np.arange(block * _BLOCK, (block + 1) * _BLOCK)
    return np.asarray(_ellipse_block(self._split_key, indices, self.spec.size))

  def __getitem__(self, index: int) -> dict[str, object]:
    index = int(index)
    if not 0 <= index < len(self):
      raise IndexError(f'phantom {index} of {len(self)}')
    if self.spec.kind == 'shepp_logan':
      image = np.round(_generators().shepp_logan(self.spec.size) * 255.0).astype(np.uint8)
      return {'image': image, 'name': 'shepp_logan'}
    return {'image': self._block(index // _BLOCK)[index % _BLOCK], 'name': f'ellipses-{self.spec.split}-{index:05d}'}

  def __repr__(self) -> str:
    return f'PhantomRecords({self.description}, {len(self)} images)'


def describe(spec: PhantomSpec) -> str:
  """e.g. '16 random-ellipse phantoms of 64 px (validation split, seed 0)'."""
  if spec.kind == 'shepp_logan':
    return f'the Shepp-Logan phantom at {spec.size} px'
  return f'{spec.count} random-ellipse phantoms of {spec.size} px ({spec.split} split, seed {spec.seed})'


def load(spec: str) -> PhantomRecords:
  """The phantom source a `phantoms:` spec names (nothing is built on disk)."""
  parsed = parse(spec)
  return PhantomRecords(parsed, description=describe(parsed))
