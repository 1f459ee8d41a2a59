"""`cnnrecon eval` for style workdirs: the training loss's terms on every image of a dataset, per style.

A style net has no ground truth to compute PSNR against, so its evaluation is
the loss it was trained to minimise (unweighted content / style / TV terms) on
held-out content, with the forward time per image. Fast nets are scored in
each trained style; AdaIN decoders with a few training styles and every shipped
painting they were not trained on (as in their training report).
"""

import csv
import io
import json
import pathlib

import numpy as np

from cnnrecon import safety
from cnnrecon.data.sources import load_source
from cnnrecon.evaluation.style_report import adain_styles
from cnnrecon.evaluation.workdir import source_images
from cnnrecon.io import write_file_atomic
from cnnrecon.style.adain import AdaINNet, load_adain_net
from cnnrecon.style.fast import FastNet, load_fast_net, stylize_and_score

STYLE_TABLE_FILES = ('results.md', 'results.csv', 'summary.json')
TERMS = ('content', 'style', 'tv', 'seconds')


def _fast_rows(net: FastNet, images: list[tuple[str, np.ndarray]]) -> list[dict]:
  rows = []
  for index, style in enumerate(net.styles):
    mix = np.eye(len(net.styles))[index].tolist()
    for (name, _), (_, parts) in zip(images, stylize_and_score(net, [image for _, image in images], mix)):
      rows.append({'image': name, 'style_image': pathlib.Path(style).stem, 'seen': True, **parts})
  return rows


def _adain_rows(net: AdaINNet, images: list[tuple[str, np.ndarray]]) -> list[dict]:
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


def evaluate_style_workdir(workdir: str, task: str, *, data: str | None = None, out: str | None = None,
                           overwrite: bool = False) -> dict[str, dict[str, float]]:
  """Scores a `fast_style` or `adain` workdir on every image of `data` (default: its config's `data.eval`).

  Writes `results.md`, `results.csv` (one row per image and style) and
  `summary.json` (per-style means) to `out` (default: a new `<workdir>/eval-N`).

  Returns:
    Per style: `{'seen', 'content', 'style', 'tv', 'seconds'}` means (AdaIN's loss has no 'tv').
  """
  if out is not None:
    safety.check_results_dir(pathlib.Path(out), STYLE_TABLE_FILES, overwrite=overwrite)
  net = load_fast_net(workdir) if task == 'fast_style' else load_adain_net(workdir)
  spec = data or net.config.data.eval
  images = source_images(load_source(spec, data_dir=net.config.data.data_dir or None), 3)
  rows = _fast_rows(net, images) if task == 'fast_style' else _adain_rows(net, images)
  means = _means(rows)
  title = f'{net.config.model.name} (step {net.step}) on {spec}: {task} losses'
  out_dir = pathlib.Path(out) if out else safety.new_results_dir(pathlib.Path(workdir), 'eval')
  out_dir.mkdir(parents=True, exist_ok=True)  # --out may name a new folder
  write_file_atomic(out_dir / 'results.md', _markdown(rows, means, title))
  write_file_atomic(out_dir / 'results.csv', _csv(rows))
  write_file_atomic(out_dir / 'summary.json', json.dumps(means, indent=1) + '\n')
  print(title)
  print('\n'.join(_style_table(means)))
  print(f'tables: {out_dir / "results.md"}, {out_dir / "results.csv"}, {out_dir / "summary.json"}')
  return means
