"""Ablation: which pixel loss trains the better denoiser: MSE, L1 or SSIM (Zhao et al. 2017, "Loss
Functions for Image Restoration with Neural Networks").

Each loss trains the same DnCNN for AWGN at sigma = 25; the final report scores
every run on PSNR and SSIM alike, so the table shows what each loss buys on
the metric it does not optimise:

    cnnrecon sweep experiments/ablations/loss_choice.py:smoke --root runs/ablate_loss_smoke  # seconds a run
    cnnrecon sweep experiments/ablations/loss_choice.py:cpu --root runs/ablate_loss          # ~1 min a run
    cnnrecon sweep experiments/ablations/loss_choice.py --root runs/ablate_loss_gpu          # one GPU

`smoke` is a plumbing check (a few steps, one seed); `cpu` is the `make demo`
DnCNN (10 layers on half-resolution sub-images) for 400 steps, seeds 0 and 1;
the base recipe is DnCNN-S (17 layers, 64 features) for 10,000 steps.
"""

import pathlib

from cnnrecon.config import load_config_file
from cnnrecon.sweep import product

BASE = pathlib.Path(__file__).resolve().parents[1] / 'denoise_dncnn.py'


def get_config(arg=None):
  """DnCNN for sigma = 25; `arg` picks a variant (None, 'cpu', 'smoke')."""
  if arg not in (None, 'cpu', 'smoke'):
    raise ValueError(f'unknown variant {arg!r}: use smoke, cpu or no variant')
  config = load_config_file(f'{BASE}:{"demo" if arg == "cpu" else arg}' if arg else str(BASE))
  config.report.baselines = False
  if arg == 'cpu':
    config.train.steps = 400
    config.train.eval_every = 100
    config.train.checkpoint_every = 100
  elif arg is None:
    config.train.steps = 10_000
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 1_000
  return config


def get_sweep(arg=None):
  """Loss x seed (one seed for smoke)."""
  return product({'train.loss': ['mse', 'l1', 'ssim'], 'seed': [0] if arg == 'smoke' else [0, 1]})
