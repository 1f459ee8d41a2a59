"""U-Net deblurring: a 25x25 Gaussian blur of sigma 1.6 plus noise 2/255, symmetric boundary (IRCNN's setting).

Variants:
- `get_config()`: the full recipe for one GPU: Train400 (180x180 gray BSD images) for training and
  Set12 for evaluation, both from the developers' `../shared/data` (pass your own copies with
  `--config.data.train=... --config.data.eval=...`); a depth-4, 64-feature U-Net on 128x128 patches,
  batch 32, 60,000 steps.
- `:cpu`: the bundled samples (train split for training, the 4 held-out validation images for the
  report), a depth-3, 32-feature U-Net on 64x64 patches; under 20 minutes on 2 CPU cores.
- `:smoke`: a few seconds, for tests, with the Wiener and Richardson-Lucy rows in its report.

Every variant's report scores the net against Wiener and Richardson-Lucy deconvolution with the true
kernel (parameters by the rules in `cnnrecon/tasks/deblur.py`).
"""

import ml_collections

from cnnrecon.config import base_config, shrink_for_smoke

TRAIN400 = '../shared/data/train400'
SET12 = '../shared/data/set12'


def get_config(arg=None):
  """Returns the experiment config; `arg` picks a variant (None, 'cpu' or 'smoke')."""
  config = base_config()
  config.task.name = 'deblur'
  config.task.deblur = ml_collections.ConfigDict({
      'kernel': 'gaussian', 'boundary': 'symmetric', 'sigma': 2.0, 'kernel_size': 25, 'kernel_sigma': 1.6,
      'length': 15.0, 'angle': 0.0})
  config.model.name = 'unet'
  config.model.depth = 4
  config.model.features = 64
  config.data.train = TRAIN400
  config.data.eval = SET12
  config.data.patch_size = 128
  config.data.batch_size = 32
  config.train.loss = 'l1'
  config.train.steps = 60_000
  config.train.log_every = 100
  config.train.eval_every = 2_000
  config.optim.learning_rate = 1e-3
  if arg == 'cpu':
    cpu_variant(config)
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 2
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
    config.data.patch_size = 32
    config.report.baselines = True
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use cpu or smoke, or no variant for the full recipe')
  return config


def cpu_variant(config: ml_collections.ConfigDict) -> None:
  """The 2-core CPU recipe: 2,000 steps of 8 patches (16,000 patches), Adam 2e-3 with cosine decay.

  Measured (`time cnnrecon train --config experiments/deblur_unet.py:cpu --workdir /tmp/deblur2k
  --no-progress`, 2 idle cores): PSNR / SSIM on the 4 held-out validation images: blurred 26.30 / 0.764,
  Wiener 28.30 / 0.827, Richardson-Lucy 28.40 / 0.830, the net 28.96 / 0.840 (better on each image);
  8 min 35 s of wall time. 3,000 steps gave 29.25 / 0.846 (measured only on a loaded machine).
  """
  config.data.train, config.data.eval = 'samples:train', 'samples:validation'
  config.model.depth = 3
  config.model.features = 32
  config.data.patch_size = 64
  config.data.batch_size = 8
  config.optim.learning_rate = 2e-3
  config.train.steps = 2_000
  config.train.log_every = 50
  config.train.eval_every = 1_000
