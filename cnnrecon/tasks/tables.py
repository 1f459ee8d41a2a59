"""Result tables of a reconstruction evaluation: terminal table, results.md, results.csv, summary.json.

`rows[method][image] = {"psnr", "ssim"}` come from `tasks.scoring` in
display order (the initial-estimate row first, baselines, the model last);
every table states the scoring convention in its notes. The texts are
returned; the evaluation layer writes them.
"""

import csv
import io
import json
from typing import Mapping

from cnnrecon.tasks.scoring import MODEL, Rows, summarize

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


def table_files(rows: Rows, *, title: str, notes: str | None = None) -> dict[str, str]:
  """The texts of results.md, results.csv and summary.json.

  Args:
    rows: `rows[method][image] = {"psnr", "ssim"}`; every method must cover
      the same images.
    title: Markdown heading (say the task, dataset and noise level).
    notes: optional Markdown paragraph under the title (e.g. the protocol).
  """
  return {'results.md': _markdown(rows, title, notes), 'results.csv': _csv(rows),
          'summary.json': json.dumps(summary_json(rows), indent=2) + '\n'}


def gains_table(rows_summary: Mapping[str, Mapping[str, float]], reference: str | None) -> list[str]:
  """report.md's table: methods sorted by PSNR (best first) with gains over the `reference` row."""
  base = rows_summary.get(reference)
  lines = [f'| method | PSNR (dB) | SSIM | ΔPSNR vs {reference} | ΔSSIM vs {reference} |',
           '|---|---:|---:|---:|---:|']
  for method, m in sorted(rows_summary.items(), key=lambda kv: -kv[1]['psnr']):
    deltas = (f"{m['psnr'] - base['psnr']:+.2f} | {m['ssim'] - base['ssim']:+.4f}"
              if base else '– | –')
    lines.append(f"| {method} | {m['psnr']:.2f} | {m['ssim']:.4f} | {deltas} |")
  return lines
