"""`cnnrecon export`: a workdir's checkpoint as StableHLO (jax.export), params (safetensors) or a SavedModel.

Every export directory holds the payload, `manifest.json` (what the model
computes, its inputs and their constraints, the task, the source run and
step, the versions) and `SHA256SUMS` over the manifest and payload, which
`cnnrecon.export.load` checks before it runs anything. The directory is
written beside its final place and renamed into it, so a failed export
leaves nothing half-written and an existing export is replaced only whole.
"""

import datetime
import json
import pathlib
import shutil
import tempfile

import jax

from cnnrecon.config import config_to_json
from cnnrecon.errors import CnnreconError
from cnnrecon.export.params import write_params
from cnnrecon.export.signatures import constraints, signature_of, symbolic_specs
from cnnrecon.inference import exported as loader
from cnnrecon.io import sha256_of
from cnnrecon.tasks import Signature
from cnnrecon.train import provenance

FORMATS = ('stablehlo', 'params', 'savedmodel')
PLATFORMS = ('cpu', 'cuda')


def parse_image_size(text: str | None) -> tuple[int, int] | None:
  """'256x320' -> (256, 320): a fixed height and width instead of symbolic ones."""
  if text is None:
    return None
  try:
    height, width = (int(part) for part in text.lower().split('x'))
  except ValueError:
    raise CnnreconError(f'--image-size {text!r} is not HEIGHTxWIDTH, e.g. --image-size 256x256') from None
  return height, width


def _check_out(out: pathlib.Path, overwrite: bool) -> None:
  if out.exists() and not out.is_dir():
    raise CnnreconError(f'--out {out} is a file: give a directory for the export')
  if out.is_dir() and any(out.iterdir()) and not overwrite:
    raise CnnreconError(f'--out {out} exists and is not empty: pick a new directory, or pass --overwrite to '
                        'replace it')


def _spatial(signature: Signature, image_size: tuple[int, int] | None = None) -> dict:
  """The side constraint of the architecture, and the fixed (height, width) of an `--image-size` export."""
  model = signature.config.model.name
  why = {1: 'convolutions only'}.get(signature.multiple, f'{model} down- and upsamples by {signature.multiple}')
  if signature.min_side > signature.multiple:
    why += f'; its reflection padding needs at least {signature.min_side} px'
  return {'multiple': signature.multiple, 'min_side': signature.min_side, 'why': why,
          'fixed': list(image_size) if image_size else None}


def _inputs(signature: Signature, specs: list[jax.ShapeDtypeStruct]) -> list[dict]:
  described = []
  for item, spec in zip(signature.inputs, specs):
    # `size`: an image's channels, or a vector's (or style mix's) length.
    entry = {'name': item.name, 'kind': item.kind, 'size': item.channels if item.kind == 'image' else item.length,
             'dtype': 'float32', 'shape': '(' + ', '.join(str(dim) for dim in spec.shape) + ')'}
    if item.kind == 'image':
      entry['layout'] = 'NHWC'
    if item.value_range is not None:
      entry['range'] = list(item.value_range)
    described.append(entry)
  return described


def _manifest(signature: Signature, fmt: str, workdir: pathlib.Path, payload: dict[str, str],
              specs: list[jax.ShapeDtypeStruct], platforms: tuple[str, ...],
              image_size: tuple[int, int] | None) -> dict:
  config = signature.config
  return {
      'manifest_version': loader.MANIFEST_VERSION,
      'format': fmt,
      'task': signature.task,
      'model': {'name': config.model.name, 'depth': config.model.depth, 'features': config.model.features},
      'inputs': _inputs(signature, specs),
      'output': signature.output,
      'spatial': _spatial(signature, image_size if fmt != 'params' else None),
      'platforms': list(platforms) if fmt != 'params' else None,
      'source': {'workdir': str(workdir.absolute()), 'step': signature.step,
                 'config': json.loads(config_to_json(config))},
      'versions': {**provenance.package_versions(), **provenance.git_state()},
      'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
      'payload': payload,
  }


def _write_stablehlo(signature: Signature, directory: pathlib.Path, specs, platforms) -> list[str]:
  exported = jax.export.export(jax.jit(signature.function), platforms=platforms)(*specs)
  (directory / loader.STABLEHLO_FILE).write_bytes(exported.serialize())
  return [loader.STABLEHLO_FILE]


def _tensorflow():
  """`(tensorflow, jax2tf)`, or a one-line error saying how to install TensorFlow."""
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from jax.experimental import jax2tf  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise CnnreconError('--format savedmodel needs TensorFlow, which is not installed: '
                        "pip install 'cnnrecon[tf]', or use --format stablehlo") from None
  return tf, jax2tf


def _write_savedmodel(signature: Signature, directory: pathlib.Path, specs, platforms, fixed: bool) -> list[str]:
  """A TensorFlow SavedModel of the same function (jax2tf, native serialization) in `savedmodel/`."""
  tf, jax2tf = _tensorflow()
  shapes = [tuple(dim if isinstance(dim, int) else None for dim in spec.shape) for spec in specs]
  polymorphic = [str(spec.shape).replace("'", '') for spec in specs]
  converted = jax2tf.convert(signature.function, polymorphic_shapes=polymorphic, with_gradient=False,
                             polymorphic_constraints=() if fixed else constraints(signature),
                             native_serialization_platforms=platforms)
  module = tf.Module()
  module.serve = tf.function(converted, autograph=False,
                             input_signature=[tf.TensorSpec(shape, tf.float32) for shape in shapes])
  tf.saved_model.save(module, str(directory / 'savedmodel'))
  return sorted(str(path.relative_to(directory)) for path in (directory / 'savedmodel').rglob('*') if path.is_file())


def export_workdir(workdir: str | pathlib.Path, out: str | pathlib.Path, *, fmt: str = 'stablehlo',
                   step: int | str | None = 'best', image_size: tuple[int, int] | None = None,
                   platforms: tuple[str, ...] = PLATFORMS, overwrite: bool = False) -> pathlib.Path:
  """Exports a workdir's checkpoint for inference without the training code.

  Args:
    workdir: a trained (or imported) workdir.
    out: the export directory (must be new or empty unless `overwrite`).
    fmt: 'stablehlo' (jax.export; runs with jax alone), 'params'
      (safetensors + config.json; `cnnrecon.load_model`) or 'savedmodel'
      (TensorFlow, via jax2tf; needs TensorFlow installed).
    step: 'best' (by validation PSNR, else latest), 'latest' or a step number.
    image_size: fix (height, width) instead of symbolic sides (StableHLO,
      SavedModel); the batch stays symbolic.
    platforms: what the StableHLO is lowered for.
    overwrite: replace a non-empty `out`.

  Returns:
    The export directory.
  """
  if fmt not in FORMATS:
    raise CnnreconError(f'unknown --format {fmt!r}: use {", ".join(FORMATS)}')
  if fmt == 'savedmodel':
    _tensorflow()  # fail before any work when it is missing
  workdir, out = pathlib.Path(workdir), pathlib.Path(out)
  _check_out(out, overwrite)
  signature = signature_of(workdir, step=step)
  if image_size is not None:
    loader.check_image_sides(_spatial(signature), signature.config.model.name, '--image-size', *image_size)
  specs = symbolic_specs(signature, image_size)
  out.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out.name}.', dir=out.parent))
  staging.chmod(0o755)  # mkdtemp's 0700 would make the export private to this user
  try:
    writers = {'stablehlo': lambda: _write_stablehlo(signature, staging, specs, platforms),
               'params': lambda: write_params(signature.model, staging),
               'savedmodel': lambda: _write_savedmodel(signature, staging, specs, platforms, image_size is not None)}
    payload = {name: sha256_of(staging / name) for name in writers[fmt]()}
    manifest = _manifest(signature, fmt, workdir, payload, specs, platforms, image_size)
    (staging / loader.MANIFEST).write_text(json.dumps(manifest, indent=1) + '\n')
    sums = {loader.MANIFEST: sha256_of(staging / loader.MANIFEST), **payload}
    (staging / loader.SUMS).write_text(''.join(f'{digest}  {name}\n' for name, digest in sums.items()))
    _replace_dir(staging, out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return out


def _replace_dir(staging: pathlib.Path, out: pathlib.Path) -> None:
  """Moves `staging` to `out`; an old `out` is moved aside first and deleted only after."""
  old = None
  if out.exists():
    old = out.with_name(f'.{out.name}.old')
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
  staging.rename(out)
  if old is not None:
    shutil.rmtree(old)
