"""Pictures and the Markdown report of a run: image grids, loss curves, report.md."""

import io
import os
import pathlib
from typing import TYPE_CHECKING, Iterable, Mapping

import numpy as np
from PIL import Image

from cnnrecon.config import flatten
from cnnrecon.io import read_jsonl, write_file_atomic

if TYPE_CHECKING:
  from matplotlib.figure import Figure


def save_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
  """Saves a uint8 HxW, HxWx1 or HxWx3 image as PNG, atomically.

  Args:
    path: destination file; its folder is created if needed.
    image: uint8 array (see `cnnrecon.data.grids.image_grid`).

  Returns:
    The destination as a `pathlib.Path`.
  """
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'save_png takes uint8 images, got {image.dtype}; use image_grid')
  if image.ndim == 3 and image.shape[-1] == 1:
    image = image[..., 0]
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format='PNG')
  return write_file_atomic(path, buffer.getvalue())


def _series(records: Iterable[dict], key: str) -> tuple[list[float], list[float]]:
  points = [(r['step'], r[key]) for r in records if key in r and 'step' in r]
  return [p[0] for p in points], [p[1] for p in points]


def plot_loss_curve(metrics_jsonl_path: str | os.PathLike,
                    out_png: str | os.PathLike) -> pathlib.Path:
  """Plots training loss (log scale) and PSNR against step from metrics.jsonl.

  Args:
    metrics_jsonl_path: JSON lines with "step" and some of "train/loss",
      "train/psnr", "eval/psnr" (eval lines may lack train keys).
    out_png: destination PNG, written atomically.

  Returns:
    The destination as a `pathlib.Path`.
  """
  # Imported here, not at the top: matplotlib takes half a second to import, and every `cnnrecon`
  # command imports this module, and most draw nothing (a run stopped by a signal, export, denoise, eval).
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  records = read_jsonl(metrics_jsonl_path)
  # Figure + Agg canvas, not pyplot: no global state, no display needed.
  fig = Figure(figsize=(10, 3.6), layout='constrained')
  FigureCanvasAgg(fig)
  loss_ax, psnr_ax = fig.subplots(1, 2)
  loss_ax.plot(*_series(records, 'train/loss'), color='tab:blue')
  loss_ax.set(yscale='log', xlabel='step', ylabel='train loss', title='Training loss')
  for key, style in (('train/psnr', dict(alpha=0.5)), ('eval/psnr', dict(marker='o'))):
    steps, values = _series(records, key)
    if steps:
      psnr_ax.plot(steps, values, label=key, **style)
  if psnr_ax.has_data():
    psnr_ax.legend()
  psnr_ax.set(xlabel='step', ylabel='PSNR (dB)', title='PSNR')
  loss_ax.grid(True, which='both', alpha=0.3)
  psnr_ax.grid(True, alpha=0.3)
  return save_figure(fig, out_png)


def save_figure(fig: 'Figure', out_png: str | os.PathLike) -> pathlib.Path:
  """Writes a matplotlib figure as a PNG (100 dpi), atomically."""
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  return write_file_atomic(out_png, buffer.getvalue())


def run_summary(config, *, model: str, task: str) -> dict:
  """The report's configuration rows: `model` and `task` as described by the caller, then data and run."""
  return {'model': model, 'task': task, 'train data': config.data.train, 'eval data': config.data.eval,
          'batch / patch': f'{config.data.batch_size} x {config.data.patch_size}px',
          'steps': config.train.steps, 'seed': config.seed, 'parallel': config.parallel}


def _config_table(config_summary: Mapping) -> list[str]:
  lines = ['| key | value |', '|---|---|']
  for key, value in flatten(config_summary).items():
    escaped = str(value).replace('|', r'\|')  # a bare pipe would split the cell
    lines.append(f'| {key} | {escaped} |')
  return lines


def _image_link(workdir: pathlib.Path, png: str | None, alt: str) -> list[str]:
  if not png:
    return []
  return [f'![{alt}]({pathlib.Path(os.path.relpath(png, workdir)).as_posix()})', '']


def write_report(workdir: str | os.PathLike, *, config_summary: dict, results_lines: list[str],
                 grid_png: str | None, curve_png: str | None, wall_time_s: float, steps: int,
                 convention: str | None = None, images_per_second: float | None = None) -> pathlib.Path:
  """Writes `<workdir>/report.md`: config, result table, pictures, timing.

  Args:
    workdir: run folder; PNG links are made relative to it.
    config_summary: key/value pairs to show (nested dicts are flattened).
    results_lines: the task's Markdown results table (`Results.results_lines`).
    grid_png: path of the image grid PNG, or None.
    curve_png: path of the loss curve PNG, or None.
    wall_time_s: training wall time in seconds.
    steps: number of training steps run.
    convention: how the table was scored, stated under it.
    images_per_second: training throughput, shown when given.

  Returns:
    Path of report.md.
  """
  workdir = pathlib.Path(workdir)
  lines = [f'# cnnrecon run report: {workdir.name}', '', '## Configuration', '']
  lines += _config_table(config_summary)
  lines += ['', '## Results', ''] + list(results_lines) + ['']
  if convention:
    lines += [f'Scored as: {convention}.', '']
  lines += _image_link(workdir, grid_png, 'example images')
  lines += _image_link(workdir, curve_png, 'training curves')
  lines += ['## Training', '', f'- steps: {steps}',
            f'- wall time: {wall_time_s:.1f} s'
            + (f' ({wall_time_s / steps:.3f} s/step)' if steps else '')]
  if images_per_second is not None:
    lines.append(f'- throughput: {images_per_second:.1f} images/s')
  return write_file_atomic(workdir / 'report.md', '\n'.join(lines) + '\n')


def write_results_files(out_dir: str | os.PathLike, files: Mapping[str, str]) -> dict[str, pathlib.Path]:
  """Writes a task's result tables (`Results.files`: name -> text) into `out_dir`, each atomically."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)  # --out may name a new folder
  return {name: write_file_atomic(out_dir / name, text) for name, text in files.items()}
