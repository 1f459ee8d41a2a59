"""Ablation: how the seed stack's denoising PSNR changes with its depth and width.

The seed stack (`experiments/denoise_seed_stack.py`) is the conv -> ReLU ->
2x2 max-pool encoder and mirrored decoder on 32x32 grayscale patches this
project started from. Depth 1..3 (each level halves the side) x width 16..64,
two seeds each:

    cnnrecon sweep experiments/ablations/seed_stack_depth.py:smoke --root runs/ablate_seed_stack   # CPU, minutes
    cnnrecon sweep experiments/ablations/seed_stack_depth.py --root runs/ablate_seed_stack_gpu     # one GPU

`smoke` trains each run for seconds on the bundled samples (the table is a
plumbing check, not an answer); the base recipe trains 5,000 steps.
"""

import pathlib

from cnnrecon.config import load_config_file
from cnnrecon.sweep import product

BASE = pathlib.Path(__file__).resolve().parents[1] / 'denoise_seed_stack.py'


def get_config(arg=None):
  """The seed-stack denoising recipe; `arg` 'smoke' shrinks it for CPU."""
  if arg not in (None, 'smoke'):
    raise ValueError(f'unknown variant {arg!r}: use smoke or no variant')
  return load_config_file(f'{BASE}:{arg}' if arg else str(BASE))


def get_sweep():
  """Depth x width x seed."""
  return product({'model.depth': [1, 2, 3], 'model.features': [16, 32, 64], 'seed': [0, 1]})
