"""A sweep's tables and plots: one row per run, mean ± std over seeds, metric vs each swept value.

`results.csv` holds only what a rerun of the sweep reproduces bit for bit on
CPU (overrides, metrics, steps, parameter count, FLOPs); `results.md` adds each
run's wall time. Reads every run's workdir; runs without a checkpoint yet are
listed as remaining.
"""

import csv
import io
import json
import math
import pathlib
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation.report import save_figure
from cnnrecon.io import read_jsonl, write_file_atomic
from cnnrecon.sweep.run import SWEEP_FILE, read_status, run_name, value_text

METRICS = ('best_val_psnr', 'final_val_psnr', 'psnr', 'ssim', 'final_val_loss')
CSV_COLUMNS = ('run', 'status', 'steps', 'params', 'flops_per_image', *METRICS)


def _metrics(workdir: pathlib.Path) -> dict[str, float]:
  """Validation PSNR (best, last) and loss (last) from metrics.jsonl; PSNR / SSIM of the final report."""
  records = read_jsonl(workdir / 'metrics.jsonl') if (workdir / 'metrics.jsonl').is_file() else []
  psnrs = [r['eval/psnr'] for r in records if 'eval/psnr' in r]
  losses = [r['eval/loss'] for r in records if 'eval/loss' in r]
  walls = [r['train/wall_time_s'] for r in records if 'train/wall_time_s' in r]
  summary_path = workdir / 'eval' / 'summary.json'
  final = json.loads(summary_path.read_text()).get('model', {}) if summary_path.is_file() else {}
  return {'best_val_psnr': max(psnrs, default=math.nan), 'final_val_psnr': psnrs[-1] if psnrs else math.nan,
          'psnr': final.get('psnr', math.nan), 'ssim': final.get('ssim', math.nan),
          'final_val_loss': losses[-1] if losses else math.nan, 'wall_time_s': walls[-1] if walls else math.nan}


def collect_rows(root: pathlib.Path) -> tuple[list[dict], list[dict]]:
  """(one row per run of the sweep, the run override dicts) read from `<root>`."""
  if not (root / SWEEP_FILE).is_file():
    raise CnnreconError(f'{root} holds no {SWEEP_FILE}: pass the --root a `cnnrecon sweep` wrote')
  try:
    runs = json.loads((root / SWEEP_FILE).read_text())['runs']
  except (ValueError, KeyError, TypeError) as error:
    raise CnnreconError(f'{root / SWEEP_FILE} is not one cnnrecon wrote ({type(error).__name__}): pass the '
                        '--root a `cnnrecon sweep` wrote') from None
  rows = []
  for overrides in runs:
    name = run_name(overrides)
    workdir = root / name
    status = read_status(workdir) or {'status': 'remaining'}
    flops = status.get('flops_per_image')
    rows.append({'run': name, 'overrides': overrides, 'status': status['status'], 'error': status.get('error', ''),
                 'steps': status.get('step', ''), 'params': status.get('params', ''),
                 'flops_per_image': math.nan if flops is None else flops, **_metrics(workdir)})
  return rows, runs


def _number(value: Any, digits: int = 4) -> str:
  if isinstance(value, float):
    return '' if math.isnan(value) else f'{value:.{digits}g}'
  return str(value)


def seed_groups(rows: list[dict]) -> dict[str, list[dict]]:
  """Finished runs grouped by their overrides other than `seed`."""
  groups: dict[str, list[dict]] = {}
  for row in rows:
    if row['status'] == 'finished':
      rest = {key: value for key, value in row['overrides'].items() if key != 'seed'}
      groups.setdefault(run_name(rest), []).append(row)
  return groups


def _mean_std(values: list[float]) -> str:
  values = [v for v in values if not math.isnan(v)]
  if not values:
    return ''
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return f'{np.mean(values):.3f} ± {std:.3f}'


def _csv(rows: list[dict], keys: list[str]) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow([*keys, *CSV_COLUMNS])
  for row in rows:
    writer.writerow([_number(row['overrides'].get(key, ''), 8) for key in keys] +
                    [_number(row[column], 8) for column in CSV_COLUMNS])
  return buffer.getvalue()


def _markdown(rows: list[dict], keys: list[str], root: pathlib.Path) -> str:
  counts = {status: sum(row['status'] == status for row in rows) for status in ('finished', 'failed', 'remaining')}
  lines = [f'# Sweep {root.name}', '', f"{counts['finished']} finished, {counts['failed']} failed, "
           f"{counts['remaining']} remaining of {len(rows)} runs.", '',
           '| ' + ' | '.join([*keys, 'status', 'best val PSNR', 'final val PSNR', 'PSNR', 'SSIM', 'steps',
                             'wall s', 'params', 'GFLOP/image']) + ' |', '|' + '---|' * (len(keys) + 9)]
  for row in rows:
    status = row['status'] + (f": {row['error']}" if row['error'] else '')
    cells = [_number(row['overrides'].get(key, '')) for key in keys] + [
        status, _number(row['best_val_psnr']), _number(row['final_val_psnr']), _number(row['psnr']),
        _number(row['ssim']), str(row['steps']), _number(row['wall_time_s'], 3), str(row['params']),
        _number(row['flops_per_image'] / 1e9)]
    lines.append('| ' + ' | '.join(cells) + ' |')
  groups = seed_groups(rows)
  if any(len(group) > 1 for group in groups.values()):
    lines += ['', '## Mean ± std over seeds (sample std)', '', '| runs | seeds | PSNR | SSIM | best val PSNR |',
              '|---|---:|---:|---:|---:|']
    lines += [f"| {name} | {len(group)} | {_mean_std([r['psnr'] for r in group])} | "
              f"{_mean_std([r['ssim'] for r in group])} | {_mean_std([r['best_val_psnr'] for r in group])} |"
              for name, group in groups.items()]
  return '\n'.join(lines) + '\n'


def _is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def plot_metric_vs_values(rows: list[dict], key: str, path: pathlib.Path, metric: str = 'psnr') -> pathlib.Path:
  """Mean ± std of `metric` over the finished runs at each value of swept `key` (error bars)."""
  present = {json.dumps(row['overrides'][key]) for row in rows if key in row['overrides']}
  # Numbers in numeric order (5, 10, 17; not "10" < "17" < "5"), other values as text.
  values = sorted(present, key=lambda text: (0, json.loads(text), '') if _is_number(json.loads(text)) else (1, 0, text))
  means, stds = [], []
  for value in values:
    got = [row[metric] for row in rows if row['status'] == 'finished' and json.dumps(row['overrides'].get(key)) == value
           and not math.isnan(row[metric])]
    means.append(np.mean(got) if got else math.nan)
    stds.append(np.std(got, ddof=1) if len(got) > 1 else 0.0)
  decoded = [json.loads(value) for value in values]
  labels = [value_text(value) for value in decoded]
  numeric = all(map(_is_number, decoded))
  fig = Figure(figsize=(max(5, 1.3 * len(values)), 3.8), layout='constrained')
  FigureCanvasAgg(fig)
  axis = fig.subplots()
  # A line joins numeric values only: between categories (losses, layer sets) it would suggest an order.
  axis.errorbar(range(len(values)), means, yerr=stds, marker='o', capsize=4, linestyle='-' if numeric else 'none')
  axis.set_xticks(range(len(values)), labels, rotation=20 if max(map(len, labels)) > 10 else 0,
                  ha='right' if max(map(len, labels)) > 10 else 'center', fontsize=8)
  axis.set(xlabel=key, ylabel=f'{metric} (mean ± std)', title=f'{metric} vs {key.rsplit(".", 1)[-1]}')
  axis.grid(True, alpha=0.3)
  return save_figure(fig, path)


def plot_curves(root: pathlib.Path, rows: list[dict], path: pathlib.Path) -> pathlib.Path:
  """Validation PSNR against step, one line per run; validation loss when the runs log no PSNR."""
  fig = Figure(figsize=(8, 4.5), layout='constrained')
  FigureCanvasAgg(fig)
  axis = fig.subplots()
  axis.set_prop_cycle(color=[colormaps['tab20'](index % 20) for index in range(len(rows))])  # 10 colours repeat
  for row in rows:
    metrics_path = root / row['run'] / 'metrics.jsonl'
    records = read_jsonl(metrics_path) if metrics_path.is_file() else []
    key = 'eval/psnr' if any('eval/psnr' in r for r in records) else 'eval/loss'
    points = [(r['step'], r[key]) for r in records if key in r]
    if points:
      axis.plot(*zip(*points), marker='.', label=row['run'])
      label = 'validation PSNR (dB)' if key == 'eval/psnr' else 'validation loss'
  if axis.has_data():
    axis.legend(fontsize=7)
    axis.set(ylabel=label)
  axis.set(xlabel='step', title='Validation curves')
  axis.grid(True, alpha=0.3)
  return save_figure(fig, path)


def sweep_report(root: str | pathlib.Path) -> dict[str, pathlib.Path]:
  """Writes `<root>/results.csv`, `results.md`, `curves.png` and `<metric>_vs_<key>.png` per swept key.

  The metric is the final report's PSNR, or the final validation loss when no run reports a PSNR.
  """
  root = pathlib.Path(root)
  rows, runs = collect_rows(root)
  keys = list(dict.fromkeys(key for run in runs for key in run))
  paths = {'csv': write_file_atomic(root / 'results.csv', _csv(rows, keys)),
           'md': write_file_atomic(root / 'results.md', _markdown(rows, keys, root)),
           'curves': plot_curves(root, rows, root / 'curves.png')}
  finished = [row['overrides'] for row in rows if row['status'] == 'finished']
  # Runs whose report has no PSNR (style tasks) are plotted by their final validation loss.
  metric = 'psnr' if any(not math.isnan(row['psnr']) for row in rows) else 'final_val_loss'
  for key in keys:
    if key != 'seed' and len({json.dumps(run[key]) for run in finished if key in run}) > 1:
      paths[key] = plot_metric_vs_values(rows, key, root / f"{metric}_vs_{key.replace('.', '_')}.png", metric)
  return paths
