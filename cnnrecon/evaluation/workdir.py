"""The work behind `cnnrecon eval` and `cnnrecon restore`: score or apply a trained model, through its task."""

import pathlib
import sys
from typing import Sequence

import ml_collections
import numpy as np

from cnnrecon import safety
from cnnrecon.data.images import holds_color, list_images, to_channels
from cnnrecon.data.sources import load_source, parse_spec
from cnnrecon.data.grids import image_grid
from cnnrecon.evaluation.report import save_png, write_results_files
from cnnrecon.evaluation.task_options import evaluation_config
from cnnrecon.inference import ExportedModel, load, load_trained, task_name
from cnnrecon.tasks import TASKS, EvaluationRequest, task_class

RESULT_FILES = ('results.md', 'results.csv', 'summary.json', 'grid.png')


def source_images(source: Sequence, channels: int, *, gray: str = 'luminance',
                  gray_files: frozenset[str] = frozenset()) -> list[tuple[str, np.ndarray]]:
  """(name, float HWC image in [0, 1]) for every example of a data source (`gray`: `data.gray`).

  Colour images become gray at 8 bits (the luma rounded to an integer, as MATLAB's `rgb2ycbcr` of a
  uint8 image does). Sources hold every image as RGB; the images named in `gray_files` were gray
  files and come back with one channel, whatever `channels` is, instead of going through `rgb2ycbcr`:
  its Y would squeeze them into 16..235 of 255, where MATLAB's SR scripts keep a gray file as it is
  (Set14's bridge.bmp scores 1.3 dB too high at x3 that way).
  """
  def gray_file(i: int) -> bool:
    return str(source[i]['name']) in gray_files

  return [(str(source[i]['name']),
           (source[i]['image'][..., :1] if gray_file(i) else to_channels(source[i]['image'], channels, gray=gray))
           .astype(np.float32) / 255.0)
          for i in range(len(source))]


def gray_files_of(spec: str) -> frozenset[str]:
  """The names of the gray (one-channel) files of a folder spec, read from their headers; empty otherwise."""
  parsed = parse_spec(spec)
  if parsed.kind != 'folder':
    return frozenset()
  return frozenset(path.name for path in list_images(parsed.target) if not holds_color(path))


def images_as_trained(source: Sequence, config: ml_collections.ConfigDict,
                      spec: str | None = None) -> list[tuple[str, np.ndarray]]:
  """`source_images` with the channels the run's task evaluates on and its gray conversion.

  Configs saved before `data.gray` convert with luminance. With 'bt601_y', `spec` (the source's
  spec) tells which files of a folder were gray (see `source_images`).
  """
  gray = config.data.get('gray', 'luminance')
  return source_images(source, task_class(config).evaluation_channels(config), gray=gray,
                       gray_files=gray_files_of(spec) if spec and gray == 'bt601_y' else frozenset())


def evaluate_workdir(workdir: str, *, data: str | None = None, sigma: float | None = None,
                     seeds: Sequence[int] = (0,), out: str | None = None, with_baselines: bool = True,
                     overwrite: bool = False, task: str | None = None, **options) -> dict:
  """Scores a trained model on a data set as its task does; prints the table, writes the tables and grid.png.

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
  images = images_as_trained(load_source(request.data, data_dir=config.data.data_dir or None),
                             request.config or config, request.data)
  results = task_class(request.config or config).evaluate(model, images, request)
  out_dir = pathlib.Path(out) if out else safety.new_results_dir(pathlib.Path(workdir), 'eval')
  paths = write_results_files(out_dir, results.files)
  if results.grid_columns:
    paths['grid.png'] = save_png(out_dir / 'grid.png', image_grid(results.grid_columns, titles=results.grid_titles))
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
