"""DnCNN-3 (Zhang et al. 2017): one blind model for Gaussian denoising, x2/x3/x4 super-resolution and JPEG deblocking.

Paper recipe (`get_config()`): 20 layers, 64 features, BatchNorm, residual
learning, gray images (the luma Y of MATLAB's rgb2ycbcr, `data.gray='bt601_y'`,
as the SR and JPEG literature score), each training patch degraded by one of
AWGN with sigma ~ U[0, 55], bicubic down-and-up-sampling by 2, 3 or 4, and JPEG
at a quality ~ U{5..99} (`task.mixture`, `cnnrecon.ops.mixture`). Patches are
48x48 (the paper's 50 is not a multiple of 12, which every scale must divide).
The paper trained on 291 images (T91 + BSD200) plus BSD; this recipe trains on
the 400 BSD images of `../shared/data/train400` (DnCNN's Train400), batch 128,
Adam 1e-3 dropped to 1e-4 after 60% of 80,000 steps. Validation on Set12.

Score the model per degradation as the 'gaussian', 'super_resolve' and 'jpeg'
tasks (`cnnrecon.tasks.mixture.trained_levels` says which levels it saw).

`:smoke` shrinks everything (bundled samples, seconds) for tests. `:cpu` is
sized for a 2-core CPU: a 12-layer body on FFDNet's half-resolution
sub-images, batch 16, 5,000 steps of Adam 3e-3 with cosine decay, about 17
minutes (0.19 s a step on 2 idle AVX-512 cores; 1,770 CPU-seconds in all).
Measured on the held-out samples (`samples:validation`, gray Y, seed 0),
evaluated as each single task, no model -> model (PSNR dB): noisy sigma
15/25/50 24.62/20.18/14.16 -> 31.87/29.80/26.44; bicubic x2/x3/x4
31.04/28.49/26.95 -> 31.39/29.33/27.75; JPEG q 10/20/30/40
28.87/31.01/32.23/33.10 -> 29.08/31.27/32.46/33.30. At 4,000 steps the SR
gains were only +0.09/+0.04/+0.02 dB: the noise examples dominate the loss.

The data paths point at the developers' `../shared/data`; point them at your
own copies with `--config.data.train=/path/to/train400 --config.data.eval=/path/to/set12`.
"""

import ml_collections

from cnnrecon.config import base_config, shrink_for_smoke

TRAIN400 = '../shared/data/train400'
SET12 = '../shared/data/set12'


def get_config(arg=None):
  """Returns the recipe; `arg` picks a variant (None = paper, 'cpu', 'smoke')."""
  config = base_config()
  config.model.name = 'dncnn'
  config.model.depth = 20
  config.model.features = 64
  config.task.name = 'mixture'
  config.task.mixture = ml_collections.ConfigDict({
      'tasks': ('gaussian', 'super_resolve', 'jpeg'), 'sigma_range': (0.0, 55.0), 'scales': (2, 3, 4),
      'quality_range': (5, 99)})
  config.data.channels = 1
  config.data.gray = 'bt601_y'
  config.data.train = TRAIN400
  config.data.eval = SET12
  config.data.patch_size = 48  # a multiple of lcm(2, 3, 4) = 12
  config.data.eval_crop = 120
  config.data.batch_size = 128
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
    config.train.steps = 5_000
    config.train.log_every = 50
    config.train.eval_every = 2_500
  elif arg == 'smoke':
    shrink_for_smoke(config)
    config.model.depth = 4
    # Many small patches and a large step: the mix of degradations varies the loss from batch to batch
    # more than 6 steps at 1e-3 lower it, and the smoke test checks that the loss falls.
    config.data.patch_size = 12
    config.data.batch_size = 64
    config.data.eval_crop = 36
    config.optim.learning_rate = 1e-2
    config.data.train, config.data.eval = 'samples:train', 'samples:validation'
    config.optim.warmup_steps = 0
  elif arg is not None:
    raise ValueError(f'unknown variant {arg!r}: use cpu or smoke, or no variant for the paper recipe')
  return config
