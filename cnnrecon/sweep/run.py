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
  with its one-line error, and the sweep goes on (the CLI then exits with 1,
  `RunsFailed`, naming the failed runs, after writing the report);
- a root belongs to one ablation and variant (`claim_root`, recorded in its
  sweep.json): another's root, a training workdir, a file or a folder holding
  anything else is refused before anything is written, as are `--only`
  filters that name a key no run sets or match no run.
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
from cnnrecon.errors import CnnreconError, RunsFailed
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
  call = f'get_sweep({arg or None!r})' if takes_arg else 'get_sweep()'
  try:
    runs = module.get_sweep(arg or None) if takes_arg else module.get_sweep()
  except Exception as error:  # a broken ablation file is the user's to fix, whatever it raises
    first_line = next(iter(str(error).splitlines()), '')
    raise CnnreconError(f'{path}: {call} failed: {type(error).__name__}: {first_line}') from error
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
  """The runs matching every `key=value` of `only` (value compared as text), then every N-th from K.

  Raises:
    CnnreconError: an `only` item is not KEY=VALUE, names a key no run sets, or the items match no run
      (a typo would otherwise run nothing and succeed).
  """
  conditions = []
  keys = list(dict.fromkeys(key for run in runs for key in run))
  for item in only:
    key, sep, value = item.partition('=')
    if not sep:
      raise CnnreconError(f'--only {item!r}: write KEY=VALUE, e.g. --only model.depth=5')
    if key not in keys:
      raise CnnreconError(f'--only {item}: no run of this sweep sets {key}; its keys are '
                          f'{", ".join(keys) or "none (a single base run)"}')
    conditions.append((key, value))
  chosen = [run for run in runs if all(key in run and value in (_override_text(run[key]), str(run[key]))
                                       for key, value in conditions)]
  if conditions and not chosen:
    values = '; '.join(f'{key} takes {", ".join(dict.fromkeys(str(run[key]) for run in runs if key in run))}'
                       for key in dict.fromkeys(key for key, _ in conditions))
    given = ' '.join(f'--only {item}' for item in only)
    if len(conditions) == 1:
      raise CnnreconError(f'{given} matches no run of this sweep ({values}): pick one of those values')
    raise CnnreconError(f'{given} match no run of this sweep together ({values}): pick values one run has')
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


def _ablation_of(spec: str) -> dict[str, str | None]:
  """What identifies a sweep: its ablation file (resolved) and variant (the ARG of `file.py:ARG`)."""
  path, _, arg = spec.partition(':')
  return {'ablation': str(pathlib.Path(path).resolve()), 'variant': arg or None}


def _sweep_text(ablation: dict[str, str | None]) -> str:
  """`file.py:ARG` (or `file.py`) of an ablation."""
  name = pathlib.PurePath(ablation['ablation']).name
  return name + (f":{ablation['variant']}" if ablation['variant'] else '')


def _held_ablation(root: pathlib.Path) -> dict[str, str | None]:
  """The ablation whose sweep `root` holds, from its sweep.json (older ones record only the spec)."""
  try:
    record = json.loads((root / SWEEP_FILE).read_text())
    if 'ablation' in record:
      return {'ablation': record['ablation'], 'variant': record['variant']}
    path, _, arg = record['spec'].partition(':')
    return {'ablation': path, 'variant': arg or None}
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
    raise CnnreconError(f'--root {root}: its {SWEEP_FILE} is not one cnnrecon wrote ({type(error).__name__}): '
                        'pick another --root') from None


def _check_root_contents(root: pathlib.Path, wanted: dict[str, str | None], runs: Sequence[dict]) -> None:
  """Refuses a root that is a training workdir, holds another ablation's sweep, or holds anything else.

  A root without a sweep.json may hold folders named as this sweep's runs (e.g. one claimed by another
  invocation that has not written sweep.json yet).
  """
  # A concurrent shard's sweep.json being written (write_file_atomic's temporary file) is not foreign.
  temporary = re.compile(rf'\.{re.escape(SWEEP_FILE)}\.\w+\.tmp')
  names = sorted(path.name for path in root.iterdir() if not temporary.fullmatch(path.name))
  markers = [name for name in safety.WORKDIR_MARKERS if name in names]
  if markers:
    raise CnnreconError(f'--root {root} is a training workdir (it holds {", ".join(markers)}): pick another '
                        '--root, e.g. a new folder')
  if SWEEP_FILE in names:
    held = _held_ablation(root)
    # Compared by file name, not full path: shards on other machines, or a clone of the repository,
    # reach the same ablation file by another path.
    if (pathlib.PurePath(held['ablation']).name, held['variant']) != (pathlib.PurePath(wanted['ablation']).name,
                                                                     wanted['variant']):
      raise CnnreconError(f"--root {root} holds the sweep of {_sweep_text(held)} ({held['ablation']}), not of "
                          f'{_sweep_text(wanted)}: pick another --root for this sweep')
    return
  own_runs = {run_name(run) for run in runs}
  foreign = [name for name in names if name not in own_runs or not (root / name).is_dir()]
  if foreign:
    shown = ', '.join(foreign[:3]) + (', ...' if len(foreign) > 3 else '')
    raise CnnreconError(f'--root {root} is not empty and holds no sweep (it holds {shown}): pick a new or empty '
                        'folder for --root')


def claim_root(root: str | pathlib.Path, spec: str, runs: Sequence[dict]) -> pathlib.Path:
  """Makes `root` the sweep root of `spec` (writes its sweep.json), or refuses it with nothing written.

  A root belongs to one ablation and variant: another's sweep.json, results
  and plots would be replaced, and its finished runs taken for this sweep's.
  A file, a training workdir and a non-empty folder holding no sweep are
  refused too.

  Returns:
    The root as a `pathlib.Path`.
  """
  root = pathlib.Path(root)
  blocker = next((path for path in [root, *root.parents] if path.exists() and not path.is_dir()), None)
  if blocker is not None:
    where = 'is' if blocker == root else f'lies under {blocker}, which is'
    raise CnnreconError(f'--root {root} {where} a file, not a folder: pick another --root')
  wanted = _ablation_of(spec)
  if root.is_dir():
    _check_root_contents(root, wanted, runs)
  root.mkdir(parents=True, exist_ok=True)
  write_file_atomic(root / SWEEP_FILE, json.dumps({'spec': spec, **wanted, 'runs': list(runs)}, indent=1,
                                                  default=str) + '\n')
  return root


def runs_failed(root: str | pathlib.Path, names: Sequence[str], total: int) -> RunsFailed:
  """The error that ends a sweep with failed runs (raised after its report is written)."""
  shown = ', '.join(names[:5]) + (f' and {len(names) - 5} more' if len(names) > 5 else '')
  return RunsFailed(f"{len(names)} of this shard's {total} runs failed: {shown}; their errors are in "
                    f"{pathlib.Path(root) / 'results.md'}: fix the cause and rerun with --retry-failed")


def _run_one(spec: str, overrides: dict, workdir: pathlib.Path, *, progress: bool,
             attempt: int = 1) -> tuple[str, str | None]:
  """Trains one run to its end (resuming if it has a checkpoint); returns its outcome and the stopping signal."""
  try:
    config = run_config(spec, overrides)
    summary = train_and_evaluate(config, workdir, progress=progress)
  except CnnreconError as error:
    _record(workdir, overrides, 'failed', error=str(error).splitlines()[0], attempts=attempt)
    return 'failed', None
  if 'report' not in summary:  # stopped by a signal, with a checkpoint: the next invocation resumes it
    return 'interrupted', summary.get('stopped_by')
  params, flops = model_cost(workdir)  # once, here: reports read it from the status file
  _record(workdir, overrides, 'finished', step=summary['step'], params=params, flops_per_image=flops)
  return 'finished', None


def prepare_sweep(spec: str, root: str | pathlib.Path, *, only: Iterable[str] = (),
                  shard: tuple[int, int] = (0, 1)) -> tuple[list[dict], list[dict]]:
  """Checks everything a sweep is given, then claims its root: (all its runs, this shard's runs).

  Nothing is written before the ablation, its base config, `only` and the root have passed.
  """
  runs = load_sweep(spec)
  config_lib.load_config_file(spec)  # a broken base config fails here, once, not as every run's failure
  mine = select(runs, only=only, shard=shard)
  claim_root(root, spec, runs)
  return runs, mine


def left_to_claim(workdir: pathlib.Path, *, retry_failed: bool, started: float) -> bool:
  """Whether a run still needs a worker: it has no recorded end, or a failure recorded before `started` to retry."""
  status = read_status(workdir)
  return status is None or (retry_failed and status['status'] == 'failed'
                            and (workdir / STATUS_FILE).stat().st_mtime < started)


def run_sweep(spec: str, root: str | pathlib.Path, *, only: Iterable[str] = (), shard: tuple[int, int] = (0, 1),
              retry_failed: bool = False, started: float | None = None, progress: bool = False,
              echo=print) -> dict[str, Any]:
  """Runs this invocation's share of an ablation sweep; finished and failed runs are skipped.

  Args:
    spec: the ablation file, `file.py[:ARG]` (ARG picks the base config's variant).
    root: the sweep's folder; each run trains in `<root>/<run name>/`. It must be new, empty, or
      this ablation's (and variant's) sweep root (`claim_root`).
    only: `key=value` filters on the runs' overrides; each key must be swept and together they
      must match a run.
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
    which saved a checkpoint, and the sweep), and `total`; `stopped_by`, the
    signal's name ('SIGINT', 'SIGTERM') or None; `failed_runs`, the failed
    runs' names.

  Raises:
    CnnreconError: the ablation, its base config, `only` or the root is refused (nothing is written).
  """
  started = time.time() if started is None else started
  root = pathlib.Path(root)
  _, mine = prepare_sweep(spec, root, only=only, shard=shard)
  counts = {**dict.fromkeys(('finished', 'failed', 'busy', 'interrupted'), 0), 'stopped_by': None,
            'failed_runs': []}
  for number, overrides in enumerate(mine, 1):
    name = run_name(overrides)
    workdir = root / name
    try:
      with safety.WorkdirLock(workdir):
        status = read_status(workdir)
        attempt = 1
        # Only failures recorded before this invocation began: with --max-parallel, a sibling worker's
        # fresh failure of the same run is not retried a second time.
        if status and status['status'] == 'failed' and left_to_claim(workdir, retry_failed=retry_failed,
                                                                     started=started):
          attempt = status.get('attempts', 1) + 1
          (workdir / STATUS_FILE).unlink()
          status = None
        outcome, signal_name = (status['status'], None) if status else _run_one(
            spec, overrides, workdir, progress=progress, attempt=attempt)
    except CnnreconError:  # the lock is held: another invocation is training this run
      outcome, signal_name = 'busy', None
    counts[outcome] += 1
    if outcome == 'failed':
      counts['failed_runs'].append(name)
    echo(f'[{number}/{len(mine)}] {name}: {outcome}' + (f' by {signal_name}, with a checkpoint' if signal_name
                                                        else ''))
    if outcome == 'interrupted':  # SIGTERM / Ctrl-C: the run saved a checkpoint; stop the sweep too
      counts['stopped_by'] = signal_name
      break
  counts['total'] = len(mine)
  return counts
