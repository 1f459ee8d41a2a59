"""Import the DnCNN authors' released weights into cnnrecon's `dncnn` model.

`load_dncnn_weights` reads a file into flax variables; `import_to_workdir`
saves them as a checkpoint, so `cnnrecon eval` / `denoise` and
`cnnrecon.inference.load_trained` use them like a model trained here.
"""

import logging
import math
import pathlib
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import config as config_lib
from cnnrecon.errors import CnnreconError
from cnnrecon.io import write_file_atomic
from cnnrecon.models.registry import build_model
from cnnrecon.safety import WorkdirLock, check_workdir_usable
from cnnrecon.train import checkpoint
from cnnrecon.train.state import TrainState, create_train_state, make_optimizer
from cnnrecon.weights.dncnn_layers import DEFAULT_BN_EPSILON, ImportedWeights, to_flax
from cnnrecon.weights.keras import read_keras
from cnnrecon.weights.matconvnet import read_matconvnet
from cnnrecon.weights.state_dict import read_state_dict

FORMATS = ('matconvnet', 'keras', 'torch', 'safetensors')
DEFAULT_SIGMA = 25.0
# 'sigma=25.mat' (the authors' names), 'matconvnet_sigma25.mat', KAIR's 'dncnn_25.pth'.
_SIGMA_IN_NAME = re.compile(r'(?:sigma|dncnn)[=_-]?(\d+(?:\.\d+)?)', re.IGNORECASE)


def load_dncnn_weights(fmt: str, path: str | pathlib.Path, *, depth: int | None = 17,
                       features: int | None = 64, bn_epsilon: float | None = None) -> ImportedWeights:
  """Reads published DnCNN weights as variables of cnnrecon's flax DnCNN.

  Args:
    fmt: 'matconvnet' (MATLAB v7.3 .mat), 'keras' (.h5, with its .json beside
      it unless it is a full-model save), 'torch' (.pth state dict) or
      'safetensors'.
    path: the weights file.
    depth: conv layers of the target model; None takes the file's.
    features: hidden width of the target model; None takes the file's.
    bn_epsilon: epsilon of a state dict's BatchNorms, which the file does not
      record (default 1e-5, PyTorch's; KAIR's BatchNorms use 1e-4). Keras
      files record theirs; MatConvNet stores sqrt(var + eps) itself.

  Returns:
    ImportedWeights whose params / batch_stats match `DnCNN(depth, features,
    bn_epsilon=result.bn_epsilon)` exactly; channels come from the file.

  Raises:
    CnnreconError: unknown format, unreadable file, or layers that do not
      match the model (the message names the first differing layer).
  """
  if fmt not in FORMATS:
    raise CnnreconError(f'unknown weights format {fmt!r}: use one of {", ".join(FORMATS)}')
  path = pathlib.Path(path)
  if not path.is_file():
    raise CnnreconError(f'{path} does not exist: pass the path of the downloaded {fmt} weights file')
  model_epsilon = DEFAULT_BN_EPSILON
  if fmt == 'matconvnet':
    layers = read_matconvnet(path)
  elif fmt == 'keras':
    layers, file_epsilon = read_keras(path)
    model_epsilon = DEFAULT_BN_EPSILON if file_epsilon is None else file_epsilon
  else:
    model_epsilon = DEFAULT_BN_EPSILON if bn_epsilon is None else float(bn_epsilon)
    layers = read_state_dict(path, fmt, epsilon=model_epsilon)
  return to_flax(layers, depth=depth, features=features, bn_epsilon=model_epsilon,
                 source=f'{fmt}:{path}')


def _check_finite_weights(weights: ImportedWeights, path) -> None:
  """Refuses weights holding NaN or infinite values (a damaged or badly exported file)."""
  tree = {'params': weights.params, 'batch_stats': weights.batch_stats}
  for key_path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    if not np.all(np.isfinite(np.asarray(leaf))):
      raise CnnreconError(f'{path} holds non-finite values (NaN or inf) in {jax.tree_util.keystr(key_path)}: '
                          'the file is damaged or was exported from a diverged run; use another copy')


def sigma_from_name(path: str | pathlib.Path) -> float | None:
  """The noise level a weights file name states ('sigma=25.mat', 'x_sigma15.h5', 'dncnn_50.pth')."""
  match = _SIGMA_IN_NAME.search(pathlib.Path(path).name)
  return float(match.group(1)) if match else None


# The authors' blind releases, recognised by file name, and the mixture of tasks each was trained on
# (`cnnrecon.tasks.mixture`): DnCNN-B on AWGN of sigma in [0, 55]; DnCNN-3 on that, bicubic x2/x3/x4
# super-resolution and JPEG at quality 5..99, on the luma Y of RGB images.
BLIND_RELEASES = {'dncnn3': {'tasks': ('gaussian', 'super_resolve', 'jpeg')},
                  'blind': {'tasks': ('gaussian',)}}


def blind_release(path: str | pathlib.Path) -> dict | None:
  """The mixture options of a blind release named by `path` ('..._dncnn3.mat', '..._blind_gray.mat'), or None."""
  name = pathlib.Path(path).name.lower()
  return next((dict(options) for key, options in BLIND_RELEASES.items() if key in name), None)


def import_config(weights: ImportedWeights, *, sigma: float | None = None,
                  mixture: dict | None = None) -> ml_collections.ConfigDict:
  """The experiment config describing imported weights (defaults elsewhere).

  Args:
    weights: from `load_dncnn_weights`.
    sigma: the AWGN level (0-255 scale) the weights were trained for.
    mixture: for blind weights instead, the `task.mixture` options they were
      trained on (`BLIND_RELEASES`).

  Returns:
    `config.base_config()` with the model, channels and task set.
  """
  config = config_lib.base_config()
  config.model.update(name='dncnn', depth=weights.depth, features=weights.features, dtype='float32')
  config.model.dncnn.update(bn_epsilon=float(weights.bn_epsilon), space_to_depth=1)
  config.data.channels = weights.channels
  if mixture is not None:
    config.task.name = 'mixture'
    config.task.mixture = ml_collections.ConfigDict({key: list(value) for key, value in mixture.items()})
    config.data.gray = 'bt601_y'  # the authors score colour images on the Y of rgb2ycbcr
  else:
    config.task.name = 'gaussian'
    config.task.gaussian.sigma = float(DEFAULT_SIGMA if sigma is None else sigma)
  return config_lib.upgrade_config(config)


def _imported_state(config: ml_collections.ConfigDict, weights: ImportedWeights, step: int) -> TrainState:
  """A fresh train state (optimizer included, for fine-tuning) holding the imported variables."""
  model = build_model(config.model, channels=config.data.channels)
  optimizer = make_optimizer(config.optim, config.train.steps)
  state = create_train_state(model, optimizer, seed=config.seed,
                             sample_shape=(1, 8, 8, config.data.channels))
  as_float32 = lambda tree: jax.tree.map(lambda leaf: jnp.asarray(leaf, jnp.float32), tree)
  params, batch_stats = as_float32(weights.params), as_float32(weights.batch_stats)
  if jax.tree.structure(params) != jax.tree.structure(state.params):
    raise CnnreconError(f'{weights.source} did not convert to the variables of {config.model.name}')
  return state.replace(step=step, params=params, batch_stats=batch_stats)


def _import_step(workdir: pathlib.Path, force: bool) -> tuple[int, int]:
  """(step to save at, number of checkpoints already in the workdir)."""
  if not checkpoint.checkpoint_dir(workdir).is_dir():
    return 0, 0
  with checkpoint.open_manager(workdir, read_only=True) as manager:
    steps, best = manager.all_steps(), manager.best_step()
  if not steps:
    return 0, 0
  if not force:
    raise CnnreconError(f'{workdir} already holds checkpoints (steps {sorted(steps)}): import into a new '
                        'workdir, or pass force to add the imported weights as a new checkpoint')
  if best is not None:
    raise CnnreconError(
        f'{workdir} holds a trained checkpoint (step {best}, best by validation PSNR) that eval and '
        'denoise would keep using instead of imported weights: import into a new workdir')
  return max(steps) + 1, len(steps)


def import_to_workdir(fmt: str, path: str | pathlib.Path, workdir: str | pathlib.Path, *,
                      model: str = 'dncnn', sigma: float | None = None,
                      force: bool = False) -> pathlib.Path:
  """Saves published weights as a checkpoint (plus config.json) of a workdir.

  The checkpoint has the layout `cnnrecon train` writes (train state at step
  0, config JSON, no data-iterator state), so `load_trained(workdir)` returns
  the imported model. Nothing already in the workdir is deleted.

  Args:
    fmt: one of FORMATS (see `load_dncnn_weights`).
    path: the weights file; depth, width and channels come from it.
    workdir: the experiment directory to create or add to.
    model: the model to import into; only 'dncnn' has importers.
    sigma: the noise level (0-255) the weights were trained for; None reads it
      from the file name ('sigma25'); a blind release ('dncnn3', 'blind' in the
      name, `BLIND_RELEASES`) records the mixture of tasks it was trained on;
      else 25.
    force: add a checkpoint (at the next step) to a workdir that already holds
      imported ones; a workdir with trained checkpoints is always refused.

  Returns:
    The directory of the saved checkpoint.
  """
  if model != 'dncnn':
    raise CnnreconError(f'no published weights importer for model {model!r}: only dncnn weights '
                        f'({", ".join(FORMATS)}) can be imported')
  workdir = pathlib.Path(workdir).absolute()
  if sigma is not None and not (math.isfinite(sigma) and sigma >= 0):
    raise CnnreconError(f'--sigma {sigma} must be a finite noise level >= 0 on the 0-255 scale, e.g. --sigma 25')
  check_workdir_usable(workdir)
  weights = load_dncnn_weights(fmt, path, depth=None, features=None)
  _check_finite_weights(weights, path)
  mixture = blind_release(path) if sigma is None else None
  if sigma is None and mixture is None:
    sigma = sigma_from_name(path)
  if sigma is None and mixture is None:
    sigma = DEFAULT_SIGMA
    logging.warning('%s names no noise level; recording task.gaussian.sigma=%s (pass sigma to change it)',
                    path, DEFAULT_SIGMA)
  config = import_config(weights, sigma=sigma, mixture=mixture)
  with WorkdirLock(workdir):
    step, existing = _import_step(workdir, force)
    state = _imported_state(config, weights, step)
    with checkpoint.open_manager(workdir, keep=existing + 1) as manager:
      checkpoint.save(manager, step, state=state, config=config.to_dict(), data_iterator=None)
      manager.wait_until_finished()
    write_file_atomic(workdir / 'config.json', config_lib.config_to_json(config))
  return checkpoint.checkpoint_dir(workdir) / str(step)
