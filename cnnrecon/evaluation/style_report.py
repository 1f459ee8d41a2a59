"""The final report of a style training run: styles on held-out content, with the training loss's terms.

Fast style: each trained style. AdaIN: a few training styles and the shipped
paintings it was not trained on (unseen styles, which only AdaIN can render).
"""

import json
import pathlib
from typing import Any, Sequence

import ml_collections
import numpy as np

from cnnrecon.data.grids import image_grid
from cnnrecon.data.images import PAINTINGS
from cnnrecon.data.pipeline import center_crop
from cnnrecon.evaluation import report
from cnnrecon.evaluation.workdir import source_images
from cnnrecon.io import write_file_atomic
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.fast import FastNet, stylize_and_score
from cnnrecon.train.adain_loss import style_files
from cnnrecon.train.perceptual import read_styles, resize_short_side

# Training styles shown in an AdaIN report (a folder of styles may hold thousands).
ADAIN_TRAINED_SHOWN = 3


def _write_style_report(config: ml_collections.ConfigDict, workdir: pathlib.Path, rows: dict, columns: list,
                        config_summary: dict, *, table: list[str], convention: str, wall_time_s: float,
                        images_per_second: float | None) -> pathlib.Path:
  """Writes `eval/summary.json` (`rows`), `grid.png` (`columns`: content, then one per style),
  `loss_curve.png` and `report.md` with the style loss `table`."""
  (workdir / 'eval').mkdir(exist_ok=True)
  write_file_atomic(workdir / 'eval' / 'summary.json', json.dumps(rows, indent=1) + '\n')
  grid_png = report.save_png(workdir / 'grid.png', image_grid(columns, titles=['content', *rows]))
  curve_png = report.plot_loss_curve(workdir / 'metrics.jsonl', workdir / 'loss_curve.png')
  return report.write_report(
      workdir, config_summary=config_summary, rows_summary=rows, grid_png=str(grid_png), curve_png=str(curve_png),
      wall_time_s=wall_time_s, steps=config.train.steps, images_per_second=images_per_second,
      convention=convention, results_lines=table)


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
  options = config.task.fast_style
  summary = report.run_summary(
      config, model=f'{config.model.name} ({config.model.depth} residual blocks, {config.model.features} features)',
      task=f'fast_style: {", ".join(options.styles)}; weights content {options.content_weight}, '
           f'style {options.style_weight}, TV {options.tv_weight}; features {options.features}')
  return _write_style_report(
      config, workdir, rows, columns, summary, table=_loss_table(rows), wall_time_s=wall_time_s,
      images_per_second=images_per_second,
      convention=f'the training loss\'s terms (unweighted) on {len(contents)} held-out '
                 f'{config.data.eval_crop}px crops of {config.data.eval}')


def adain_styles(config: ml_collections.ConfigDict) -> list[tuple[pathlib.Path, bool, np.ndarray]]:
  """(file, seen in training, image) for a few training styles and every shipped painting not trained on.

  The images are read as in training: short side `task.adain.style_size`, center square.
  """
  trained = style_files(config.task.adain.styles)
  seen = {path.resolve() for path in trained}
  unseen = [path for path in sorted(PAINTINGS.glob('*.jpg')) if path.resolve() not in seen]
  chosen = [(path, True) for path in trained[:ADAIN_TRAINED_SHOWN]] + [(path, False) for path in unseen]
  side = config.task.adain.style_size
  return [(path, was_seen, center_crop(image, side))
          for (path, was_seen), image in zip(chosen, read_styles([path for path, _ in chosen], side))]


def _adain_table(rows: dict[str, dict[str, float]]) -> list[str]:
  lines = ['| style | in training | content loss | style loss | ms per image |', '|---|---|---:|---:|---:|']
  for style, row in rows.items():
    lines.append(f"| {style} | {'yes' if row['seen'] else 'no (unseen)'} | {row['content']:.4g} | "
                 f"{row['style']:.4g} | {1000 * row['seconds']:.1f} |")
  return lines


def write_adain_report(config: ml_collections.ConfigDict, workdir: pathlib.Path, host_state: Any,
                       eval_source: Sequence, *, wall_time_s: float,
                       images_per_second: float | None = None) -> pathlib.Path:
  """Stylizes the validation images (center crops of `data.eval_crop`) with training and unseen styles.

  Styles are read as in training (short side `task.adain.style_size`, center
  square). Writes `<workdir>/eval/summary.json` (mean content / style loss and
  time per style), `grid.png` (a row of styles over content | one column per
  style), `loss_curve.png` and `report.md`.
  """
  net = AdaINNet(config=config, step=int(host_state.step),
                 variables={'params': host_state.params, 'batch_stats': host_state.batch_stats})
  crop = config.data.eval_crop
  contents = [center_crop(image, crop) for _, image in source_images(eval_source, 3)[:config.report.grid_examples]]
  rows, columns = {}, [np.stack([np.ones_like(contents[0]), *contents])]
  for path, seen, style in adain_styles(config):
    scored = [net.score(content, [style], [1.0]) for content in contents]
    shown = center_crop(resize_short_side(style, crop), crop)
    columns.append(np.stack([shown, *[result for result, _ in scored]]))
    rows[path.stem] = {'seen': seen, **{key: float(np.mean([parts[key] for _, parts in scored]))
                                        for key in ('content', 'style', 'seconds')}}
  options = config.task.adain
  summary = report.run_summary(
      config, model=f'{config.model.name} ({config.model.features} features: '
                    f'{4 * config.model.features}/{2 * config.model.features}/{config.model.features})',
      task=f'adain: {", ".join(options.styles)} at {options.style_size}px; style weight {options.style_weight}; '
           f'AdaIN at {options.content_layer}; features {options.features}')
  return _write_style_report(
      config, workdir, rows, columns, summary, table=_adain_table(rows), wall_time_s=wall_time_s,
      images_per_second=images_per_second,
      convention=f'the training loss\'s terms (unweighted; alpha 1) on {len(contents)} held-out {crop}px crops of '
                 f'{config.data.eval}; the top row shows each style; "ms per image" is encoding, AdaIN and '
                 'decoding after a compiling call')
