"""DnCNN-S (Zhang et al. 2017) for AWGN denoising at sigma=25.

Variants: `get_config()` is the paper-sized net (17 layers, 64 features);
`:smoke` shrinks everything for CPU tests; `:demo` is the `make demo` recipe.
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
    config.model.depth = 10
    config.model.features = 32
    config.data.batch_size = 32
    config.train.steps = 600
    config.train.log_every = 25
    config.train.eval_every = 200
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use smoke or demo, or no variant')
  return config
