"""Per-image PSNR/SSIM and the result tables of an evaluation run.

Evaluation metrics come from `skimage.metrics` (not `cnnrecon.metrics`) so the
numbers are directly comparable with the denoising literature: PSNR with data
range 1 on [0, 1] images, SSIM with the Wang et al. settings (Gaussian window
sigma 1.5, population covariance, channels averaged).

Protocol: estimates (model and baselines) are clipped to [0, 1] before the
metrics, as a saved image would be; the 'noisy' row is NOT clipped, so it
measures the actual degradation that was fed to the model (clipping the
noise would make the noisy PSNR look better than the input really is).

Results are plain dicts `rows[method][image] = {"psnr": float, "ssim": float}`;
method 'model' is the network, 'noisy' the input, any other a baseline.
"""

import csv
import io
import json
import os
import pathlib
from typing import Iterable, Mapping, Sequence
import uuid

import numpy as np
from skimage import metrics as skmetrics

MODEL = 'model'
NOISY = 'noisy'
AVERAGE = 'Average'

Rows = Mapping[str, Mapping[str, Mapping[str, float]]]


def image_metrics(clean: np.ndarray, estimate: np.ndarray, *,
                  clip_estimate: bool = True) -> dict[str, float]:
  """PSNR and SSIM of one HxWxC image against its clean reference.

  Args:
    clean: reference image HxWxC in [0, 1].
    estimate: image to score, same shape.
    clip_estimate: clip `estimate` to [0, 1] first; pass False for the
      'noisy' row (see module docstring).

  Returns:
    {"psnr": dB, "ssim": in [-1, 1]}; PSNR is inf for an exact match.
  """
  clean = np.asarray(clean, dtype=np.float64)
  estimate = np.asarray(estimate, dtype=np.float64)
  if clip_estimate:
    estimate = np.clip(estimate, 0.0, 1.0)
  psnr = skmetrics.peak_signal_noise_ratio(clean, estimate, data_range=1.0)
  ssim = skmetrics.structural_similarity(
      clean, estimate, data_range=1.0, gaussian_weights=True, sigma=1.5,
      use_sample_covariance=False, channel_axis=-1)
  return {'psnr': float(psnr), 'ssim': float(ssim)}


def method_order(methods: Iterable[str]) -> list[str]:
  """Orders methods for display: 'noisy' first, then baselines, 'model' last.

  Args:
    methods: method names (baselines keep their given order).

  Returns:
    The names in display order.
  """
  methods = list(methods)
  middle = [m for m in methods if m not in (NOISY, MODEL)]
  return ([NOISY] if NOISY in methods else []) + middle + (
      [MODEL] if MODEL in methods else [])


def _image_names(rows: Rows) -> list[str]:
  """Image names shared by all methods, in first-seen order."""
  names = list(dict.fromkeys(n for per_image in rows.values() for n in per_image))
  for method, per_image in rows.items():
    missing = [n for n in names if n not in per_image]
    if missing:
      raise ValueError(f'method {method!r} has no result for images {missing}')
  return names


def summarize(rows: Rows) -> dict[str, dict[str, float]]:
  """Mean PSNR and SSIM over images, per method.

  Args:
    rows: `rows[method][image] = {"psnr", "ssim"}`.

  Returns:
    `{method: {"psnr": mean, "ssim": mean}}`.
  """
  return {
      method: {key: float(np.mean([m[key] for m in per_image.values()]))
               for key in ('psnr', 'ssim')}
      for method, per_image in rows.items()
  }


def summarize_seeds(rows_per_seed: Sequence[Rows]) -> dict[str, dict[str, float]]:
  """Mean and spread over noise seeds of the per-seed image averages.

  Args:
    rows_per_seed: one `rows` structure per noise seed.

  Returns:
    `{method: {"psnr_mean", "psnr_std", "ssim_mean", "ssim_std"}}`; std is the
    sample standard deviation (ddof=1) across seeds, 0.0 for a single seed.
  """
  if not rows_per_seed:
    raise ValueError('summarize_seeds needs the rows of at least one seed')
  summaries = [summarize(rows) for rows in rows_per_seed]
  out = {}
  for method in summaries[0]:
    out[method] = {}
    for key in ('psnr', 'ssim'):
      values = np.array([s[method][key] for s in summaries])
      out[method][f'{key}_mean'] = float(values.mean())
      out[method][f'{key}_std'] = float(values.std(ddof=1) if len(values) > 1 else 0)
  return out


def summary_json(rows: Rows) -> dict:
  """The `summary.json` structure.

  Args:
    rows: `rows[method][image] = {"psnr", "ssim"}`.

  Returns:
    `{"model": {"psnr", "ssim"}, "noisy": {...}, "baselines": {name: {...}}}`;
    'model' / 'noisy' appear only when present in `rows`.
  """
  summary = summarize(rows)
  out = {name: summary[name] for name in (MODEL, NOISY) if name in summary}
  out['baselines'] = {m: summary[m] for m in method_order(summary)
                      if m not in (MODEL, NOISY)}
  return out


def format_table(rows: Rows) -> str:
  """Fixed-width per-image table (cells 'PSNR / SSIM') for the terminal.

  Args:
    rows: `rows[method][image] = {"psnr", "ssim"}`.

  Returns:
    The table as one string, an Average row last.
  """
  methods = method_order(rows)
  summary = summarize(rows)
  cells = [['image'] + methods]
  for name in _image_names(rows):
    cells.append([name] + [_cell(rows[m][name]) for m in methods])
  cells.append([AVERAGE] + [_cell(summary[m]) for m in methods])
  widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
  lines = ['  '.join(c.rjust(w) if i else c.ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths)))
           for row in cells]
  lines.insert(1, '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def _cell(m: Mapping[str, float]) -> str:
  return f"{m['psnr']:.2f} / {m['ssim']:.4f}"


def _markdown(rows: Rows, title: str, notes: str | None) -> str:
  """Per-image and summary Markdown tables."""
  methods = method_order(rows)
  summary = summarize(rows)
  lines = [f'# {title}', '']
  if notes:
    lines += [notes, '']
  lines += ['## Per image (PSNR dB / SSIM)', '',
            '| image | ' + ' | '.join(methods) + ' |',
            '|---|' + '---:|' * len(methods)]
  for name in _image_names(rows):
    lines.append(f'| {name} | ' + ' | '.join(_cell(rows[m][name]) for m in methods) + ' |')
  lines.append(f'| **{AVERAGE}** | ' + ' | '.join(
      f'**{_cell(summary[m])}**' for m in methods) + ' |')
  lines += ['', '## Summary', '', '| method | PSNR (dB) | SSIM |', '|---|---:|---:|']
  lines += [f"| {m} | {summary[m]['psnr']:.2f} | {summary[m]['ssim']:.4f} |"
            for m in methods]
  return '\n'.join(lines) + '\n'


def _csv(rows: Rows) -> str:
  """Long-format CSV: one line per (image, method), then per-method averages."""
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(['image', 'method', 'psnr', 'ssim'])
  methods = method_order(rows)
  for name in _image_names(rows):
    for m in methods:
      writer.writerow([name, m, f"{rows[m][name]['psnr']:.4f}",
                       f"{rows[m][name]['ssim']:.6f}"])
  summary = summarize(rows)
  for m in methods:
    writer.writerow([AVERAGE, m, f"{summary[m]['psnr']:.4f}", f"{summary[m]['ssim']:.6f}"])
  return buffer.getvalue()


def write_file_atomic(path: str | os.PathLike, content: str | bytes) -> pathlib.Path:
  """Writes via a temporary file and `os.replace`: never a half-written file.

  Args:
    path: destination; its parent folder is created if needed.
    content: text (written as UTF-8) or bytes.

  Returns:
    The destination as a `pathlib.Path`.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  data = content.encode('utf-8') if isinstance(content, str) else content
  # Same folder so os.replace is a rename; plain open (not mkstemp) so the
  # file gets the usual umask permissions instead of 0600.
  tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex}.tmp')
  try:
    with open(tmp, 'xb') as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise
  return path


def write_tables(rows: Rows, out_dir: str | os.PathLike, *, title: str,
                 notes: str | None = None) -> dict[str, pathlib.Path]:
  """Writes results.md, results.csv and summary.json into `out_dir`.

  Args:
    rows: `rows[method][image] = {"psnr", "ssim"}`; every method must cover
      the same images.
    out_dir: folder, created if missing.
    title: Markdown heading (say the task, dataset and noise level).
    notes: optional Markdown paragraph under the title (e.g. the protocol).

  Returns:
    {"markdown": path, "csv": path, "summary": path}.
  """
  out_dir = pathlib.Path(out_dir)
  return {
      'markdown': write_file_atomic(out_dir / 'results.md', _markdown(rows, title, notes)),
      'csv': write_file_atomic(out_dir / 'results.csv', _csv(rows)),
      'summary': write_file_atomic(
          out_dir / 'summary.json', json.dumps(summary_json(rows), indent=2) + '\n'),
  }
