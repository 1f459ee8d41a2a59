"""The work behind `cnnrecon eval` and `cnnrecon restore`: score or apply a trained model, through its task."""

import pathlib
import sys
from typing import Sequence

import ml_collections
import numpy as np

from cnnrecon import safety
from cnnrecon.data.images import holds_color, to_channels
from cnnrecon.data.sources import load_source
from cnnrecon.evaluation.report import write_results_files
from cnnrecon.evaluation.task_options import evaluation_config
from cnnrecon.inference import ExportedModel, load, load_trained, task_name
from cnnrecon.tasks import TASKS, EvaluationRequest, task_class

RESULT_FILES = ('results.md', 'results.csv', 'summary.json')


def source_images(source: Sequence, channels: int, *, gray: str = 'luminance') -> list[tuple[str, np.ndarray]]:
  """(name, float HWC image in [0, 1]) for every example of a data source (`gray`: `data.gray`).

  'bt601_y' takes the luma of the float image, not rounded to 8 bits: the SR
  literature scores the Y of `rgb2ycbcr(im2double(x))` (tasks that need 8 bits,
  such as JPEG, round their own targets).
  """
  if gray == 'bt601_y':
    return [(str(source[i]['name']), to_channels(source[i]['image'] / np.float32(255.0), channels, gray=gray))
            for i in range(len(source))]
  return [(str(source[i]['name']), to_channels(source[i]['image'], channels, gray=gray).astype(np.float32) / 255.0)
          for i in range(len(source))]


def images_as_trained(source: Sequence, config: ml_collections.ConfigDict) -> list[tuple[str, np.ndarray]]:
  """`source_images` with a run's channels and gray conversion (configs saved before `data.gray`: luminance)."""
  return source_images(source, config.data.channels, gray=config.data.get('gray', 'luminance'))


def evaluate_workdir(workdir: str, *, data: str | None = None, sigma: float | None = None,
                     seeds: Sequence[int] = (0,), out: str | None = None, with_baselines: bool = True,
                     overwrite: bool = False, task: str | None = None, **options) -> dict:
  """Scores a trained model on a data set as its task does; prints and writes the tables.

  Reconstruction tasks score the model, its input and their classical
  baselines (PSNR / SSIM); style tasks the terms of their loss per style.

  Args:
    workdir: a trained (or imported) workdir.
    data: image folder or data spec (default: the config's `data.eval`).
    sigma: noise level on the 0-255 scale (default: the training sigma;
      only for tasks with a `sigma`).
    task: evaluate on this task instead of the trained one (reconstruction
      tasks; e.g. 'super_resolve' for a blind model).
    **options: the evaluated task's options (e.g. `scale=3`,
      `quality=20`, `views=45`); left out, the trained values (same task) or
      the task's defaults.
    seeds: observation seeds; with several, per-image values are averaged
      over seeds and the mean ± std of the per-seed averages is reported too.
    out: output folder (default: a new `<workdir>/eval-N`, so the training
      run's `eval/` tables and earlier evaluations stay).
    with_baselines: include the task's classical baselines.
    overwrite: replace tables already in `out`.

  Returns:
    The task's averages (`Results.summary`), over all seeds.
  """
  model = load_trained(workdir)
  config = model.config
  request = EvaluationRequest(data=data or config.data.eval, seeds=tuple(seeds), with_baselines=with_baselines,
                              config=evaluation_config(config, task=task, sigma=sigma, **options))
  if out is not None:
    safety.check_results_dir(pathlib.Path(out), RESULT_FILES, overwrite=overwrite)
  images = images_as_trained(load_source(request.data, data_dir=config.data.data_dir or None), config)
  results = task_class(request.config or config).evaluate(model, images, request)
  out_dir = pathlib.Path(out) if out else safety.new_results_dir(pathlib.Path(workdir), 'eval')
  paths = write_results_files(out_dir, results.files)
  print(results.terminal)
  print(f"tables: {', '.join(str(path) for path in paths.values())}")
  return results.summary


def _note_gray_conversion(paths: Sequence[str], channels: int) -> None:
  """Says once, on stderr, how many colour images a gray model's inputs were converted from (none: silence)."""
  if channels != 1:
    return
  colour = [str(path) for path in paths if holds_color(path)]
  if colour:
    shown = ', '.join(colour[:3]) + (', ...' if len(colour) > 3 else '')
    print(f'cnnrecon: note: {len(colour)} of {len(paths)} input images ({shown}) are RGB/RGBA: converted to gray '
          '(luminance), as this model restores gray images', file=sys.stderr)


def restore_files(paths: Sequence[str], *, out: str, workdir: str | None = None, exported: str | None = None,
                  overwrite: bool = False) -> list[pathlib.Path]:
  """Restores each observation file with a trained model (a workdir or an export) and writes `<out>/<stem>.png`.

  The task reads the files (e.g. noisy photos) and maps them to estimates
  (`Task.restorer`: its initial estimate, then the model). Every input is
  read and every output name checked before anything is written, so a bad
  file changes nothing; an output never replaces an input or an existing file
  (unless `overwrite`), and same-named inputs from different folders get
  `x.png`, `x-2.png`. RGB/RGBA images given to a gray model become gray
  (luminance); one `cnnrecon: note:` line on stderr says how many.

  Returns:
    The written paths.
  """
  model = load(workdir=workdir, exported=exported)
  task = TASKS.get(task_name(model))
  restore = task.restorer(model)  # raises for tasks without observations to restore
  targets = safety.output_paths(paths, pathlib.Path(out), suffix=task.estimate_suffix(), overwrite=overwrite)
  observations = [task.read_observation(path, model.observation_channels) for path in paths]
  if isinstance(model, ExportedModel):  # an export states which inputs its architecture takes
    for path, observation in zip(paths, observations):
      model.check_inputs((observation[None],), name=str(path))
  _note_gray_conversion(paths, model.observation_channels)  # once every check passed: a refusal stays one line
  written = []
  for observation, target in zip(observations, targets):
    task.write_estimate(target, restore(observation))
    written.append(target)
    print(target)
  return written
