"""The classic conv -> ReLU -> 2x2 max-pool stack on 32x32 grayscale patches.

The encoder halves the side `model.depth` times, so 32x32 inputs allow depth <= 5;
a deeper stack is rejected when the config is validated.
"""

from cnnrecon.config import base_config, shrink_for_smoke


def get_config(arg=None):
  """Returns the experiment config; `arg` picks a variant (None or 'smoke')."""
  config = base_config()
  config.model.name = 'seed_stack'
  config.model.depth = 3
  config.model.features = 64
  config.data.patch_size = 32
  config.data.batch_size = 64
  config.data.eval_crop = 128
  config.train.steps = 5_000
  if arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 2
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use smoke or no variant')
  return config
