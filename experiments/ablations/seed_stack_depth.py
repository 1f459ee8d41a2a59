"""Ablation: how the seed stack's denoising PSNR changes with its depth and width.

The seed stack (`experiments/denoise_seed_stack.py`) is the conv -> ReLU ->
2x2 max-pool encoder and mirrored decoder on 32x32 grayscale patches this
project started from. Depth 1..3 (each level halves the side) x width 16..64,
two seeds each:

    cnnrecon sweep experiments/ablations/seed_stack_depth.py:smoke --root runs/ablate_smoke   # seconds a run
    cnnrecon sweep experiments/ablations/seed_stack_depth.py:cpu --root runs/ablate_seed_stack  # ~20 s a run
    cnnrecon sweep experiments/ablations/seed_stack_depth.py --root runs/ablate_seed_stack_gpu  # one GPU

`smoke` trains each run for a few steps (a plumbing check, not an answer);
`cpu` trains 400 steps of 32 x 32 patches (batch 32) on the bundled samples;
the base recipe trains 5,000 steps of batch 64. The runs skip the classical
baselines: the table compares the networks with each other.
"""

import pathlib

from cnnrecon.config import load_config_file
from cnnrecon.sweep import product

BASE = pathlib.Path(__file__).resolve().parents[1] / 'denoise_seed_stack.py'


def get_config(arg=None):
  """The seed-stack denoising recipe; `arg` picks a variant (None, 'cpu', 'smoke')."""
  if arg not in (None, 'cpu', 'smoke'):
    raise ValueError(f'unknown variant {arg!r}: use smoke, cpu or no variant')
  config = load_config_file(f'{BASE}:smoke' if arg == 'smoke' else str(BASE))
  config.report.baselines = False
  if arg == 'cpu':
    config.data.batch_size = 32
    config.train.steps = 400
    config.train.eval_every = 100
    config.train.checkpoint_every = 100
  return config


def get_sweep():
  """Depth x width x seed."""
  return product({'model.depth': [1, 2, 3], 'model.features': [16, 32, 64], 'seed': [0, 1]})
