"""Pictures and the Markdown report of a run: image grids, loss curves, report.md."""

import io
import os
import pathlib
from typing import Iterable, Mapping, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import util as skutil

from cnnrecon.config import flatten
from cnnrecon.evaluate import NOISY, write_file_atomic
from cnnrecon.train.metric_writer import read_records

SEPARATOR_PX = 2


def image_grid(columns: Sequence[np.ndarray], *,
               titles: Sequence[str] | None = None) -> np.ndarray:
  """Lays out batches side by side: one row per example, one column per batch.

  Args:
    columns: NHWC batches with equal N, H and W (e.g. noisy, denoised, clean);
      C is 1 or 3, values are clipped to [0, 1].
    titles: optional column titles drawn in a band above the grid.

  Returns:
    uint8 RGB image of shape (N*(H+2)+2 [+ title band], K*(W+2)+2, 3) for K
    columns, with white 2-px separators and border.
  """
  batches = [_as_rgb_batch(c) for c in columns]
  if not batches or any(b.shape != batches[0].shape for b in batches):
    raise ValueError(f'image_grid needs >= 1 batch, all the same NHW; got '
                     f'{[np.shape(c) for c in columns]}')
  if titles is not None and len(titles) != len(batches):
    raise ValueError(f'got {len(titles)} titles for {len(batches)} columns')
  n, height, width, _ = batches[0].shape
  # Row-major order (example, column) is what montage fills its grid with.
  tiles = np.stack(batches, axis=1).reshape(n * len(batches), height, width, 3)
  grid = skutil.montage(tiles, grid_shape=(n, len(batches)), fill=(1.0, 1.0, 1.0),
                        padding_width=SEPARATOR_PX, channel_axis=-1)
  grid = np.round(grid * 255.0).astype(np.uint8)
  return _add_titles(grid, titles, width) if titles else grid


def _as_rgb_batch(batch: np.ndarray) -> np.ndarray:
  batch = np.clip(np.asarray(batch, dtype=np.float32), 0.0, 1.0)
  if batch.ndim != 4 or batch.shape[-1] not in (1, 3):
    raise ValueError(f'image_grid columns must be NHWC with C=1 or 3, got {batch.shape}')
  return np.repeat(batch, 3, axis=-1) if batch.shape[-1] == 1 else batch


def _add_titles(grid: np.ndarray, titles: Sequence[str], tile_width: int) -> np.ndarray:
  """Prepends a white band with each title centred over its column."""
  font = ImageFont.load_default()
  band_height = max(font.getbbox(t)[3] for t in titles) + 2 * SEPARATOR_PX + 2
  canvas = Image.new('RGB', (grid.shape[1], grid.shape[0] + band_height), 'white')
  canvas.paste(Image.fromarray(grid), (0, band_height))
  draw = ImageDraw.Draw(canvas)
  for j, title in enumerate(titles):
    left, _, right, _ = font.getbbox(title)
    x = SEPARATOR_PX + j * (tile_width + SEPARATOR_PX) + (tile_width - (right - left)) // 2
    draw.text((x, SEPARATOR_PX), title, fill='black', font=font)
  return np.asarray(canvas)


def save_png(path: str | os.PathLike, image: np.ndarray) -> pathlib.Path:
  """Saves a uint8 HxW, HxWx1 or HxWx3 image as PNG, atomically.

  Args:
    path: destination file; its folder is created if needed.
    image: uint8 array (see `image_grid`).

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
  records = read_records(pathlib.Path(metrics_jsonl_path))
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
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png', dpi=100)
  return write_file_atomic(out_png, buffer.getvalue())


def _config_table(config_summary: Mapping) -> list[str]:
  lines = ['| key | value |', '|---|---|']
  for key, value in flatten(config_summary).items():
    escaped = str(value).replace('|', r'\|')  # a bare pipe would split the cell
    lines.append(f'| {key} | {escaped} |')
  return lines


def _results_table(rows_summary: Mapping[str, Mapping[str, float]]) -> list[str]:
  """Methods sorted by PSNR (best first) with gains over the noisy input."""
  noisy = rows_summary.get(NOISY)
  lines = ['| method | PSNR (dB) | SSIM | ΔPSNR vs noisy | ΔSSIM vs noisy |',
           '|---|---:|---:|---:|---:|']
  for method, m in sorted(rows_summary.items(), key=lambda kv: -kv[1]['psnr']):
    deltas = (f"{m['psnr'] - noisy['psnr']:+.2f} | {m['ssim'] - noisy['ssim']:+.4f}"
              if noisy else '– | –')
    lines.append(f"| {method} | {m['psnr']:.2f} | {m['ssim']:.4f} | {deltas} |")
  return lines


def _image_link(workdir: pathlib.Path, png: str | None, alt: str) -> list[str]:
  if not png:
    return []
  return [f'![{alt}]({pathlib.Path(os.path.relpath(png, workdir)).as_posix()})', '']


def write_report(workdir: str | os.PathLike, *, config_summary: dict,
                 rows_summary: dict, grid_png: str | None, curve_png: str | None,
                 wall_time_s: float, steps: int, extra_lines: Iterable[str] = (),
                 images_per_second: float | None = None) -> pathlib.Path:
  """Writes `<workdir>/report.md`: config, result table, pictures, timing.

  Args:
    workdir: run folder; PNG links are made relative to it.
    config_summary: key/value pairs to show (nested dicts are flattened).
    rows_summary: `{method: {"psnr", "ssim"}}` as from `evaluate.summarize`.
    grid_png: path of the image grid PNG, or None.
    curve_png: path of the loss curve PNG, or None.
    wall_time_s: training wall time in seconds.
    steps: number of training steps run.
    extra_lines: Markdown lines appended at the end (notes, protocol).
    images_per_second: training throughput, shown when given.

  Returns:
    Path of report.md.
  """
  workdir = pathlib.Path(workdir)
  lines = [f'# cnnrecon run report: {workdir.name}', '', '## Configuration', '']
  lines += _config_table(config_summary)
  lines += ['', '## Results', ''] + _results_table(rows_summary) + ['']
  lines += _image_link(workdir, grid_png, 'example images')
  lines += _image_link(workdir, curve_png, 'training curves')
  lines += ['## Training', '', f'- steps: {steps}',
            f'- wall time: {wall_time_s:.1f} s'
            + (f' ({wall_time_s / steps:.3f} s/step)' if steps else '')]
  if images_per_second is not None:
    lines.append(f'- throughput: {images_per_second:.1f} images/s')
  extra_lines = list(extra_lines)
  if extra_lines:
    lines += [''] + extra_lines
  return write_file_atomic(workdir / 'report.md', '\n'.join(lines) + '\n')
