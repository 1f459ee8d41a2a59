"""DnCNN-S at sigma=25 on Train400, as in Zhang et al. 2017 ("Beyond a Gaussian Denoiser").

Paper recipe (`get_config()`): 17 layers, 64 features, BatchNorm, residual
learning (the net predicts the noise; MSE on the residual equals MSE on
`input - residual`), 40x40 patches from the 400 BSD training images with the 8
flips/rotations, batch 128, Adam, 50 "epochs" of 1600 batches = 80,000 steps,
learning rate 1e-3 dropped to 1e-4 after 30 epochs. Validation on Set12.

`:smoke` keeps the recipe's optimizer and schedule but shrinks the net and
reads the bundled sample images (for tests on machines without the data).

`:cpu` is sized for a 2-core CPU (about 25 minutes): the same data and noise,
a 12-layer body on FFDNet's half-resolution sub-images (4x fewer positions per
layer), batch 16, 8,000 steps, Adam 3e-3 with cosine decay.

The data paths point at the developers' `../shared/data`; point them at your
own copies with `--config.data.train=/path/to/train400 --config.data.eval=/path/to/set12`.
"""

from cnnrecon.config import base_config, shrink_for_smoke

TRAIN400 = '../shared/data/train400'
SET12 = '../shared/data/set12'


def get_config(arg=None):
  """Returns the recipe; `arg` picks a variant (None = paper, 'cpu', 'smoke')."""
  config = base_config()
  config.model.name = 'dncnn'
  config.model.depth = 17
  config.model.features = 64
  config.task.gaussian.sigma = 25.0
  config.data.train = TRAIN400
  config.data.eval = SET12
  config.data.patch_size = 40
  config.data.batch_size = 128
  config.data.eval_crop = 128
  config.optim.name = 'adam'
  config.optim.learning_rate = 1e-3
  config.optim.schedule = 'step'
  config.optim.step.boundaries = (0.6,)
  config.optim.step.factor = 0.1
  config.optim.warmup_steps = 0
  config.optim.grad_clip = 0.0
  config.train.steps = 80_000
  config.train.log_every = 100
  config.train.eval_every = 4_000
  if arg == 'cpu':
    config.model.depth = 12
    config.model.dncnn.space_to_depth = 2
    config.data.batch_size = 16
    config.optim.learning_rate = 3e-3
    config.optim.schedule = 'cosine'
    config.optim.warmup_steps = 200
    config.optim.grad_clip = 1.0
    config.train.steps = 8_000
    config.train.log_every = 50
    config.train.eval_every = 2_000
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 4
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
    config.optim.warmup_steps = 0
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use cpu or smoke, or no variant for the paper recipe')
  return config
