"""DnCNN for Poisson-Gaussian (shot + read) noise, the raw-sensor noise model.

`task.poisson_gaussian.peak` is photons at white (lower is noisier),
`task.poisson_gaussian.sigma` the read noise on the 0-255 scale. `:poisson`
switches to pure Poisson noise; `:smoke` shrinks everything for CPU tests
(combine: `:poisson_smoke`).
"""

from cnnrecon.config import base_config, shrink_for_smoke


def get_config(arg=None):
  """Returns the experiment config; `arg` is None, 'smoke', 'poisson' or 'poisson_smoke'."""
  config = base_config()
  config.task.name = 'poisson_gaussian'
  config.task.poisson_gaussian.peak = 30.0
  config.task.poisson_gaussian.sigma = 10.0
  config.model.name = 'dncnn'
  config.model.depth = 17
  config.data.batch_size = 64
  config.train.steps = 20_000
  config.train.eval_every = 1_000
  variant = arg or ''
  if variant not in ('', 'smoke', 'poisson', 'poisson_smoke'):
    raise ValueError(f'unknown variant {arg!r}: use smoke, poisson or poisson_smoke, or no variant')
  if variant.startswith('poisson'):
    config.task.name = 'poisson'
    config.task.poisson.peak = 30.0
  if variant.endswith('smoke'):
    shrink_for_smoke(config)
    config.model.depth = 4
    config.data.patch_size = 24
  return config
