"""FBPConvNet (Jin et al. 2017) on sparse-view and limited-angle parallel-beam CT of random-ellipse phantoms.

Variants: no variant = 45 views over 180 deg (sparse view), 'limited' = 120 views over 120 of 180 deg
(limited angle), both GPU-sized (256 px, the paper's depth-4, 64-feature net); 'cpu' and
'limited_cpu' are the same scans at 64 px that train in at most 20 minutes on 2 CPU cores; 'smoke'
takes seconds (tests). Every variant trains on random ellipses drawn on the fly and is evaluated on
held-out ones (another split: other seeds); `cnnrecon eval --data phantoms:shepp_logan:size=N`
scores the Shepp-Logan phantom.

Measured (2 CPU cores shared with other jobs; 16 held-out phantoms, PSNR dB): ':cpu' FBP 30.69,
FBPConvNet 40.89, TV 60.47 (14 min 22 s); ':limited_cpu' FBP 19.66, FBPConvNet 30.54, TV 36.03
(11 min 9 s). On the Shepp-Logan phantom, unlike the training ellipses, the gains are smaller: FBP
28.22 -> 31.67 (sparse view), 20.40 -> 22.67 (limited angle). Noise-free, the TV baseline recovers
these piecewise-constant phantoms almost exactly: they are drawn on the operator's own pixel grid
(an "inverse crime"); set task.ct.photons (low dose) for a harder comparison.
"""

import ml_collections

from cnnrecon.config import base_config, shrink_for_smoke

VARIANTS = (None, 'limited', 'cpu', 'limited_cpu', 'smoke')


def _phantoms(config: ml_collections.ConfigDict, size: int, *, train: int, validation: int) -> None:
  """Train on `train` random-ellipse phantoms, validate on `validation` held-out ones, all `size` px."""
  config.data.train = f'phantoms:ellipses:train:size={size}:count={train}'
  config.data.eval = f'phantoms:ellipses:validation:size={size}:count={validation}'
  config.data.patch_size = size
  config.data.eval_crop = size
  config.data.augment = False  # the phantoms are random already; rot90 would shift them off the disc by a pixel


def get_config(arg=None):
  """Returns the experiment config; `arg` picks a variant (see the module docstring)."""
  if arg not in VARIANTS:
    raise ValueError(f'unknown variant {arg!r}: use no variant, limited, cpu, limited_cpu or smoke')
  config = base_config()
  config.task.name = 'ct'
  limited = arg in ('limited', 'limited_cpu')
  config.task.ct = ml_collections.ConfigDict({
      'views': 120 if limited else 45, 'angle_range': 120.0 if limited else 180.0, 'photons': None,
      'mu_scale': 4.0, 'filter_name': 'ramp', 'tv_weight': None, 'tv_iterations': 200})
  config.model.name = 'fbpconvnet'
  config.model.depth = 4
  config.model.features = 64
  config.train.loss = 'mse'
  config.optim.learning_rate = 1e-3
  if arg in (None, 'limited'):
    _phantoms(config, 256, train=10_000, validation=32)
    config.data.batch_size = 16
    config.train.steps = 20_000
    config.train.eval_every = 1_000
    config.optim.warmup_steps = 500
  elif arg in ('cpu', 'limited_cpu'):
    # 16 features (the paper's 64 / 4): 400 steps of this recipe already gained 8.3 dB (sparse view) and
    # 9.9 dB (limited angle) over FBP in the validation PSNR; the rest of the 20 minutes refines.
    _phantoms(config, 64, train=12_000, validation=16)
    config.model.depth = 3
    config.model.features = 16
    config.data.batch_size = 8
    config.train.steps = 1_500
    config.train.log_every = 100
    config.train.eval_every = 500
    config.train.checkpoint_every = 500
    config.optim.warmup_steps = 100
  else:
    shrink_for_smoke(config)
    _phantoms(config, 32, train=64, validation=4)
    config.task.ct.views = 8
    config.task.ct.tv_iterations = 20
    config.report.baselines = True  # the TV row too: 20 steps on 4 phantoms of 32 px take a second
    config.model.depth = 2
  return config
