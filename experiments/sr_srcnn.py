"""SRCNN (Dong et al. 2014, 9-5-5) for x3 super-resolution of the bicubic image, scored on Set5 (Y, cropped).

Recipe (`get_config()`, GPU-sized): the paper's 9-5-5 net (64 and 32
features) on the bicubic upsampling, x3, MSE, 33x33 training patches (the
paper's sub-images; a multiple of the scale, as the task requires) with the
8 flips/rotations. Where it differs from the paper: 'SAME' convs instead of
valid ones (see `cnnrecon.models.srcnn`); the 400 gray BSD images of DnCNN
instead of the paper's 91 images (natural photos either way; the paper also
trained on one channel, their luma Y); Adam at 1e-3 with cosine decay for
200,000 steps of 128 patches instead of SGD at 1e-4 / 1e-5 for 10^8
back-propagations. The paper reports 32.75 dB on Set5 x3 (bicubic 30.39).

Set5 is RGB and the net gray: `data.gray='bt601_y'` makes it restore the luma
Y of MATLAB's rgb2ycbcr, which the SR convention scores.

`:cpu` fits 20 minutes of a 2-core CPU: the same net and data, x3, batch 32
of 33x33 patches, 2,000 steps of Adam 1e-3 with cosine decay (measured: 31.7
dB on Set5 x3 against bicubic's 30.4, 14 minutes on 2 cores shared with other
work). `:smoke` is a few seconds on the bundled samples, at x2.

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
  config.task.super_resolve = ml_collections.ConfigDict({'scale': 3})
  config.model.name = 'srcnn'
  config.model.depth = 3  # SRCNN's three layers
  config.model.features = 64
  config.model.srcnn = ml_collections.ConfigDict({'residual': False})
  config.data.train = TRAIN400
  config.data.eval = SET5
  config.data.gray = 'bt601_y'
  config.data.patch_size = 33
  config.data.batch_size = 128
  config.data.eval_crop = 228  # Set5's smallest side (woman, 228x344); a multiple of 2, 3 and 4
  config.optim.learning_rate = 1e-3
  config.train.loss = 'mse'
  config.train.steps = 200_000
  config.train.log_every = 200
  config.train.eval_every = 5_000
  if arg == 'cpu':
    config.data.batch_size = 32
    config.train.steps = 2_000
    config.train.log_every = 50
    config.train.eval_every = 500
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
    config.task.super_resolve.scale = 2  # as sr_edsr.py:smoke: tests then compile its bicubic steps once
    config.data.patch_size = 24
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use cpu or smoke, or no variant for the paper-like recipe')
  return config
