"""DnCNN for JPEG deblocking at quality 10 (the setting of ARCNN and of DnCNN-3's Classic5 table).

Variants: `get_config()` is the GPU recipe (20 layers, 64 features, Train400 40x40 patches, batch
128, Adam, 50k steps, validated on Classic5: the developers' `../shared/data`; point them at your
copies with `--config.data.train=... --config.data.eval=...`). `:cpu` trains in minutes on a 2-core
CPU on the bundled samples (the `make demo` net: 10 layers on FFDNet's half-resolution sub-images)
and is scored on the held-out bundled samples against the compressed input. `:smoke` is for tests.
"""

import ml_collections

from cnnrecon.config import base_config, shrink_for_smoke

TRAIN400 = '../shared/data/train400'
CLASSIC5 = '../shared/data/classic5'


def get_config(arg=None):
  """Returns the experiment config; `arg` picks a variant (None, 'cpu', 'smoke')."""
  config = base_config()
  config.task.name = 'jpeg'
  config.task.jpeg = ml_collections.ConfigDict({'quality': 10})
  config.model.name = 'dncnn'
  config.model.depth = 20
  config.model.features = 64
  config.data.train = TRAIN400
  config.data.eval = CLASSIC5
  config.data.patch_size = 40
  config.data.batch_size = 128
  config.data.eval_crop = 128
  config.train.steps = 50_000
  config.train.eval_every = 2_000
  if arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 4
    config.data.patch_size = 24
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
  elif arg == 'cpu':
    config.model.depth = 10
    config.model.dncnn.space_to_depth = 2
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
    config.data.batch_size = 8
    # The demo's 5e-3 left this net at the identity (28.06 dB in, 28.06 out: dead ReLUs); 1e-3 gains
    # 0.55 dB in 400 steps (docs/results.md).
    config.optim.learning_rate = 1e-3
    config.train.steps = 1600
    config.train.log_every = 25
    config.train.eval_every = 400
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use smoke or cpu, or no variant')
  return config
