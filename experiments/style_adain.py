"""Arbitrary-style transfer with adaptive instance normalisation (Huang & Belongie 2017).

A fixed VGG encoder (VGG-16 hed weights up to relu4_1, `cnnrecon weights fetch
vgg16-hed`) maps a content crop and a style crop to features; AdaIN gives the
content features the style's channel means and stds; a decoder (`adain_decoder`,
the mirrored encoder) learns to turn them back into an image. Loss: content
||f(g(t)) - t||^2 at relu4_1 + 10 x the mean/std style loss at relu1_1..relu4_1.
The decoder never sees which style it renders, so it stylizes with style images
it was not trained on (`cnnrecon stylize --method adain --workdir W --style ANY.jpg`).

Variants:
- (none): a GPU-sized run: the paper's decoder (64 features: 256/128/64), 256x256
  content crops, random 256x256 crops of the styles at 512 px, batch 8, lr 1e-4,
  40,000 steps. Point it at real data for a general model:
  `--config.data.train=PATH/TO/COCO --config.task.adain.styles="('PATH/TO/WIKIART',)"`
  (a folder means every image in it; they are all kept on the device).
- `demo`: sized for a 2-core CPU (a few minutes): 8-feature decoder, 64x64 crops of
  the bundled samples, batch 4, 300 steps; styles are three shipped paintings, and
  the fourth (`woman_with_hat_matisse`) is held out: the report shows it as an
  unseen style.
- `smoke`: seconds, seeded random VGG weights (no download), for tests.

Content comes from any image folder or TFDS name; the bundled scikit-image samples
are the offline default.
"""

from cnnrecon.config import base_config, shrink_for_smoke
from cnnrecon.style.adain_loss import adain_defaults

TRAINING_PAINTINGS = ('starry_night', 'the_scream', 'shipwreck')  # woman_with_hat_matisse is held out


def get_config(arg=None):
  """Returns the recipe; `arg` picks a variant (None, 'demo', 'smoke')."""
  config = base_config()
  config.model.name = 'adain_decoder'
  config.model.depth = 9  # unused by the decoder (fixed layout); the train-step memory estimate reads it
  config.model.features = 64
  config.task.name = 'adain'
  config.task.adain = adain_defaults()
  config.task.adain.styles = TRAINING_PAINTINGS
  config.task.adain.style_size = 512
  config.data.channels = 3
  config.data.patch_size = 256
  config.data.batch_size = 8
  config.data.eval_crop = 256
  config.optim.learning_rate = 1e-4
  config.optim.warmup_steps = 0
  config.optim.grad_clip = 0.0
  config.train.steps = 40_000
  config.train.eval_every = 2_000
  config.train.checkpoint_every = 2_000
  config.report.baselines = False
  if arg == 'demo':
    config.model.features = 8
    config.task.adain.style_size = 128
    config.data.patch_size = 64
    config.data.batch_size = 4
    config.data.eval_crop = 128
    config.optim.learning_rate = 1e-3
    config.train.steps = 300
    config.train.log_every = 20
    config.train.eval_every = 150
    config.train.checkpoint_every = 150
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.model.features = 4
    config.data.patch_size = 32
    config.data.batch_size = 4
    config.data.eval_crop = 32
    config.task.adain.features = 'random'
    config.task.adain.style_size = 48
    config.optim.learning_rate = 1e-3
    config.optim.warmup_steps = 0
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use demo or smoke, or no variant for the GPU recipe')
  return config
