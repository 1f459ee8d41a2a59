"""The final report of a fast-style training run: each trained style on held-out content, with its losses."""

import json
import pathlib
from typing import Any, Sequence

import ml_collections
import numpy as np

from cnnrecon.data.grids import image_grid
from cnnrecon.data.pipeline import center_crop
from cnnrecon.evaluation import report
from cnnrecon.evaluation.workdir import source_images
from cnnrecon.io import write_file_atomic
from cnnrecon.style.fast import FastNet, stylize_and_score


def _loss_table(rows: dict[str, dict[str, float]]) -> list[str]:
  lines = ['| style | content loss | style loss | TV | ms per image |', '|---|---:|---:|---:|---:|']
  for style, row in rows.items():
    lines.append(f"| {style} | {row['content']:.4g} | {row['style']:.4g} | {row['tv']:.4g} | "
                 f"{1000 * row['seconds']:.1f} |")
  return lines


def write_fast_style_report(config: ml_collections.ConfigDict, workdir: pathlib.Path, host_state: Any,
                            eval_source: Sequence, *, wall_time_s: float,
                            images_per_second: float | None = None) -> pathlib.Path:
  """Stylizes the validation images (center crops of `data.eval_crop`) in every trained style.

  Writes `<workdir>/eval/summary.json` (mean content / style / TV loss and
  forward time per style), `grid.png` (content | one column per style),
  `loss_curve.png` and `report.md`.
  """
  net = FastNet(config=config, step=int(host_state.step),
                variables={'params': host_state.params, 'batch_stats': host_state.batch_stats})
  contents = [center_crop(image, config.data.eval_crop)
              for _, image in source_images(eval_source, 3)[:config.report.grid_examples]]
  rows, columns = {}, [np.stack(contents)]
  for index, style in enumerate(net.styles):
    mix = np.eye(len(net.styles))[index].tolist()
    scored = stylize_and_score(net, contents, mix)
    columns.append(np.stack([result for result, _ in scored]))
    rows[pathlib.Path(style).stem] = {key: float(np.mean([parts[key] for _, parts in scored]))
                                      for key in ('content', 'style', 'tv', 'seconds')}
  (workdir / 'eval').mkdir(exist_ok=True)
  write_file_atomic(workdir / 'eval' / 'summary.json', json.dumps(rows, indent=1) + '\n')
  grid_png = report.save_png(workdir / 'grid.png', image_grid(columns, titles=['content', *rows]))
  curve_png = report.plot_loss_curve(workdir / 'metrics.jsonl', workdir / 'loss_curve.png')
  options = config.task.fast_style
  config_summary = {'model': f'{config.model.name} ({config.model.depth} residual blocks, '
                             f'{config.model.features} features)',
                    'task': f'fast_style: {", ".join(options.styles)}; weights content {options.content_weight}, '
                            f'style {options.style_weight}, TV {options.tv_weight}; features {options.features}',
                    'train data': config.data.train, 'eval data': config.data.eval,
                    'batch / patch': f'{config.data.batch_size} x {config.data.patch_size}px',
                    'steps': config.train.steps, 'seed': config.seed, 'parallel': config.parallel}
  return report.write_report(
      workdir, config_summary=config_summary, rows_summary=rows, grid_png=str(grid_png), curve_png=str(curve_png),
      wall_time_s=wall_time_s, steps=config.train.steps, images_per_second=images_per_second,
      convention=f'the training loss\'s terms (unweighted) on {len(contents)} held-out '
                 f'{config.data.eval_crop}px crops of {config.data.eval}', results_lines=_loss_table(rows))
