"""Result tables of an evaluation: terminal table, results.md, results.csv, summary.json.

`rows[method][image] = {"psnr", "ssim"}` come from `evaluation.scoring` in
display order (the observed row first, baselines, the model last); every
table states the scoring convention in its notes.
"""

import csv
import io
import json
import os
import pathlib
from typing import Mapping

from cnnrecon.evaluation.scoring import MODEL, Rows, summarize
from cnnrecon.io import write_file_atomic

AVERAGE = 'Average'
TABLE_FILES = ('results.md', 'results.csv', 'summary.json')


def method_order(rows: Rows) -> list[str]:
  """The methods in display order: as given, with 'model' moved last."""
  methods = list(rows)
  return [m for m in methods if m != MODEL] + ([MODEL] if MODEL in methods else [])


def _image_names(rows: Rows) -> list[str]:
  """Image names shared by all methods, in first-seen order."""
  names = list(dict.fromkeys(n for per_image in rows.values() for n in per_image))
  for method, per_image in rows.items():
    missing = [n for n in names if n not in per_image]
    if missing:
      raise ValueError(f'method {method!r} has no result for images {missing}')
  return names


def summary_json(rows: Rows) -> dict:
  """The `summary.json` structure.

  Returns:
    `{"model": {"psnr", "ssim"}, <observed label>: {...}, "baselines": {name: {...}}}`
    (the observed row is the first method of `rows`).
  """
  summary = summarize(rows)
  methods = method_order(rows)
  observed = methods[0] if methods and methods[0] != MODEL else None
  out = {name: summary[name] for name in (MODEL, observed) if name in summary}
  out['baselines'] = {m: summary[m] for m in methods if m not in (MODEL, observed)}
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
