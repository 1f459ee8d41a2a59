"""The work behind `cnnrecon eval` and `cnnrecon denoise`: score or apply a workdir's model."""

import math
import pathlib
from typing import Any, Callable, Sequence

import ml_collections
import numpy as np

from cnnrecon.data.images import read_image, to_channels, write_image
from cnnrecon.data.sources import load_source
from cnnrecon import safety
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation import tables
from cnnrecon.evaluation.restore import TrainedModel, load_trained
from cnnrecon.evaluation.scoring import mean_over_seeds, score_images, summarize, summarize_seeds
from cnnrecon.export import ExportedModel, load
from cnnrecon.export.loader import check_image_sides
from cnnrecon.losses import get_loss
from cnnrecon.metrics import SSIM_WINDOW
from cnnrecon.tasks import ReconstructionTask, build_task
from cnnrecon.train.checks import PERCEPTUAL_LOSSES, make_task


def protocol(task: ReconstructionTask) -> str:
  """The evaluation protocol in one paragraph, for every table."""
  return (f'Protocol: images in [0, 1]; {task.describe()} drawn per image from `fold_in(key(seed), index)`; '
          f'the {task.labels.observed} input is not clipped; estimates are clipped to [0, 1]; '
          f'{task.convention.describe()}.')


def task_of(config: ml_collections.ConfigDict, *, sigma: float | None = None) -> ReconstructionTask:
  """The task a (trained) config names, optionally at another noise level `sigma` (0-255 scale)."""
  task_config = config.task.copy_and_resolve_references()
  if sigma is not None:
    options = task_config.get(task_config.name)
    if options is None or 'sigma' not in options:
      raise CnnreconError(f'--sigma does not apply to task {task_config.name!r} (it has no noise sigma): '
                          'leave --sigma out')
    if not math.isfinite(sigma) or sigma < 0:
      raise CnnreconError(f'--sigma {sigma} must be a finite noise level >= 0 on the 0-255 scale, e.g. --sigma 25')
    options.sigma = float(sigma)
  if task_config.name in PERCEPTUAL_LOSSES:
    return make_task(config)
  return build_task(task_config, loss=get_loss(config.train.loss))


def source_images(source: Sequence, channels: int) -> list[tuple[str, np.ndarray]]:
  """(name, float HWC image in [0, 1]) for every example of a data source."""
  return [(str(source[i]['name']), to_channels(source[i]['image'], channels).astype(np.float32) / 255.0)
          for i in range(len(source))]


def _seed_lines(rows_per_seed: Sequence[dict], seeds: Sequence[int]) -> str:
  spread = summarize_seeds(rows_per_seed)
  lines = [f'Averages over seeds {", ".join(map(str, seeds))} (mean ± sample std of the per-seed averages):', '',
           '| method | PSNR (dB) | SSIM |', '|---|---:|---:|']
  lines += [f"| {method} | {values['psnr_mean']:.2f} ± {values['psnr_std']:.2f} | "
            f"{values['ssim_mean']:.4f} ± {values['ssim_std']:.4f} |" for method, values in spread.items()]
  return '\n'.join(lines)


def _check_scorable(images: Sequence[tuple[str, np.ndarray]], task: ReconstructionTask, spec: str) -> None:
  """SSIM's 11x11 window needs images of at least 11x11 after the border crop."""
  smallest = min(images, key=lambda item: min(item[1].shape[:2]))
  side = min(smallest[1].shape[:2]) - 2 * task.convention.crop
  if side < SSIM_WINDOW:
    raise CnnreconError(f'{spec}: image {smallest[0]} is {smallest[1].shape[0]}x{smallest[1].shape[1]} px, smaller '
                        f'than the {SSIM_WINDOW}x{SSIM_WINDOW} window SSIM needs: evaluate on larger images')


def evaluate_workdir(workdir: str, *, data: str | None = None, sigma: float | None = None,
                     seeds: Sequence[int] = (0,), out: str | None = None, with_baselines: bool = True,
                     overwrite: bool = False) -> dict:
  """Scores a trained model, the observed input and classical baselines; prints and writes the table.

  Args:
    workdir: a trained (or imported) workdir.
    data: image folder or data spec (default: the config's `data.eval`).
    sigma: noise level on the 0-255 scale (default: the training sigma;
      only for tasks with a `sigma`).
    seeds: observation seeds; with several, per-image values are averaged
      over seeds and the mean ± std of the per-seed averages is reported too.
    out: output folder (default: a new `<workdir>/eval-N`, so the training
      run's `eval/` tables and earlier evaluations stay).
    with_baselines: include scikit-image's classical denoisers (AWGN tasks).
    overwrite: replace tables already in `out`.

  Returns:
    The per-method averages (`scoring.summarize`, over all seeds). A style
    workdir (fast_style, adain) is scored by `style_eval` instead: its loss
    terms per style.
  """
  model = load_trained(workdir)
  if model.config.task.name in PERCEPTUAL_LOSSES:
    return _evaluate_style(workdir, model.config.task.name, data=data, sigma=sigma, seeds=seeds, out=out,
                           overwrite=overwrite)
  task = task_of(model.config, sigma=sigma)
  if out is not None:
    safety.check_results_dir(pathlib.Path(out), tables.TABLE_FILES, overwrite=overwrite)
  spec = data or model.config.data.eval
  images = source_images(load_source(spec, data_dir=model.config.data.data_dir or None), model.config.data.channels)
  _check_scorable(images, task, spec)
  rows_per_seed = [score_images(model, images, task=task, seed=seed, with_baselines=with_baselines)[0]
                   for seed in seeds]
  rows = mean_over_seeds(rows_per_seed)
  notes = protocol(task) + ('\n\n' + _seed_lines(rows_per_seed, seeds) if len(seeds) > 1 else '')
  out_dir = pathlib.Path(out) if out else safety.new_results_dir(pathlib.Path(workdir), 'eval')
  title = (f'{model.config.model.name} (step {model.step}) on {spec}, {task.describe()}, '
           f'seed{"s" if len(seeds) > 1 else ""} {",".join(map(str, seeds))}')
  paths = tables.write_tables(rows, out_dir, title=title, notes=notes)
  print(title)
  print(tables.format_table(rows))
  if len(seeds) > 1:
    print(_seed_lines(rows_per_seed, seeds))
  print(f"tables: {', '.join(str(path) for path in paths.values())}")
  return summarize(rows)


def _evaluate_style(workdir: str, task: str, *, data: str | None, sigma: float | None, seeds: Sequence[int],
                    out: str | None, overwrite: bool) -> dict:
  """A style workdir's evaluation (`style_eval`); noise options do not apply to it."""
  if sigma is not None or list(seeds) != [0]:
    raise CnnreconError(f'{workdir} holds a {task} net, which takes no noise: leave out --sigma and --seed(s)')
  # Imported here: style_eval reads `source_images` from this module.
  from cnnrecon.evaluation.style_eval import evaluate_style_workdir
  return evaluate_style_workdir(workdir, task, data=data, out=out, overwrite=overwrite)


def _trained_restorer(model: TrainedModel) -> Callable[[np.ndarray], np.ndarray]:
  task = task_of(model.config)
  return lambda image: model(np.asarray(task.operator.initial_estimate(image))[None])[0]


def _restorer(workdir: str | None, exported: str | None) -> tuple[Callable[[np.ndarray], np.ndarray], int, Any]:
  """`(restore(HWC observation) -> HWC estimate, channels, the loaded model)` of a workdir or an export."""
  if (workdir is None) == (exported is None):
    raise CnnreconError('give the model as either --workdir (a trained run) or --exported (an export directory)')
  if workdir is not None:
    model = load_trained(workdir)
    return _trained_restorer(model), model.config.data.channels, model
  model = load(exported)  # checks its sha256 sums
  task = model.task if isinstance(model, ExportedModel) else model.config.task.name
  if task in PERCEPTUAL_LOSSES:
    raise CnnreconError(f'{exported} holds a {task} net, which stylizes rather than restores: use '
                        f'`cnnrecon stylize CONTENT --method {"fast" if task == "fast_style" else task} '
                        f'--exported {exported} --out DIR`')
  if not isinstance(model, ExportedModel):
    return _trained_restorer(model), model.config.data.channels, model
  # The export holds the task's initial estimate: it maps observations to estimates.
  return (lambda image: model(image[None])[0]), model.manifest['inputs'][0]['size'], model


def restore_files(paths: Sequence[str], *, out: str, workdir: str | None = None, exported: str | None = None,
                  overwrite: bool = False) -> list[pathlib.Path]:
  """Restores each image file with a trained model (a workdir or an export) and writes `<out>/<stem>.png`.

  The files are observations (e.g. noisy photos); the task's initial estimate
  maps them to the model's input. Every input is read and every output name
  checked before anything is written, so a bad file changes nothing; an
  output never replaces an input or an existing file (unless `overwrite`),
  and same-named inputs from different folders get `x.png`, `x-2.png`.

  Returns:
    The written paths.
  """
  targets = safety.output_paths(paths, pathlib.Path(out), overwrite=overwrite)
  restore, channels, model = _restorer(workdir, exported)
  images = [read_image(path, channels=channels) for path in paths]
  if isinstance(model, ExportedModel):  # an export states which image sides its architecture takes
    for path, image in zip(paths, images):
      check_image_sides(model.manifest['spatial'], model.manifest['model']['name'], path, *image.shape[:2])
  written = []
  for image, target in zip(images, targets):
    write_image(target, restore(image).clip(0.0, 1.0))
    written.append(target)
    print(target)
  return written
