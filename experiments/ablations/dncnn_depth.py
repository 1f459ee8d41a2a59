"""Ablation: DnCNN's depth x residual learning x BatchNorm (Zhang et al. 2017, Sec. 4.2 and Fig. 2).

The paper credits residual learning and BatchNorm, together, for DnCNN's
speed of convergence and its PSNR. This sweep trains depth 5 / 10 / 17, each
with and without residual learning (`model.dncnn.residual`: predict the noise
and subtract it, or output the clean image) and with and without BatchNorm
(`model.dncnn.batch_norm`), for AWGN at sigma = 25:

    cnnrecon sweep experiments/ablations/dncnn_depth.py:smoke --root runs/ablate_dncnn_smoke  # ~1 min on CPU
    cnnrecon sweep experiments/ablations/dncnn_depth.py:cpu --root runs/ablate_dncnn_cpu      # ~1 min a run
    cnnrecon sweep experiments/ablations/dncnn_depth.py --root runs/ablate_dncnn               # one GPU

`smoke` trains each run a few steps at width 8 (a plumbing check, one seed);
`cpu` trains 32-feature nets for 400 steps of batch 16 (40 x 40 patches), one
seed; the base recipe is DnCNN-S's (64 features, 40 x 40 patches, batch 128) cut to
10,000 steps, seeds 0 and 1, on the bundled samples (`--config.data.train=DIR`
for the paper's 400 BSD images).
"""

import pathlib

from cnnrecon.config import load_config_file
from cnnrecon.sweep import product

BASE = pathlib.Path(__file__).resolve().parents[1] / 'denoise_dncnn.py'


def get_config(arg=None):
  """DnCNN-S for sigma = 25; `arg` picks a variant (None, 'cpu', 'smoke')."""
  if arg not in (None, 'cpu', 'smoke'):
    raise ValueError(f'unknown variant {arg!r}: use smoke, cpu or no variant')
  config = load_config_file(f'{BASE}:smoke' if arg == 'smoke' else str(BASE))
  config.report.baselines = False
  if arg == 'cpu':
    config.model.features = 32
    config.data.batch_size = 16
    config.train.steps = 400
    config.train.log_every = 25
    config.train.eval_every = 100
    config.train.checkpoint_every = 100
  elif arg is None:
    config.train.steps = 10_000
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 1_000
  return config


def get_sweep(arg=None):
  """Depth x residual x BatchNorm x seed (one seed for smoke and cpu)."""
  return product({'model.depth': [5, 10, 17], 'model.dncnn.residual': [True, False],
                  'model.dncnn.batch_norm': [True, False], 'seed': [0] if arg in ('smoke', 'cpu') else [0, 1]})
