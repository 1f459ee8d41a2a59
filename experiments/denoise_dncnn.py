"""DnCNN-S (Zhang et al. 2017) for AWGN denoising at sigma=25.

Variants: `get_config()` is the paper-sized net (17 layers, 64 features);
`:smoke` shrinks everything for CPU tests; `:demo` is the `make demo` recipe
(a 10-layer net on FFDNet's half-resolution sub-images).
"""

from cnnrecon.config import base_config, shrink_for_smoke


def get_config(arg=None):
  """Returns the experiment config; `arg` picks a variant (None, 'smoke', 'demo')."""
  config = base_config()
  config.model.name = 'dncnn'
  config.model.depth = 17
  config.model.features = 64
  config.data.patch_size = 40
  config.data.batch_size = 128
  config.train.steps = 50_000
  config.train.eval_every = 2_000
  if arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 4
    config.data.patch_size = 24
  elif arg == 'demo':
    # A 2-core CPU trains this in under 2 minutes. The FFDNet-style half-resolution body gives 4x
    # fewer positions per layer and twice the receptive field of a full-resolution DnCNN of the same
    # cost. Measured on the held-out samples (PSNR, non-local means 29.01 dB): batch 16 at lr 3e-3
    # 29.28 dB (1600 steps; 28.99 at 1000); batch 8 at lr 3e-3 29.09, at lr 5e-3 29.21 dB, in half
    # the time (docs/results.md).
    config.model.depth = 10
    config.model.features = 64
    config.model.dncnn.space_to_depth = 2
    config.data.batch_size = 8
    config.optim.learning_rate = 5e-3
    config.train.steps = 1600
    config.train.log_every = 25
    config.train.eval_every = 400
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use smoke or demo, or no variant')
  return config
