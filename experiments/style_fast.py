"""Fast feed-forward style transfer (Johnson et al. 2016) with conditional instance norm (Dumoulin et al. 2017).

A transform net learns to render any content image in the trained style(s),
through the same train step, checkpoints and resume as reconstruction. The
loss is Johnson et al.'s choice of layers (content at relu2_2, Gram style loss
at relu1_2, relu2_2, relu3_3, relu4_3, plus total variation) on the VGG-16 hed
weights (`cnnrecon weights fetch vgg16-hed`). Measured on the demo net: with
Gatys' layers (content at relu4_2) 300 CPU steps kept no content at all
(content loss 16.4-18.5, as far as the style image's own), whatever the
content weight (1 to 1e7); relu2_2 keeps the content's shapes.

Variants:
- (none): a GPU-sized run: full Johnson net (5 residual blocks, 32 features),
  256x256 crops of the content folder, batch 8, 40,000 steps.
- `demo`: sized for a 2-core CPU (`make demo-style`, about 4 minutes): 3 residual
  blocks, 16 features, 96x96 crops of the bundled samples, batch 4, 600 steps.
- `smoke`: seconds, seeded random VGG weights (no download), for tests.
- `two_styles:smoke`-like multi-style runs: set `--config.task.fast_style.styles`
  to several images and `--config.model.transform_net.styles` to their number.

Content comes from any image folder or TFDS name (`--config.data.train=tfds:coco/2017`
needs TensorFlow); the bundled scikit-image samples are the offline default.
"""

from cnnrecon.config import base_config, shrink_for_smoke
from cnnrecon.style.perceptual import fast_style_defaults


def get_config(arg=None):
  """Returns the recipe; `arg` picks a variant (None, 'demo', 'smoke')."""
  config = base_config()
  config.model.name = 'transform_net'
  config.model.depth = 5
  config.model.features = 32
  config.model.transform_net.styles = 1
  config.task.name = 'fast_style'
  config.task.fast_style = fast_style_defaults()
  config.task.fast_style.styles = ('starry_night',)
  config.task.fast_style.content_layers = ('relu2_2',)
  config.task.fast_style.style_layers = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3')
  config.data.channels = 3
  config.data.patch_size = 256
  config.data.batch_size = 8
  config.data.eval_crop = 256
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 0
  config.optim.grad_clip = 0.0
  config.train.steps = 40_000
  config.train.eval_every = 2_000
  config.train.checkpoint_every = 2_000
  config.report.baselines = False
  if arg == 'demo':
    config.model.depth = 3
    config.model.features = 16
    config.data.patch_size = 96
    config.data.batch_size = 4
    config.data.eval_crop = 128
    config.task.fast_style.style_size = 192
    # Measured on held-out coffee/coins (scripts/fast_vs_gatys.py --side 128): lr 3e-3 stalls at 104x
    # Gatys' style loss after 300 steps; lr 1e-3 gives 7.9x at 300, 3.2x at 900, 2.8x at 1,800 steps.
    config.optim.learning_rate = 1e-3
    config.train.steps = 600
    config.train.log_every = 20
    config.train.eval_every = 300
    config.train.checkpoint_every = 300
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 1
    config.data.patch_size = 32
    config.data.batch_size = 4
    config.data.eval_crop = 32
    config.task.fast_style.features = 'random'
    config.task.fast_style.style_size = 48
    config.optim.warmup_steps = 0
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use demo or smoke, or no variant for the GPU recipe')
  return config
