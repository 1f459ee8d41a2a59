"""How style nets are scored: the training loss's terms on held-out content, per style.

A style net has no ground truth to compute PSNR against, so its evaluation is
the loss it was trained to minimise (unweighted content / style / TV terms) on
held-out content, with the forward time per image. Fast nets are scored in
each trained style; AdaIN decoders with a few training styles and every shipped
painting they were not trained on (unseen styles, which only AdaIN can render).

`evaluate_style_net` is `cnnrecon eval` (every image of a data set);
`fast_style_report` and `adain_report` are the end of training (center crops
of the validation images, with a grid). The evaluation layer writes them.
"""

import csv
import io
import json
import pathlib
from typing import Sequence

import numpy as np

from cnnrecon.data.images import PAINTINGS
from cnnrecon.data.pipeline import center_crop
from cnnrecon.errors import CnnreconError
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.adain_loss import style_files
from cnnrecon.style.fast import FastNet, stylize_and_score
from cnnrecon.style.perceptual import read_styles, resize_short_side
from cnnrecon.tasks import EvaluationRequest, Results

TERMS = ('content', 'style', 'tv', 'seconds')
# Training styles shown in an AdaIN report (a folder of styles may hold thousands).
ADAIN_TRAINED_SHOWN = 3

Image = tuple[str, np.ndarray]


def adain_styles(config) -> list[tuple[pathlib.Path, bool, np.ndarray]]:
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


# ----------------------------------------------------------------------------- `cnnrecon eval`

def _fast_rows(net: FastNet, images: Sequence[Image]) -> list[dict]:
  rows = []
  for index, style in enumerate(net.styles):
    mix = np.eye(len(net.styles))[index].tolist()
    for (name, _), (_, parts) in zip(images, stylize_and_score(net, [image for _, image in images], mix)):
      rows.append({'image': name, 'style_image': pathlib.Path(style).stem, 'seen': True, **parts})
  return rows


def _adain_rows(net: AdaINNet, images: Sequence[Image]) -> list[dict]:
  rows = []
  for path, seen, style in adain_styles(net.config):
    for name, image in images:
      _, parts = net.score(image, [style], [1.0])
      rows.append({'image': name, 'style_image': path.stem, 'seen': seen, **parts})  # no TV term
  return rows


def _means(rows: list[dict]) -> dict[str, dict[str, float]]:
  """Per style image: the mean of each term over content images, and whether training saw the style."""
  means = {}
  for style in dict.fromkeys(row['style_image'] for row in rows):
    mine = [row for row in rows if row['style_image'] == style]
    means[style] = {'seen': mine[0]['seen'], **{term: float(np.mean([row[term] for row in mine]))
                                                for term in TERMS if term in mine[0]}}
  return means


def _number(value: float | None) -> str:
  return '—' if value is None else f'{value:.4g}'  # AdaIN's loss has no TV term


def _style_table(means: dict) -> list[str]:
  lines = ['| style | in training | content loss | style loss | TV | ms per image |', '|---|---|---:|---:|---:|---:|']
  return lines + [f"| {style} | {'yes' if m['seen'] else 'no (unseen)'} | {m['content']:.4g} | {m['style']:.4g} | "
                  f"{_number(m.get('tv'))} | {1000 * m['seconds']:.1f} |" for style, m in means.items()]


def _markdown(rows: list[dict], means: dict, title: str) -> str:
  lines = [f'# {title}', '', 'Unweighted terms of the training loss (lower is better); time is one forward pass '
           'after a compiling call.', '', *_style_table(means), '', '## Per image', '',
           '| image | style | content loss | style loss | TV |', '|---|---|---:|---:|---:|']
  lines += [f"| {r['image']} | {r['style_image']} | {r['content']:.4g} | {r['style']:.4g} | {_number(r.get('tv'))} |"
            for r in rows]
  return '\n'.join(lines) + '\n'


def _csv(rows: list[dict]) -> str:
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(['image', 'style_image', 'seen', 'content_loss', 'style_loss', 'tv', 'seconds'])
  for row in rows:
    writer.writerow([row['image'], row['style_image'], row['seen'],
                     *(f'{row[term]:.6g}' if term in row else '' for term in TERMS)])
  return buffer.getvalue()


def evaluate_style_net(net: FastNet | AdaINNet, images: Sequence[Image], request: EvaluationRequest) -> Results:
  """Scores a fast or AdaIN net on every image: `results.md`, `results.csv` (one row per image and style)
  and `summary.json` (per style: `{'seen', 'content', 'style', 'tv', 'seconds'}` means; AdaIN has no 'tv')."""
  task = net.config.task.name
  if list(request.seeds) != [0]:
    raise CnnreconError(f'this is a {task} net, which takes no noise: leave out --seed and --seeds')
  rows = _fast_rows(net, images) if isinstance(net, FastNet) else _adain_rows(net, images)
  means = _means(rows)
  title = f'{net.config.model.name} (step {net.step}) on {request.data}: {task} losses'
  return Results(files={'results.md': _markdown(rows, means, title), 'results.csv': _csv(rows),
                        'summary.json': json.dumps(means, indent=1) + '\n'},
                 summary=means, terminal='\n'.join([title, *_style_table(means)]))


# ----------------------------------------------------------------------------- the training report

def _contents(config, images: Sequence[Image]) -> list[np.ndarray]:
  return [center_crop(image, config.data.eval_crop) for _, image in images[:config.report.grid_examples]]


def _loss_table(rows: dict[str, dict[str, float]]) -> list[str]:
  lines = ['| style | content loss | style loss | TV | ms per image |', '|---|---:|---:|---:|---:|']
  for style, row in rows.items():
    lines.append(f"| {style} | {row['content']:.4g} | {row['style']:.4g} | {row['tv']:.4g} | "
                 f"{1000 * row['seconds']:.1f} |")
  return lines


def fast_style_report(net: FastNet, images: Sequence[Image]) -> Results:
  """Stylizes the validation images (center crops of `data.eval_crop`) in every trained style.

  Results: `summary.json` (mean content / style / TV loss and forward time
  per style) and a grid content | one column per style.
  """
  config = net.config
  contents = _contents(config, images)
  rows, columns = {}, [np.stack(contents)]
  for index, style in enumerate(net.styles):
    mix = np.eye(len(net.styles))[index].tolist()
    scored = stylize_and_score(net, contents, mix)
    columns.append(np.stack([result for result, _ in scored]))
    rows[pathlib.Path(style).stem] = {key: float(np.mean([parts[key] for _, parts in scored]))
                                      for key in ('content', 'style', 'tv', 'seconds')}
  options = config.task.fast_style
  return Results(
      files={'summary.json': json.dumps(rows, indent=1) + '\n'}, summary=rows, results_lines=_loss_table(rows),
      convention=f'the training loss\'s terms (unweighted) on {len(contents)} held-out '
                 f'{config.data.eval_crop}px crops of {config.data.eval}',
      grid_columns=columns, grid_titles=['content', *rows],
      model_row=f'{config.model.name} ({config.model.depth} residual blocks, {config.model.features} features)',
      task_row=f'fast_style: {", ".join(options.styles)}; weights content {options.content_weight}, '
               f'style {options.style_weight}, TV {options.tv_weight}; features {options.features}')


def _adain_table(rows: dict[str, dict[str, float]]) -> list[str]:
  lines = ['| style | in training | content loss | style loss | ms per image |', '|---|---|---:|---:|---:|']
  for style, row in rows.items():
    lines.append(f"| {style} | {'yes' if row['seen'] else 'no (unseen)'} | {row['content']:.4g} | "
                 f"{row['style']:.4g} | {1000 * row['seconds']:.1f} |")
  return lines


def adain_report(net: AdaINNet, images: Sequence[Image]) -> Results:
  """Stylizes the validation images (center crops of `data.eval_crop`) with training and unseen styles.

  Styles are read as in training (short side `task.adain.style_size`, center
  square). Results: `summary.json` (mean content / style loss and time per
  style) and a grid with a row of styles over content | one column per style.
  """
  config = net.config
  crop = config.data.eval_crop
  contents = _contents(config, images)
  rows, columns = {}, [np.stack([np.ones_like(contents[0]), *contents])]
  for path, seen, style in adain_styles(config):
    scored = [net.score(content, [style], [1.0]) for content in contents]
    shown = center_crop(resize_short_side(style, crop), crop)
    columns.append(np.stack([shown, *[result for result, _ in scored]]))
    rows[path.stem] = {'seen': seen, **{key: float(np.mean([parts[key] for _, parts in scored]))
                                        for key in ('content', 'style', 'seconds')}}
  options = config.task.adain
  return Results(
      files={'summary.json': json.dumps(rows, indent=1) + '\n'}, summary=rows, results_lines=_adain_table(rows),
      convention=f'the training loss\'s terms (unweighted; alpha 1) on {len(contents)} held-out {crop}px crops of '
                 f'{config.data.eval}; the top row shows each style; "ms per image" is encoding, AdaIN and '
                 'decoding after a compiling call',
      grid_columns=columns, grid_titles=['content', *rows],
      model_row=f'{config.model.name} ({config.model.features} features: '
                f'{4 * config.model.features}/{2 * config.model.features}/{config.model.features})',
      task_row=f'adain: {", ".join(options.styles)} at {options.style_size}px; style weight {options.style_weight}; '
               f'AdaIN at {options.content_layer}; features {options.features}')
