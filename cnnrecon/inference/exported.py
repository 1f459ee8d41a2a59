"""Exported models: the sha256 check of an export directory, and its StableHLO run with jax alone.

This module imports only jax, numpy, `cnnrecon.errors`, `cnnrecon.io` and
`cnnrecon.compiler` (XLA options), so an exported StableHLO model runs where
the model code (flax, `cnnrecon.models`) is not installed. The `params` form
needs the model code: `cnnrecon.inference.load_export` imports it only then.
"""

import dataclasses
import functools
import json
import pathlib
from typing import Any

import jax
import numpy as np

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.io import sha256_of

MANIFEST = 'manifest.json'
SUMS = 'SHA256SUMS'  # `sha256sum -c SHA256SUMS` checks an export by hand too
STABLEHLO_FILE = 'model.stablehlo'
PARAMS_FILE = 'params.safetensors'  # the params form (`inference.params`); named here to check manifests
CONFIG_FILE = 'config.json'
MANIFEST_VERSION = 1
# The payload file each format cannot load without: a manifest whose payload lacks it names the wrong format.
REQUIRED_PAYLOAD = {'stablehlo': (STABLEHLO_FILE,), 'params': (PARAMS_FILE, CONFIG_FILE),
                    'savedmodel': ('savedmodel/saved_model.pb',)}
INPUT_KINDS = ('image', 'mix', 'vector', 'scalar')
_JSON_TYPES = {dict: 'a JSON object', list: 'a list', str: 'a string', int: 'an integer'}


def reexport_hint(directory: pathlib.Path) -> str:
  """How to replace a broken export (`--overwrite` accepts a folder that holds only an export's files)."""
  return f're-export it with `cnnrecon export --workdir RUN --out {directory} --overwrite`'


def _recorded_sums(directory: pathlib.Path) -> dict[str, str]:
  sums_path = directory / SUMS
  if not sums_path.is_file():
    raise CnnreconError(f'{directory} is not a cnnrecon export (no {SUMS}): make one with '
                        '`cnnrecon export --workdir RUN --out DIR`')
  sums = {}
  for line in sums_path.read_text().splitlines():
    digest, _, name = line.partition('  ')
    if len(digest) != 64 or not name:
      raise CnnreconError(f'{sums_path} has a malformed line {line!r}: export the model again')
    if pathlib.PurePosixPath(name).is_absolute() or '..' in pathlib.PurePosixPath(name).parts:
      # A sum may only vouch for a file of the export itself.
      raise CnnreconError(f'{sums_path} lists {name!r}, a file outside the export: {reexport_hint(directory)}')
    sums[name] = digest
  return sums


def _typed(value: Any, kind: type) -> bool:
  return isinstance(value, kind) and not (kind is int and isinstance(value, bool))  # JSON true is no step number


def _field_problem(manifest: dict) -> str | None:
  """The first missing or mistyped field that loading and running an export reads (None: all there)."""
  fields = [(('format',), str), (('payload',), dict), (('task',), dict), (('task', 'name'), str),
            (('model',), dict), (('model', 'name'), str), (('source',), dict), (('source', 'step'), int),
            (('inputs',), list), (('spatial',), dict), (('spatial', 'multiple'), int),
            (('spatial', 'min_side'), int), (('spatial', 'why'), str)]
  for keys, kind in fields:
    value = manifest
    for key in keys:
      value = value.get(key) if isinstance(value, dict) else None
    if value is None:
      return f'has no {".".join(keys)!r}'
    if not _typed(value, kind):
      return f'has {".".join(keys)!r} = {json.dumps(value)[:40]}, not {_JSON_TYPES[kind]}'
  return None


def _inputs_problem(manifest: dict) -> str | None:
  """What is wrong with the manifest's `inputs`, `spatial.fixed` or `task.styles` (None: nothing)."""
  inputs = manifest['inputs']
  for item in inputs:
    if not isinstance(item, dict) or not _typed(item.get('name'), str) or item.get('kind') not in INPUT_KINDS:
      return f'has an input {json.dumps(item)[:60]} without a name and a kind ({", ".join(INPUT_KINDS)})'
    if item['kind'] != 'scalar' and not (_typed(item.get('size'), int) and item['size'] > 0):
      return f'has input {item["name"]!r} without a positive integer size'
  if not inputs:
    return 'lists no inputs'
  fixed = manifest['spatial'].get('fixed')
  sides = isinstance(fixed, list) and len(fixed) == 2 and all(_typed(side, int) for side in fixed)
  if fixed is not None and not sides:
    return f'has spatial.fixed {json.dumps(fixed)[:40]}, not null or [height, width]'
  styles = manifest['task'].get('styles', [])
  if not (isinstance(styles, list) and all(isinstance(style, str) for style in styles)):
    return 'has task.styles that is not a list of names'
  return None


def _payload_problem(manifest: dict) -> str | None:
  """What is wrong with the manifest's `format` and `payload` (None: nothing)."""
  fmt, payload = manifest['format'], manifest['payload']
  if fmt not in REQUIRED_PAYLOAD:
    return f'names format {fmt!r}, which is none of {", ".join(REQUIRED_PAYLOAD)}'
  if not all(isinstance(name, str) and isinstance(digest, str) for name, digest in payload.items()):
    return 'has a payload that does not map file names to sha256 sums'
  missing = [name for name in REQUIRED_PAYLOAD[fmt] if name not in payload]
  if missing:
    return f'names format {fmt!r}, but its payload lacks {", ".join(missing)}'
  return None


def read_manifest(directory: str | pathlib.Path) -> dict:
  """The parsed `manifest.json` of an export, once it holds every field loading it needs.

  Raises:
    CnnreconError: not JSON, a newer manifest version, a missing or mistyped
      field, or a format whose payload files it does not list (one line).
  """
  directory = pathlib.Path(directory)
  path = directory / MANIFEST
  try:
    manifest = json.loads(path.read_text(encoding='utf-8'))
  except json.JSONDecodeError as error:
    raise CnnreconError(f'{path} is not valid JSON ({error.msg} at line {error.lineno} column {error.colno}): '
                        f'{reexport_hint(directory)}') from None
  except UnicodeDecodeError:
    raise CnnreconError(f'{path} is not UTF-8 text: {reexport_hint(directory)}') from None
  if not isinstance(manifest, dict):
    raise CnnreconError(f'{path} holds {json.dumps(manifest)[:40]}, not a JSON object: {reexport_hint(directory)}')
  version = manifest.get('manifest_version')
  if _typed(version, int) and version > MANIFEST_VERSION:
    raise CnnreconError(f'{path} has manifest_version {version}, newer than this cnnrecon reads '
                        f'({MANIFEST_VERSION}): upgrade cnnrecon, or {reexport_hint(directory)}')
  problem = _field_problem(manifest) or _inputs_problem(manifest) or _payload_problem(manifest)
  if problem:
    raise CnnreconError(f'{path} {problem}: {reexport_hint(directory)}')
  return manifest


def verify(directory: str | pathlib.Path) -> dict:
  """Checks every file of an export against SHA256SUMS and the manifest; returns the manifest.

  Raises:
    CnnreconError: a missing, changed or unlisted file, or a malformed
      manifest (one line naming it).
  """
  directory = pathlib.Path(directory)
  sums = _recorded_sums(directory)
  if MANIFEST not in sums:
    raise CnnreconError(f'{directory / SUMS} does not list {MANIFEST}: export the model again')
  for name, digest in sums.items():
    path = directory / name
    if not path.is_file():
      raise CnnreconError(f'{path} is missing from the export: export the model again')
    if sha256_of(path) != digest:
      raise CnnreconError(f'{path} does not match its sha256 in {SUMS}: the export was changed or damaged; '
                          'export the model again')
  manifest = read_manifest(directory)
  for name, digest in manifest['payload'].items():
    if sums.get(name) != digest:
      raise CnnreconError(f'{directory / MANIFEST} and {SUMS} disagree on the sha256 of {name}: '
                          'export the model again')
  return manifest


def check_image_sides(spatial: dict, model: str, name: str, height: int, width: int) -> None:
  """Raises a one-line error unless the architecture (`spatial` of a manifest) takes height x width images."""
  multiple, low = spatial['multiple'], spatial['min_side']
  if spatial.get('fixed') and [height, width] != spatial['fixed']:
    raise CnnreconError(f'{name} is {height}x{width} px, but this export takes only '
                        f'{spatial["fixed"][0]}x{spatial["fixed"][1]} images (made with --image-size): pad or crop '
                        'it, or export again without --image-size for any size')
  if height % multiple or width % multiple or min(height, width) < low:
    fits = [max(low, -(-side // multiple) * multiple) for side in (height, width)]
    raise CnnreconError(f'{name} is {height}x{width} px, but this {model} needs sides that are multiples of '
                        f'{multiple} and at least {low} px ({spatial["why"]}): pad or crop it, e.g. to '
                        f'{fits[0]}x{fits[1]}')


@dataclasses.dataclass(frozen=True)
class ExportedModel:
  """A deserialized StableHLO export: call it with numpy or jax arrays as the manifest's `inputs` say."""

  manifest: dict
  exported: Any  # jax.export.Exported

  @property
  def task(self) -> str:
    """The name of the task the model was trained for (gaussian, inpaint, fast_style, adain, ...)."""
    return self.manifest['task']['name']

  def check_inputs(self, arrays: tuple, *, name: str | None = None) -> None:
    """One-line errors for a wrong number of inputs, channels or image sides (`name` names a single input)."""
    inputs = self.manifest['inputs']
    if name is not None and len(inputs) == 1:
      inputs = [{**inputs[0], 'name': name}]
    if len(arrays) != len(inputs):
      raise CnnreconError(f'this exported {self.task} model takes {len(inputs)} inputs '
                          f'({", ".join(item["name"] for item in inputs)}), not {len(arrays)}')
    for item, array in zip(inputs, arrays):
      shape = np.shape(array)
      if item['kind'] == 'image':
        if len(shape) != 4 or shape[-1] != item['size']:
          raise CnnreconError(f'{item["name"]} has shape {shape}; it must be NHWC with {item["size"]} channels')
        check_image_sides(self.manifest['spatial'], self.manifest['model']['name'], item['name'], shape[1], shape[2])
      elif item['kind'] == 'mix' and (len(shape) != 2 or shape[-1] != item['size']):
        raise CnnreconError(f'{item["name"]} has shape {shape}; it must be (batch, {item["size"]}): one weight per '
                            f'trained style ({", ".join(self.manifest["task"].get("styles", []))}), summing to 1')
      elif item['kind'] == 'vector' and (len(shape) != 2 or shape[-1] != item['size']):
        raise CnnreconError(f'{item["name"]} has shape {shape}; it must be (batch, {item["size"]})')

  @functools.cached_property
  def _call(self):
    # Compiled like cnnrecon's own inference (`compiler.jit`): CPU convolutions on Eigen, which is
    # faster there and gives the in-memory model's numbers.
    return compiler.jit(self.exported.call)

  @property
  def step(self) -> int:
    """The exported checkpoint's step."""
    return self.manifest['source']['step']

  @property
  def observation_channels(self) -> int:
    """The channels (or length) of the first input, the observation of a reconstruction export."""
    return self.manifest['inputs'][0]['size']

  def restore(self, observed: np.ndarray) -> np.ndarray:
    """The estimate of one observation (an export of a reconstruction task maps observations to estimates)."""
    return self(np.asarray(observed)[None])[0]

  def __call__(self, *arrays) -> np.ndarray:
    """Runs the model on float32 arrays (numpy or jax; images NHWC) after checking their shapes."""
    self.check_inputs(arrays)
    return np.asarray(self._call(*(np.asarray(array, np.float32) for array in arrays)))


def read_export(directory: str | pathlib.Path) -> dict:
  """The manifest of an export directory, after checking every file's sha256 sum.

  Raises:
    CnnreconError: not an export, a tampered or damaged file.
  """
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    raise CnnreconError(f'export directory {directory} does not exist: make it with '
                        '`cnnrecon export --workdir RUN --out DIR`')
  return verify(directory)


def stablehlo_model(directory: str | pathlib.Path, manifest: dict) -> ExportedModel:
  """The StableHLO model of an export whose files `verify` has checked (and returned `manifest` of)."""
  directory = pathlib.Path(directory)
  if manifest['format'] != 'stablehlo':
    raise CnnreconError(f'{directory} holds a {manifest["format"]} export; load it with TensorFlow '
                        '(tf.saved_model.load), or export --format stablehlo for jax')
  payload = (directory / STABLEHLO_FILE).read_bytes()
  try:
    exported = jax.export.deserialize(bytearray(payload))
  except Exception:  # pylint: disable=broad-except  # foreign bytes fail however the flatbuffer reader trips
    raise CnnreconError(f'{directory / STABLEHLO_FILE} is not a serialized jax.export model although its sha256 '
                        f'matches: {reexport_hint(directory)}') from None
  return ExportedModel(manifest=manifest, exported=exported)
