"""`cnnrecon reproduce`: train a finished run again from its recorded config and compare the results.

On CPU with the same versions, cnnrecon's runs are bitwise reproducible, so
every logged metric and every final parameter must be equal; otherwise the
report lists what differs, by how much, and which versions, platform or
devices changed since the original run (from its `run.json`).
"""

import json
import math
import pathlib

import jax
import numpy as np

from cnnrecon import config as config_lib
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation.run import train_and_evaluate
from cnnrecon.io import read_jsonl, write_file_atomic
from cnnrecon.train import checkpoint, provenance

RESULT_FILE = 'reproduction.json'
TIMING_KEYS = ('train/wall_time_s', 'train/images_per_s')  # never reproducible: left out of the comparison


def _logged_metrics(workdir: pathlib.Path) -> dict[str, float]:
  """`{'<key>@<step>': value}` of every logged metric but the timings."""
  path = workdir / 'metrics.jsonl'
  if not path.is_file():
    return {}
  return {f"{key}@{record['step']}": value for record in read_jsonl(path) for key, value in record.items()
          if key != 'step' and key not in TIMING_KEYS}


def _final_scores(workdir: pathlib.Path) -> dict[str, float]:
  """The final report's averages (`eval/summary.json`, flattened to `model/psnr`, ...)."""
  path = workdir / 'eval' / 'summary.json'
  if not path.is_file():
    return {}
  return {f'{row}/{key}': value for row, values in json.loads(path.read_text()).items()
          for key, value in values.items() if isinstance(value, (int, float))}


def _differences(original: dict[str, float], again: dict[str, float]) -> dict[str, dict]:
  differ = {}
  for key in sorted(set(original) | set(again)):
    first, second = original.get(key), again.get(key)
    same = first == second or (isinstance(first, float) and isinstance(second, float)
                               and math.isnan(first) and math.isnan(second))
    if not same:
      gap = abs(second - first) if isinstance(first, (int, float)) and isinstance(second, (int, float)) else None
      differ[key] = {'original': first, 'again': second, 'abs_diff': gap}
  return differ


def _params_differences(original: pathlib.Path, again: pathlib.Path) -> dict[str, float]:
  """Largest absolute difference per variable collection between the two runs' latest checkpoints."""
  _, _, first = checkpoint.load_variables(original, step='latest')
  _, _, second = checkpoint.load_variables(again, step='latest')
  gaps = {}
  for collection in ('params', 'batch_stats'):
    pairs = zip(jax.tree.leaves(first.get(collection, {})), jax.tree.leaves(second.get(collection, {})))
    gap = max((float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) for a, b in pairs), default=0.0)
    if gap:
      gaps[collection] = gap
  return gaps


def _environment_changes(original: dict, now: dict) -> dict[str, dict]:
  """Versions, git commit, platform and devices that differ between the original's first session and now."""
  changes = {}
  for section in ('versions', 'git', 'platform', 'devices'):
    before, after = original.get(section, {}), now.get(section, {})
    for key in sorted(set(before) | set(after)):
      if before.get(key) != after.get(key) and key != 'dirty':
        changes[f'{section}.{key}'] = {'original': before.get(key), 'again': after.get(key)}
  return changes


def reproduce_run(original: str | pathlib.Path, workdir: str | pathlib.Path, *, progress: bool = True) -> dict:
  """Trains `original`'s recorded config again in `workdir` and compares metrics and parameters.

  Args:
    original: a finished training workdir (with config.json and metrics.jsonl).
    workdir: a new (or empty) directory for the second run.
    progress: show the progress bar.

  Returns:
    The comparison, also written to `<workdir>/reproduction.json`:
    `identical` (every logged metric, final score and parameter equal),
    `metric_differences`, `params_max_abs_diff`, `environment_changes`.
  """
  original, workdir = pathlib.Path(original), pathlib.Path(workdir)
  config_path = original / 'config.json'
  if not config_path.is_file() or not (original / 'metrics.jsonl').is_file():
    raise CnnreconError(f'{original} has no config.json and metrics.jsonl: pass a workdir written by '
                        '`cnnrecon train`')
  if workdir.absolute() == original.absolute():
    raise CnnreconError('--workdir must differ from the run being reproduced: give a new directory')
  if workdir.exists() and any(workdir.iterdir()):
    raise CnnreconError(f'--workdir {workdir} exists and is not empty: give a new directory for the second run')
  config = config_lib.upgrade_config(config_lib.config_from_dict(json.loads(config_path.read_text())))
  step = checkpoint.saved_step(original, 'latest')  # the step only: no arrays restored
  if step < config.train.steps:
    raise CnnreconError(f'{original} stopped at step {step} of {config.train.steps}: finish it first (rerun '
                        'its `cnnrecon train` command, which resumes), then reproduce it')
  train_and_evaluate(config, workdir, progress=progress)
  result = compare_runs(original, workdir)
  write_file_atomic(workdir / RESULT_FILE, json.dumps(result, indent=1, default=str) + '\n')
  return result


def compare_runs(original: str | pathlib.Path, again: str | pathlib.Path) -> dict:
  """Compares two finished runs of one config: logged metrics, final scores, latest parameters.

  Returns:
    `{'identical', 'metric_differences', 'params_max_abs_diff', 'environment_changes'}`; the
    environment changes are between `original`'s first recorded session and this process.
  """
  original, again = pathlib.Path(original), pathlib.Path(again)
  sessions = provenance.read_run_record(original)['sessions']
  result = {
      'original': str(original), 'again': str(again),
      'metric_differences': _differences({**_logged_metrics(original), **_final_scores(original)},
                                         {**_logged_metrics(again), **_final_scores(again)}),
      'params_max_abs_diff': _params_differences(original, again),
      'environment_changes': _environment_changes(sessions[0], provenance.environment()) if sessions else None,
  }
  result['identical'] = not result['metric_differences'] and not result['params_max_abs_diff']
  return result


def describe(result: dict) -> str:
  """The comparison in a few lines for the terminal."""
  if result['identical']:
    lines = [f"reproduced {result['original']} bit for bit: every logged metric, final score and parameter equal"]
  else:
    differ = result['metric_differences']
    lines = [f"{result['again']} differs from {result['original']}: {len(differ)} metric value(s)"
             + ''.join(f"; {name} max |diff| {gap:.3g}" for name, gap in result['params_max_abs_diff'].items())]
    for key, values in list(differ.items())[:8]:
      lines.append(f"  {key}: {values['original']} -> {values['again']}")
  changes = result['environment_changes']
  if changes is None:
    lines.append('  (the original has no run.json: its versions are unknown)')
  elif changes:
    lines.append('  changed since the original: ' + ', '.join(
        f"{key} {values['original']} -> {values['again']}" for key, values in changes.items()))
  elif not result['identical']:
    lines.append('  same versions, platform and devices: a difference here is a reproducibility bug')
  return '\n'.join(lines)
