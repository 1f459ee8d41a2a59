"""EDSR-baseline (Lim et al. 2017) for x2 super-resolution of the low-resolution image, scored on Set5 (Y, cropped).

Recipe (`get_config()`, GPU-sized): EDSR-baseline (16 residual blocks of 64
features, residual scaling 1, no BatchNorm, sub-pixel upsampling) on 48x48
low-resolution patches (96x96 high-resolution: `data.patch_size` is the
high-resolution side and must be a multiple of the scale), batch 16, L1 loss,
Adam at 1e-4 halved after 2/3 of 300,000 steps (the paper halves every
200,000), the 8 flips/rotations. The paper trains RGB nets on DIV2K and
reports 38.11 dB on Set5 x2 (bicubic 33.66); DIV2K is not in the developers'
data, so this recipe trains a gray net on the 400 BSD images and restores
the luma Y of Set5 (`data.gray='bt601_y'`, the SR convention). For the
paper's setting: `--config.data.train=/path/to/DIV2K_train_HR
--config.data.channels=3` (RGB nets are scored on Y all the same).

`:cpu` fits 20 minutes of a 2-core CPU: 6 blocks of 32 features, batch 16 of
24x24 low-resolution patches, 2,000 steps of Adam 1e-3 with cosine decay (measured:
36.59 dB on Set5 x2 against bicubic's 33.67, 15 minutes on 2 cores shared with other work).
`:smoke` is a few seconds on the bundled samples.

The data paths point at the developers' `../shared/data` (`:smoke` needs
nothing); point them at your own copies with
`--config.data.train=/path/to/train400 --config.data.eval=/path/to/set5`.
"""

import ml_collections

from cnnrecon.config import base_config, shrink_for_smoke

TRAIN400 = '../shared/data/train400'
SET5 = '../shared/data/set5'


def get_config(arg=None):
  """Returns the recipe; `arg` picks a variant (None = paper-like GPU recipe, 'cpu', 'smoke')."""
  config = base_config()
  config.task.name = 'super_resolve'
  config.task.super_resolve = ml_collections.ConfigDict({'scale': 2})
  config.model.name = 'edsr'
  config.model.depth = 16  # residual blocks
  config.model.features = 64
  config.model.edsr = ml_collections.ConfigDict({'res_scale': 1.0})
  config.data.train = TRAIN400
  config.data.eval = SET5
  config.data.gray = 'bt601_y'
  config.data.patch_size = 96  # 48x48 low-resolution patches at x2
  config.data.batch_size = 16
  config.data.eval_crop = 228  # Set5's smallest side (woman, 228x344); a multiple of 2, 3 and 4
  config.optim.learning_rate = 1e-4
  config.optim.schedule = 'step'
  config.optim.step.boundaries = (2 / 3,)
  config.optim.step.factor = 0.5
  config.optim.warmup_steps = 0
  config.optim.grad_clip = 0.0
  config.train.loss = 'l1'
  config.train.steps = 300_000
  config.train.log_every = 200
  config.train.eval_every = 10_000
  if arg == 'cpu':
    config.model.depth = 6
    config.model.features = 32
    config.data.patch_size = 48
    config.optim.learning_rate = 1e-3
    config.optim.schedule = 'cosine'
    config.optim.warmup_steps = 100
    config.optim.grad_clip = 1.0
    config.train.steps = 2_000
    config.train.log_every = 50
    config.train.eval_every = 500
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 2
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
    config.data.patch_size = 24
    config.optim.learning_rate = 3e-3  # the recipe's 1e-4 learns too little in 6 steps to beat batch-to-batch noise
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use cpu or smoke, or no variant for the paper-like recipe')
  return config
