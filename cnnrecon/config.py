"""Experiment configs: load `experiments/*.py`, apply CLI overrides, validate.

A config is named `path/to/file.py` or `path/to/file.py:ARG`; the file's
`get_config(ARG)` returns an `ml_collections.ConfigDict`. Overrides look like
`--config.train.steps=100`.

`ml_collections.config_flags` does the same parsing, but only through absl's
global flag registry and `app.run`; our CLI has subcommands and must turn every
mistake into one `CnnreconError` line, so the few lines of override parsing
live here instead.
"""

import ast
import copy
import importlib.util
import json
import pathlib
import sys
import types
from typing import Any, Iterable

import ml_collections

from cnnrecon.errors import CnnreconError


# Keys renamed when the spine became task-generic; the old names keep working for one release.
RENAMED_KEYS = {
    'degradation.name': 'task.name',
    'degradation.sigma': 'task.gaussian.sigma',
    'degradation.peak': 'task.poisson.peak',
    'degradation.keep_prob': 'task.inpaint.keep_prob',
    'model.space_to_depth': 'model.dncnn.space_to_depth',
    'model.bn_epsilon': 'model.dncnn.bn_epsilon',
    'optim.weight_decay': 'optim.adamw.weight_decay',
    'optim.end_lr_factor': 'optim.cosine.end_lr_factor',
    'optim.step_boundaries': 'optim.step.boundaries',
    'optim.step_factor': 'optim.step.factor',
}
# Values that keys added later had in runs saved before them (where today's default differs).
LEGACY_DEFAULTS = {'data.sampler': 'host'}
# Keys that change how a run is logged, checkpointed or reported, never its params: resuming may change them.
RESUME_INDEPENDENT_KEYS = ('train.log_every', 'train.checkpoint_every', 'train.checkpoint_every_minutes',
                           'train.keep_checkpoints', 'data.num_threads', 'data.device_memory_mb',
                           'report.baselines', 'report.grid_examples', 'report.crop')
_noticed: set[str] = set()


def _deprecation_notice(old: str, new: str) -> None:
  """Prints one line per renamed key and process."""
  if old not in _noticed:
    _noticed.add(old)
    print(f'cnnrecon: deprecated: config key {old} is now {new}; the old name stops working in the next '
          'release', file=sys.stderr)


def _pop_dotted(values: dict, dotted: str) -> tuple[bool, Any]:
  *parents, leaf = dotted.split('.')
  node = values
  for name in parents:
    node = node.get(name)
    if not isinstance(node, dict):
      return False, None
  if leaf not in node:
    return False, None
  return True, node.pop(leaf)


def _set_dotted(values: dict, dotted: str, value: Any) -> None:
  *parents, leaf = dotted.split('.')
  node = values
  for name in parents:
    node = node.setdefault(name, {})
  node[leaf] = value


def upgrade_renamed_keys(values: dict, *, notice: bool = True) -> dict:
  """Moves values found under old key names (`RENAMED_KEYS`) to their new names.

  Args:
    values: a config as nested dicts (modified in place); an empty legacy
      `degradation` section is dropped.
    notice: print a one-line deprecation notice per renamed key.

  Returns:
    `values`, for chaining.
  """
  for old, new in RENAMED_KEYS.items():
    found, value = _pop_dotted(values, old)
    if found:
      if notice:
        _deprecation_notice(old, new)
      _set_dotted(values, new, value)
  if values.get('degradation') == {}:
    del values['degradation']
  return values


def import_experiment_file(path: str) -> types.ModuleType:
  """Imports an experiment (or ablation) file by path; a missing or broken file is a one-line error."""
  file = pathlib.Path(path)
  if not file.is_file():
    raise CnnreconError(
        f'config file {path} does not exist: pass e.g. '
        '--config experiments/denoise_dncnn.py:smoke')
  module_spec = importlib.util.spec_from_file_location(f'_cnnrecon_config_{file.stem}', file)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as error:  # a broken config file is the user's to fix
    raise CnnreconError(f'config file {path} failed to import: {error!r}') from error
  return module


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Imports `spec` ("file.py" or "file.py:ARG") and calls its `get_config(ARG)`.

  Args:
    spec: path to an experiment file, optionally followed by `:ARG`.

  Returns:
    The ConfigDict returned by the file's `get_config`.
  """
  path, _, arg = spec.partition(':')
  module = import_experiment_file(path)
  if not hasattr(module, 'get_config'):
    raise CnnreconError(f'config file {path} has no get_config(arg) function: add one')
  try:
    config = module.get_config(arg or None)
  except Exception as error:  # a broken experiment file is the user's to fix, whatever it raises
    raise CnnreconError(f'{path}: get_config({arg!r}) failed: {type(error).__name__}: {error}') from error
  if not isinstance(config, ml_collections.ConfigDict):
    raise CnnreconError(f'{path}: get_config({arg!r}) returned a {type(config).__name__}, not an '
                        'ml_collections.ConfigDict: return e.g. cnnrecon.config.base_config() with your changes')
  return upgrade_config(config)


def _parse_value(text: str, current: Any) -> Any:
  """Parses an override string into the type of the value it replaces."""
  if isinstance(current, str):
    return text
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered in ('true', '1', 'yes'):
      return True
    if lowered in ('false', '0', 'no'):
      return False
    raise ValueError(f'expected true/false, got {text!r}')
  try:
    value = ast.literal_eval(text)
  except (ValueError, SyntaxError) as error:
    raise ValueError(f'expected a {type(current).__name__}, got {text!r}') from error
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if current is not None and not isinstance(value, type(current)):
    raise ValueError(f'expected a {type(current).__name__}, got {text!r}')
  return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: Iterable[str]) -> ml_collections.ConfigDict:
  """Applies `a.b=value` overrides (the `--config.` prefix already removed).

  Args:
    config: the config to modify in place.
    overrides: strings of the form `dotted.key=value`.

  Returns:
    The same config, for chaining.
  """
  for override in overrides:
    key, sep, text = override.partition('=')
    if not sep:
      raise CnnreconError(f'config override {override!r} has no value: write --config.{key}=VALUE')
    if key in RENAMED_KEYS:
      _deprecation_notice(key, RENAMED_KEYS[key])
      key = RENAMED_KEYS[key]
    *parents, leaf = key.split('.')
    node = config
    for depth, name in enumerate(parents):
      if not isinstance(node.get(name), ml_collections.ConfigDict):
        raise CnnreconError(f'unknown config key {".".join(parents[:depth + 1])!r} '
                            f'in --config.{key}: valid keys are {sorted(node.keys())}')
      node = node[name]
    if leaf not in node:
      raise CnnreconError(f'unknown config key {key!r}: valid keys here are {sorted(node.keys())}')
    try:
      node[leaf] = _parse_value(text, node[leaf])
    except (ValueError, TypeError) as error:
      raise CnnreconError(f'bad value for --config.{key}: {error}') from error
  return config


def load_config(spec: str, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
  """Loads an experiment config and applies CLI overrides (see module docstring)."""
  return apply_overrides(load_config_file(spec), overrides)


def upgrade_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` with old key names moved to their new places (see `RENAMED_KEYS`)."""
  return ml_collections.ConfigDict(upgrade_renamed_keys(config.to_dict()))


def config_to_json(config: ml_collections.ConfigDict) -> str:
  """Serializes a config as stable, human-readable JSON."""
  return json.dumps(config.to_dict(), indent=2, sort_keys=True)


def config_from_dict(values: dict) -> ml_collections.ConfigDict:
  """Rebuilds a ConfigDict from the JSON written by `config_to_json` (old key names upgraded quietly)."""
  return ml_collections.ConfigDict(upgrade_renamed_keys(copy.deepcopy(values), notice=False))


def flatten(values: dict, prefix: str = '') -> dict[str, Any]:
  """Flattens nested dicts to `a.b.c` keys (lists become tuples for comparison)."""
  flat = {}
  for key, value in values.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict):
      flat.update(flatten(value, f'{name}.'))
    else:
      flat[name] = tuple(value) if isinstance(value, list) else value
  return flat


def selected_components_only(values: dict) -> dict:
  """Drops the option sub-dicts of components a config does not select.

  `task.poisson.peak` does not change a run whose `task.name` is 'gaussian'.
  """
  values = copy.deepcopy(values)
  for section in ('task', 'model', 'optim'):
    node = values.get(section)
    if isinstance(node, dict):
      selected = {value for value in node.values() if isinstance(value, str)}
      for key in [k for k, v in node.items() if isinstance(v, dict) and k not in selected]:
        del node[key]
  return values


def differing_keys(saved: dict, current: dict) -> list[str]:
  """Lists the dotted keys whose values differ between two config dicts.

  Old key names in `saved` are upgraded first, options of components
  neither config selects and `RESUME_INDEPENDENT_KEYS` are ignored, and a
  key missing from `saved` counts as its `base_config()` default (it was
  added to cnnrecon later).
  """
  saved = upgrade_renamed_keys(copy.deepcopy(saved), notice=False)
  saved_flat = flatten(selected_components_only(saved))
  current_flat = flatten(selected_components_only(current))
  for key in RESUME_INDEPENDENT_KEYS:
    saved_flat.pop(key, None)
    current_flat.pop(key, None)
  # A key added to cnnrecon after the run was saved took its default value then.
  defaults = {**flatten(base_config().to_dict()), **LEGACY_DEFAULTS}
  for key, value in current_flat.items():
    if key not in saved_flat and key in defaults and defaults[key] == value:
      saved_flat[key] = value
  keys = sorted(set(saved_flat) | set(current_flat))
  return [key for key in keys if saved_flat.get(key, '<absent>') != current_flat.get(key, '<absent>')]


def base_config() -> ml_collections.ConfigDict:
  """The defaults every experiment starts from; experiments override fields."""
  return ml_collections.ConfigDict({
      'seed': 0,
      # 'shard_map' (jax.jit over a 1-D `data` mesh) or 'pmap'.
      'parallel': 'shard_map',
      # How XLA compiles the steps: cpu_conv='eigen' runs CPU convolutions on Eigen instead of
      # YNNPACK (2.5x faster DnCNN train steps, see cnnrecon/compiler.py); 'xla_default' = XLA's choice.
      'compile': {'cpu_conv': 'eigen'},
      # Options every model takes, then one sub-dict per model for its own options.
      # dncnn: space_to_depth runs the body on f x f sub-images, as FFDNet does; bn_epsilon is
      # BatchNorm's epsilon (imported weights record their own); residual=False outputs the clean
      # image instead of the noise, batch_norm=False drops BatchNorm (the paper's ablations).
      # unet: keep_known=True keeps the pixels the last input channel marks as known (region
      # inpainting), the net corrects only the others.
      # transform_net (fast style transfer): depth = residual blocks, features = first conv's
      # width, styles = how many styles its conditional instance norms hold.
      # adain_decoder (AdaIN style transfer): features = last stage's width (64: the paper's
      # 256/128/64); depth is unused (a fixed nine convs).
      'model': {'name': 'dncnn', 'depth': 17, 'features': 64, 'dtype': 'float32',
                'dncnn': {'space_to_depth': 1, 'bn_epsilon': 1e-5, 'residual': True, 'batch_norm': True},
                'unet': {'keep_known': False},
                'transform_net': {'styles': 1}},
      # What the model learns (cnnrecon/tasks/): `name`, then one sub-dict of options per task.
      # Noise levels `sigma` are on the 0-255 scale; `peak` is photons at white. Task families of
      # their own packages bring their sections (cnnrecon.style: fast_style_defaults, adain_defaults).
      'task': {'name': 'gaussian',
               'gaussian': {'sigma': 25.0},
               'poisson': {'peak': 30.0},
               'poisson_gaussian': {'peak': 30.0, 'sigma': 10.0},
               'inpaint': {'keep_prob': 0.5}},
      # Legacy: values an older experiment file sets here (degradation.sigma, ...) move to
      # task.* with a deprecation notice when the config is loaded (RENAMED_KEYS).
      'degradation': {},
      'data': {
          # 'samples[:SPLIT]', a folder of images, or 'tfds:NAME[:SPLIT]'.
          'train': 'samples:train',
          'eval': 'samples:validation',
          'data_dir': '',  # TFDS data dir; '' = $CNNRECON_DATA_DIR or ~/.cache/cnnrecon/tfds
          'channels': 1,
          # How RGB images become gray: 'luminance' (scikit-image's rgb2gray) or 'bt601_y' (the luma Y
          # of MATLAB's rgb2ycbcr, the super-resolution convention).
          'gray': 'luminance',
          'patch_size': 40,
          'batch_size': 32,  # global, over all devices of all processes
          'augment': True,  # random flips / rot90 (the 8 dihedral transforms)
          'eval_crop': 128,  # center crop used for validation during training
          'num_threads': 2,
          'workers': 0,  # host sampler: processes that cut batches in parallel (grain's mp_prefetch)
          'cache': True,  # decode training images once, keep them in RAM
          # Where training patches are cut (cnnrecon/train/batches.py): 'device' keeps the images on the
          # accelerators and samples there, 'host' runs the grain pipeline, 'auto' picks 'device' when the
          # images fit `device_memory_mb` (MiB per device). A run records the sampler it used.
          'sampler': 'auto',
          'device_memory_mb': 2048,
      },
      'optim': {
          'name': 'adam',  # adam | adamw (options in the sub-dict of the same name)
          'learning_rate': 1e-3,
          'warmup_steps': 100,
          'schedule': 'cosine',  # cosine | step (options in the sub-dict of the same name)
          'grad_clip': 1.0,  # global-norm clipping; 0 disables
          'adam': {},
          'adamw': {'weight_decay': 0.0},
          'cosine': {'end_lr_factor': 0.01},  # decay ends at learning_rate * end_lr_factor
          # The rate is multiplied by `factor` at each fraction of train.steps in `boundaries`
          # (DnCNN: 1e-3 -> 1e-4 after 30 of 50 epochs).
          'step': {'boundaries': (0.6,), 'factor': 0.1},
      },
      'train': {
          'steps': 2000,
          'loss': 'mse',  # mse | l1 | ssim (1 - SSIM, dm-pix's 11x11 Gaussian window)
          'log_every': 50,
          'eval_every': 500,
          'keep_checkpoints': 3,  # the last k, plus the best by the task's validation metric
          # A checkpoint at least every N steps and every M minutes, besides eval steps: what a
          # SIGKILL can lose (SIGTERM / SIGINT always save the current step).
          'checkpoint_every': 500,
          'checkpoint_every_minutes': 10.0,
          # A non-finite loss or gradient norm: 'stop' (exit status 3, nothing non-finite saved) or
          # 'skip_step' (drop that update, count it; stop after 10 in a row).
          'on_nonfinite': 'stop',
          'init_from': '',  # a workdir (trained or `weights import`ed) whose best params start this run
      },
      'report': {
          'baselines': True,  # the task's classical baselines in the final table
          'grid_examples': 4,
          # The final training report of a reconstruction task scores the central square of each
          # validation image, `crop` px a side (or its shorter side); 0 = whole images (`cnnrecon eval`
          # always scores whole images). The smoke variants use 64: one compiled size, not one per image.
          'crop': 0,
      },
  })


def shrink_for_smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Shrinks a config to a few seconds of CPU work (the `:smoke` variants)."""
  config.model.features = 8
  config.data.batch_size = 8
  config.data.eval_crop = 32
  config.train.steps = 6
  config.train.log_every = 2
  config.train.eval_every = 3
  config.train.checkpoint_every = 4
  config.optim.warmup_steps = 2
  config.report.baselines = False
  config.report.crop = 64
  return config
