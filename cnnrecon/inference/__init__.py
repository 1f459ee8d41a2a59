"""cnnrecon.inference: any trained model, from a workdir or an export, ready to call.

Evaluation, export, `cnnrecon restore` and `cnnrecon stylize` load models
here; what a model is (a `TrainedModel`, a `FastNet`, an `AdaINNet`, ...) is
its task's choice (`Task.inference_model`). Importing this package, or
loading a StableHLO export, needs jax and numpy only: the loaders of
checkpoints (orbax) and params exports (flax) are imported when used.
"""

import pathlib
from typing import Any

from cnnrecon.errors import CnnreconError
from cnnrecon.inference.exported import ExportedModel, check_image_sides, read_export, stablehlo_model, verify


def load_export(directory: str | pathlib.Path) -> Any:
  """Loads an export written by `cnnrecon export` after checking its sha256 sums.

  Returns:
    For `--format stablehlo`, an `ExportedModel` (needs only jax); for
    `--format params`, the task's in-memory model (as `load_model`).

  Raises:
    CnnreconError: not an export, a tampered or damaged file, or a format
      this function does not load (a SavedModel: load it with TensorFlow).
  """
  manifest = read_export(directory)
  if manifest['format'] == 'params':
    from cnnrecon.inference.params import model_from_export  # pylint: disable=import-outside-toplevel  # flax
    return model_from_export(directory, manifest)
  return stablehlo_model(directory, manifest)


def load_model(directory: str | pathlib.Path) -> Any:
  """Loads a `--format params` export (after checking its sha256 sums) as the task's in-memory model."""
  from cnnrecon.inference.params import model_from_export  # pylint: disable=import-outside-toplevel  # flax
  return model_from_export(directory, read_export(directory))


def load_trained(workdir: str | pathlib.Path, *, step: int | str | None = None) -> Any:
  """The best (else latest, or `step`) checkpoint of a workdir as its task's model (see `inference.workdir`)."""
  from cnnrecon.inference.workdir import load_trained as load  # pylint: disable=import-outside-toplevel  # orbax
  return load(workdir, step=step)


def load(*, workdir: str | None = None, exported: str | None = None) -> Any:
  """The model of a workdir or of an export directory (exactly one of them).

  Raises:
    CnnreconError: both or neither given, or what the loaders raise.
  """
  if (workdir is None) == (exported is None):
    raise CnnreconError('give the model as either --workdir (a trained run) or --exported (an export directory)')
  return load_trained(workdir) if workdir is not None else load_export(exported)


def task_name(model: Any) -> str:
  """The `config.task.name` a loaded model was trained for."""
  return model.task if isinstance(model, ExportedModel) else model.config.task.name


__all__ = ['ExportedModel', 'check_image_sides', 'load', 'load_export', 'load_model', 'load_trained', 'task_name',
           'verify']
