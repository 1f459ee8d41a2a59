"""Ablation sweeps: one workdir per run, named by its overrides; rerun to resume; shard over machines.

An ablation file (`experiments/ablations/NAME.py`) has `get_config(arg)` (the
base experiment, with a `smoke` variant) and `get_sweep()`: a list of override
dicts `{'model.depth': 5, 'seed': 0}`, built with `product`, `zipped` and
`cross`. `run_sweep` trains each run of its shard through `train_and_evaluate`
in `<root>/<run name>/`:

- a run's workdir is claimed with the workdir lock (`safety.WorkdirLock`,
  an OS lock that dies with its process), so two invocations or shards never
  train the same run at once, and a killed one leaves no stale claim;
- a finished or failed run is recorded in its `sweep_status.json` and skipped
  when the sweep is run again; an interrupted run resumes from its checkpoint;
- a run whose config is rejected or whose loss diverges is recorded as failed
  with its one-line error, and the sweep goes on.
"""

import inspect
import itertools
import json
import pathlib
import re
import time
from typing import Any, Iterable, Sequence

import jax
import ml_collections
import numpy as np

from cnnrecon import config as config_lib
from cnnrecon import safety
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation import train_and_evaluate
from cnnrecon.export.signatures import concrete_specs, signature_of_model
from cnnrecon.inference import load_trained
from cnnrecon.io import write_file_atomic

STATUS_FILE = 'sweep_status.json'
SWEEP_FILE = 'sweep.json'


def product(axes: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
  """Every combination of the axes' values: `product({'a': [1, 2], 'b': [3]})` -> `[{a: 1, b: 3}, {a: 2, b: 3}]`."""
  keys = list(axes)
  return [dict(zip(keys, values)) for values in itertools.product(*(axes[key] for key in keys))]


def zipped(axes: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
  """The axes' values side by side (all of one length): `zipped({'a': [1, 2], 'b': [3, 4]})` -> 2 runs."""
  lengths = {key: len(values) for key, values in axes.items()}
  if len(set(lengths.values())) > 1:
    raise CnnreconError(f'zipped axes need equal lengths, got {lengths}: use product() to combine them instead')
  keys = list(axes)
  return [dict(zip(keys, values)) for values in zip(*(axes[key] for key in keys))]


def cross(*sweeps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
  """Every combination of runs from several sweeps, e.g. `cross(zipped(...), product({'seed': [0, 1]}))`."""
  return [{key: value for run in runs for key, value in run.items()} for runs in itertools.product(*sweeps)]


def value_text(value: Any) -> str:
  """A value as file-name-safe text (no '/', spaces, quotes); a tuple or list joins its items with '+'."""
  if isinstance(value, (tuple, list)):
    return '+'.join(value_text(item) for item in value) or 'none'
  return re.sub(r'[^A-Za-z0-9._+-]', '', str(value)) or 'none'


def run_name(overrides: dict[str, Any]) -> str:
  """A stable, readable workdir name: `depth=5,residual=True,seed=0` (keys' last part unless that is ambiguous)."""
  leaves = [key.rsplit('.', 1)[-1] for key in overrides]
  names = [leaf if leaves.count(leaf) == 1 else key for key, leaf in zip(overrides, leaves)]
  return ','.join(f'{name}={value_text(value)}' for name, value in zip(names, overrides.values())) or 'base'


def _override_text(value: Any) -> str:
  return value if isinstance(value, str) else repr(value)


def load_sweep(spec: str) -> list[dict[str, Any]]:
  """The override dicts of an ablation file's `get_sweep()` (`spec`: `file.py[:ARG]`; ARG picks the base).

  A `get_sweep(arg)` that takes an argument gets ARG too (None without one), so
  that e.g. the smoke variant can sweep fewer seeds.
  """
  path, _, arg = spec.partition(':')
  module = config_lib.import_experiment_file(path)
  if not hasattr(module, 'get_sweep'):
    raise CnnreconError(f'{path} has no get_sweep() function: add one returning a list of override dicts')
  takes_arg = bool(inspect.signature(module.get_sweep).parameters)
  runs = module.get_sweep(arg or None) if takes_arg else module.get_sweep()
  if not runs or not all(isinstance(run, dict) for run in runs):
    raise CnnreconError(f'{path}: get_sweep() must return a non-empty list of dicts like {{"model.depth": 5}}')
  names = [run_name(run) for run in runs]
  repeated = sorted({name for name in names if names.count(name) > 1})
  if repeated:
    raise CnnreconError(f'{path}: get_sweep() lists the run {repeated[0]} more than once: make each run unique')
  return runs


def parse_shard(text: str) -> tuple[int, int]:
  """`'K/N'` -> (K, N) with 0 <= K < N."""
  match = re.fullmatch(r'(\d+)/(\d+)', text.strip())
  if not match or not 0 <= int(match[1]) < int(match[2]):
    raise CnnreconError(f'--shard {text!r}: write K/N with 0 <= K < N, e.g. --shard 0/8 for the first of 8 shards')
  return int(match[1]), int(match[2])


def select(runs: Sequence[dict], *, only: Iterable[str] = (), shard: tuple[int, int] = (0, 1)) -> list[dict]:
  """The runs matching every `key=value` of `only` (value compared as text), then every N-th from K."""
  conditions = []
  for item in only:
    key, sep, value = item.partition('=')
    if not sep:
      raise CnnreconError(f'--only {item!r}: write KEY=VALUE, e.g. --only model.depth=5')
    conditions.append((key, value))
  chosen = [run for run in runs if all(key in run and value in (_override_text(run[key]), str(run[key]))
                                       for key, value in conditions)]
  index, count = shard
  return chosen[index::count]


def read_status(workdir: pathlib.Path) -> dict | None:
  """The run's recorded end (`{'status': 'finished' | 'failed', ...}`), or None while it has none."""
  path = workdir / STATUS_FILE
  return json.loads(path.read_text()) if path.is_file() else None


def _record(workdir: pathlib.Path, overrides: dict, status: str, **extra) -> None:
  write_file_atomic(workdir / STATUS_FILE, json.dumps({'status': status, 'overrides': overrides, **extra},
                                                      indent=1, default=str) + '\n')


def run_config(spec: str, overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """The base config of `spec` with one run's overrides applied (as `--config.KEY=VALUE` would)."""
  return config_lib.load_config(spec, [f'{key}={_override_text(value)}' for key, value in overrides.items()])


def model_cost(workdir: pathlib.Path) -> tuple[int, float | None]:
  """(parameter count, FLOPs per eval_crop² example of the exported inference function, from XLA's cost analysis).

  The function is the task's export signature (`Task.export_signature`): for a reconstruction task the
  initial estimate and the net, for AdaIN the encoder too. None when XLA reports no FLOPs.
  """
  model = load_trained(workdir)
  params = sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(model.variables['params']))
  signature = signature_of_model(model)
  # Counted on the lowered (not compiled) program: backends that call cuDNN report ~0 after compiling.
  cost = jax.jit(signature.function).lower(*concrete_specs(signature, model.config.data.eval_crop)).cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return params, float(cost['flops']) if cost and 'flops' in cost else None


def _run_one(spec: str, overrides: dict, workdir: pathlib.Path, *, progress: bool, attempt: int = 1) -> str:
  """Trains one run to its end (resuming if it has a checkpoint); returns its outcome."""
  try:
    config = run_config(spec, overrides)
    summary = train_and_evaluate(config, workdir, progress=progress)
  except CnnreconError as error:
    _record(workdir, overrides, 'failed', error=str(error).splitlines()[0], attempts=attempt)
    return 'failed'
  if 'report' not in summary:  # stopped by a signal: the next invocation resumes it
    return 'interrupted'
  params, flops = model_cost(workdir)  # once, here: reports read it from the status file
  _record(workdir, overrides, 'finished', step=summary['step'], params=params, flops_per_image=flops)
  return 'finished'


def run_sweep(spec: str, root: str | pathlib.Path, *, only: Iterable[str] = (), shard: tuple[int, int] = (0, 1),
              retry_failed: bool = False, started: float | None = None, progress: bool = False,
              echo=print) -> dict[str, int]:
  """Runs this invocation's share of an ablation sweep; finished and failed runs are skipped.

  Args:
    spec: the ablation file, `file.py[:ARG]` (ARG picks the base config's variant).
    root: the sweep's folder; each run trains in `<root>/<run name>/`.
    only: `key=value` filters on the runs' overrides.
    shard: (K, N): this invocation takes every N-th selected run from K.
    retry_failed: run the runs recorded as failed (before this call) again, e.g. after a fix;
      their status counts the `attempts`.
    started: when the invocation began (time.time(); default now): `--max-parallel` gives its
      workers its own, so that a failure one worker records is not retried by another.
    progress: show each run's progress bar.
    echo: where the one-line progress messages go.

  Returns:
    Counts of this shard's runs: `finished` (now or before), `failed`, `busy`
    (claimed by another invocation), `interrupted` (a signal stopped the run,
    which saved a checkpoint, and the sweep), and `total`.
  """
  started = time.time() if started is None else started
  root = pathlib.Path(root)
  runs = load_sweep(spec)
  config_lib.load_config_file(spec)  # a broken base config fails here, once, not as every run's failure
  root.mkdir(parents=True, exist_ok=True)
  write_file_atomic(root / SWEEP_FILE, json.dumps({'spec': spec, 'runs': runs}, indent=1, default=str) + '\n')
  counts = dict.fromkeys(('finished', 'failed', 'busy', 'interrupted'), 0)
  mine = select(runs, only=only, shard=shard)
  for number, overrides in enumerate(mine, 1):
    name = run_name(overrides)
    workdir = root / name
    try:
      with safety.WorkdirLock(workdir):
        status = read_status(workdir)
        attempt = 1
        # Only failures recorded before this invocation began: with --max-parallel, a sibling worker's
        # fresh failure of the same run is not retried a second time.
        if (status and status['status'] == 'failed' and retry_failed
            and (workdir / STATUS_FILE).stat().st_mtime < started):
          attempt = status.get('attempts', 1) + 1
          (workdir / STATUS_FILE).unlink()
          status = None
        outcome = status['status'] if status else _run_one(spec, overrides, workdir, progress=progress,
                                                            attempt=attempt)
    except CnnreconError:  # the lock is held: another invocation is training this run
      outcome = 'busy'
    counts[outcome] += 1
    echo(f'[{number}/{len(mine)}] {name}: {outcome}')
    if outcome == 'interrupted':  # SIGTERM / Ctrl-C: the run saved a checkpoint; stop the sweep too
      break
  counts['total'] = len(mine)
  return counts

