"""U-Net inpainting: recover the half of the pixels dropped at random (`:smoke` for CPU tests)."""

from cnnrecon.config import base_config, shrink_for_smoke


def get_config(arg=None):
  """Returns the experiment config; `arg` picks a variant (None or 'smoke')."""
  config = base_config()
  config.task.name = 'inpaint'
  config.task.inpaint.keep_prob = 0.5
  config.model.name = 'unet'
  config.model.depth = 3
  config.model.features = 32
  config.data.patch_size = 64
  config.data.batch_size = 32
  config.train.loss = 'l1'
  config.train.steps = 20_000
  config.train.eval_every = 1_000
  config.report.baselines = False
  if arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 2
    config.data.patch_size = 32
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use smoke or no variant')
  return config
