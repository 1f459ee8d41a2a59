"""`cnnrecon export`: a workdir's checkpoint as StableHLO (jax.export), params (safetensors) or a SavedModel.

Every export directory holds the payload, `manifest.json` (what the model
computes, its inputs and their constraints, the task, the source run and
step, the versions) and `SHA256SUMS` over the manifest and payload, which
`cnnrecon.export.load` checks before it runs anything. The directory is
written beside its final place and renamed into it, so a failed export
leaves nothing half-written and an existing export is replaced only whole.

`--overwrite` replaces only a previous export: a folder that holds nothing
but an export's files. The workdir, a folder that holds it, and anything
inside it but such an export are refused, by path and by file identity
(device, inode), so a symlink cannot dodge the check. The staging folders
beside `--out` carry the exporting process's PID and host
(`.NAME.export-PID-HOST.xxxxxxxx`); a later export to the same `--out`
removes those whose process is dead, e.g. after a SIGKILL.
"""

import datetime
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile

import jax

from cnnrecon.config import config_to_json
from cnnrecon.errors import CnnreconError
from cnnrecon.export.params import write_params
from cnnrecon.export.signatures import constraints, signature_of, symbolic_specs
from cnnrecon.inference import exported as loader
from cnnrecon.io import sha256_of
from cnnrecon.safety import LOCK_NAME
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


def _real_out(out: str | pathlib.Path) -> pathlib.Path:
  """`out` with its parent folders resolved (symlinks, `..`), so that what is renamed beside it is what the kernel
  would find there; `out` itself keeps its name (a symlink `out` is refused)."""
  out = pathlib.Path(out).absolute()
  return out.resolve() if out.name in ('', '.', '..') else out.parent.resolve() / out.name


def _identity(path: pathlib.Path) -> tuple[int, int] | None:
  try:
    stat = path.stat()
  except OSError:
    return None
  return stat.st_dev, stat.st_ino


def _lineage(path: pathlib.Path) -> set[tuple[int, int]]:
  """The identities of the folders above `path`, as written and resolved: a symlink cannot hide one."""
  absolute, resolved = path.absolute(), path.resolve()
  return {_identity(folder) for folder in (*absolute.parents, *resolved.parents)} - {None}


def _is_run(folder: pathlib.Path) -> bool:
  """Whether `folder` is a training workdir (by what `train` writes first; an export holds none of these)."""
  return ((folder / LOCK_NAME).is_file() or (folder / 'checkpoints').is_dir()
          or (folder / 'metrics.jsonl').is_file())


def _check_not_a_workdir(out: pathlib.Path, workdir: pathlib.Path, given) -> None:
  """Refuses an `out` that is the workdir or holds it, is another run's workdir, or lies inside a workdir
  (unless it is a previous export there)."""
  work, here = _identity(workdir), _identity(out)
  instead = f'export into a folder of its own, e.g. --out exports/{workdir.resolve().name}'
  if work is not None and (here == work or out.resolve() == workdir.resolve()):
    raise CnnreconError(f'--out {given} is the workdir {workdir} itself: {instead}')
  if work is not None and (here in _lineage(workdir) or out.resolve() in workdir.resolve().parents):
    raise CnnreconError(f'--out {given} holds the workdir {workdir}: {instead}')
  if out.is_dir() and _is_run(out):
    raise CnnreconError(f'--out {given} is the workdir of a training run: {instead}')
  inside = workdir if work is not None and (work in _lineage(out) or workdir.resolve() in out.resolve().parents) \
      else next((folder for folder in out.resolve().parents if _is_run(folder)), None)
  if inside is not None and (not out.is_dir() or _not_an_export(out)):
    # Its checkpoints, logs and reports are the run's: an export never goes there, only replaces one.
    raise CnnreconError(f'--out {given} lies inside the workdir {inside}, where only a previous export may be '
                        f'replaced: {instead}')


def _export_files(folder: pathlib.Path) -> tuple[set[str], bool]:
  """The files an export in `folder` may hold, and whether anything under `savedmodel/` may be one of them.

  A readable manifest names them; a damaged one cannot, and then any format's file names count, so that
  `--overwrite` replaces a broken export too.
  """
  try:
    return {loader.MANIFEST, loader.SUMS, *loader.read_manifest(folder)['payload']}, False
  except CnnreconError:
    return {loader.MANIFEST, loader.SUMS, loader.STABLEHLO_FILE, loader.PARAMS_FILE, loader.CONFIG_FILE}, True


def _not_an_export(folder: pathlib.Path) -> str | None:
  """Why `folder` is not a previous export that `--overwrite` may replace (None: it is one)."""
  if not (folder / loader.MANIFEST).is_file():
    return f'it has no {loader.MANIFEST}'
  allowed, any_savedmodel = _export_files(folder)
  foreign = []
  for root, folders, files in os.walk(folder):
    for name in files + [name for name in folders if os.path.islink(os.path.join(root, name))]:
      path = pathlib.Path(root, name)
      relative = path.relative_to(folder).as_posix()
      saved = any_savedmodel and relative.startswith('savedmodel/')
      if path.is_symlink() or not (relative in allowed or saved):
        foreign.append(relative)
  if foreign:
    return f'it also holds {", ".join(sorted(foreign)[:3])}{", ..." if len(foreign) > 3 else ""}'
  return None


def _check_out(out: pathlib.Path, overwrite: bool, given) -> None:
  """Refuses an `out` that is a file or a symlink, non-empty without `overwrite`, or anything but an export."""
  if out.is_symlink():
    raise CnnreconError(f'--out {given} is a symbolic link (to {os.readlink(out)}): give the folder itself')
  if out.exists() and not out.is_dir():
    raise CnnreconError(f'--out {given} is a file: give a directory for the export')
  if not out.is_dir() or not any(out.iterdir()):
    return
  if not overwrite:
    raise CnnreconError(f'--out {given} exists and is not empty: pick a new directory, or pass --overwrite to '
                        'replace it')
  why = _not_an_export(out)
  if why:
    raise CnnreconError(f'--out {given} is not a previous export ({why}): --overwrite replaces only a folder '
                        'that `cnnrecon export` wrote; pick a new or empty directory')


def _host() -> str:
  return re.sub(r'[^A-Za-z0-9-]', '-', socket.gethostname())[:40] or 'host'


def _staging_prefix(out: pathlib.Path) -> str:
  """`.NAME.export-PID-HOST.`: who stages beside `out`, so that a later export can tell a dead one's litter."""
  return f'.{out.name}.export-{os.getpid()}-{_host()}.'


def _alive(pid: int) -> bool:
  if pid <= 0:
    return True  # not a process of ours to judge: keep its folder
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # another user's live process
  return True


def _clean_stale_staging(out: pathlib.Path) -> None:
  """Removes what exports to `out` on this host left beside it when their process died (SIGKILL, power cut).

  Only folders named by `_staging_prefix` whose PID is dead are touched. A dead export's `.old` folder is
  the previous export, moved aside just before the new one was renamed in: if `out` is missing it goes
  back to `out` rather than away.
  """
  if not out.parent.is_dir():
    return
  pattern = re.compile(rf'\.{re.escape(out.name)}\.export-(\d+)-{re.escape(_host())}\.(old|[a-z0-9_]{{8}})')
  for entry in sorted(out.parent.iterdir()):
    match = pattern.fullmatch(entry.name)
    if not match or entry.is_symlink() or not entry.is_dir() or _alive(int(match[1])):
      continue
    try:
      if match[2] == 'old' and not out.exists() and not out.is_symlink():
        entry.rename(out)
      else:
        shutil.rmtree(entry)
    except OSError:
      pass  # litter that cannot go now stays for a later run; the export itself is not at stake


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
  given, workdir, out = out, pathlib.Path(workdir), _real_out(out)
  _check_not_a_workdir(out, workdir, given)
  _clean_stale_staging(out)
  _check_out(out, overwrite, given)
  signature = signature_of(workdir, step=step)
  if image_size is not None:
    loader.check_image_sides(_spatial(signature), signature.config.model.name, '--image-size', *image_size)
  specs = symbolic_specs(signature, image_size)
  out.parent.mkdir(parents=True, exist_ok=True)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=_staging_prefix(out), dir=out.parent))
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
    # Again: while the model was written, `out` may have become something --overwrite must not replace.
    _check_not_a_workdir(out, workdir, given)
    _check_out(out, overwrite, given)
    _replace_dir(staging, out)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return pathlib.Path(given)


def _replace_dir(staging: pathlib.Path, out: pathlib.Path) -> None:
  """Moves `staging` to `out`; an old `out` is moved aside first, back if the move fails, and deleted only after."""
  old = None
  if out.exists():
    old = out.with_name(_staging_prefix(out) + 'old')
    shutil.rmtree(old, ignore_errors=True)
    out.rename(old)
  try:
    staging.rename(out)
  except BaseException:
    if old is not None and not out.exists():
      old.rename(out)  # the previous export stays in place
    raise
  if old is not None:
    shutil.rmtree(old)
