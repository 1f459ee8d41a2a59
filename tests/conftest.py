"""Shared fixtures: a private TFDS data dir with the bundled samples, and CLI runners."""

import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
# Environment of a fresh process that sees 4 CPU devices (parallel code without accelerators).
# (Added to the XLA flags this run was given, so the suite's compile options reach it too.)
FOUR_DEVICES = {'XLA_FLAGS': f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=4".strip(),
                'JAX_PLATFORMS': 'cpu'}


def run_folder(tmp_path_factory) -> pathlib.Path:
  """A folder of this pytest run that every xdist worker shares (the workers' base temp's parent)."""
  base = tmp_path_factory.getbasetemp()
  return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


def built_once(tmp_path_factory, name: str, build) -> pathlib.Path:
  """`build(folder)` once per pytest run, whichever worker asks first (the others wait for it); the folder.

  For expensive things many tests only read: a trained run, the results of the 4-device process.
  """
  root = run_folder(tmp_path_factory)
  folder, done = root / name, root / f'{name}.done'
  with open(root / f'{name}.lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not done.exists():
      shutil.rmtree(folder, ignore_errors=True)
      folder.mkdir()
      build(folder)
      done.touch()
  return folder


FIRST_TEST = 'tests/test_parallel.py::test_gradient_on_four_devices_equals_one_device[shard_map]'


def pytest_collection_modifyitems(items):
  """Runs one test that needs the 4-device process first (`four_devices`, about a minute of one core).

  Its worker builds the process from the start while the other works, so the other never waits idle
  on the fixture's lock (35 s of an idle core in one run when two tests asked for it at once), and a
  minute-long build never lands at the end of the run. The moved test reads only that fixture.
  """
  first = [item for item in items if item.nodeid == FIRST_TEST]
  items[:] = first + [item for item in items if item not in first]


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """One persistent XLA compilation cache for the whole run: every worker and subprocess.

  Dozens of tests train the same smoke configs; the cache compiles each program once (a smoke run
  takes 5 s instead of 9 s). Executables are keyed by the program and the compile options, so a
  test gets the code a fresh compile would give.
  """
  import jax
  cache = run_folder(tmp_path_factory) / 'jax_compilation_cache'
  cache.mkdir(exist_ok=True)
  settings = {'JAX_COMPILATION_CACHE_DIR': str(cache), 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS': '0',
              'JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES': '0'}
  os.environ.update(settings)  # subprocesses (run_cli, run_python) read them at start-up
  jax.config.update('jax_compilation_cache_dir', str(cache))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)
  return cache


@pytest.fixture(scope='session', autouse=True)
def samples_data_dir(tmp_path_factory, compilation_cache):
  """Builds the bundled sample dataset once per test worker, into a private data dir."""
  from cnnrecon.data.sources import load_source
  data_dir = tmp_path_factory.mktemp('tfds')
  os.environ['CNNRECON_DATA_DIR'] = str(data_dir)
  load_source('samples:train', data_dir=str(data_dir))
  return data_dir


@pytest.fixture(scope='session')
def seed_stack_run(tmp_path_factory):
  """A finished seed-stack smoke run (two 2x2 poolings), shared by the tests that only read it."""
  from cnnrecon.evaluation import train_and_evaluate
  return built_once(tmp_path_factory, 'seed_stack_run',
                    lambda folder: train_and_evaluate(smoke_config('denoise_seed_stack'), folder / 'run',
                                                      progress=False)) / 'run'


@pytest.fixture(scope='session')
def dncnn_smoke_run(tmp_path_factory):
  """A finished `denoise_dncnn.py:smoke` run, trained once per pytest run; copy it before changing it."""
  from cnnrecon.evaluation import train_and_evaluate
  return built_once(tmp_path_factory, 'dncnn_smoke_run',
                    lambda folder: train_and_evaluate(smoke_config(), folder / 'run', progress=False)) / 'run'


@pytest.fixture(scope='session')
def four_devices(tmp_path_factory):
  """What every 4-device check needs, from ONE process with 4 forced host devices (`four_devices.py`).

  Returns:
    `(results, folder)`: the JSON the process wrote, and its folder (it holds its training runs).
  """
  def build(folder):
    result = run_python(f'import four_devices; four_devices.main({str(folder)!r})', env_extra=FOUR_DEVICES,
                        timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
  folder = built_once(tmp_path_factory, 'four_devices', build)
  return json.loads((folder / 'results.json').read_text()), folder


def run_cli(*args, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
  """Runs `python -m cnnrecon.cli ARGS` in a fresh process (so XLA flags can differ)."""
  env = {**os.environ, **(env_extra or {})}
  return subprocess.run([sys.executable, '-m', 'cnnrecon.cli', *map(str, args)], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout)


def run_python(code: str, *, env_extra=None, timeout=300) -> subprocess.CompletedProcess:
  """Runs `python -c CODE` in tests/ in a fresh process (e.g. with 4 forced host devices)."""
  env = {**os.environ, **(env_extra or {})}
  return subprocess.run([sys.executable, '-c', code], cwd=REPO / 'tests', env=env, capture_output=True,
                        text=True, timeout=timeout)


def read_metrics(workdir, key: str) -> dict[int, float]:
  """{step: value} of one scalar from a run's metrics.jsonl."""
  from cnnrecon.io import read_jsonl
  return {record['step']: record[key] for record in read_jsonl(pathlib.Path(workdir) / 'metrics.jsonl')
          if key in record}


def smoke_config(experiment: str = 'denoise_dncnn', **overrides):
  """The smoke variant of an experiment with `a__b=value` overrides."""
  from cnnrecon.config import load_config
  return load_config(str(REPO / 'experiments' / f'{experiment}.py') + ':smoke',
                     [f"{key.replace('__', '.')}={value}" for key, value in overrides.items()])


def trained_smoke_run(tmp_path_factory, experiment: str, variant: str = 'smoke') -> pathlib.Path:
  """The finished run of `experiments/<experiment>.py:<variant>`, trained once per pytest run for every test
  that reads it (tests/test_spine.py checks every experiment's; a task's own tests read the same run)."""
  from cnnrecon.config import load_config
  from cnnrecon.evaluation import train_and_evaluate
  config = load_config(str(REPO / 'experiments' / f'{experiment}.py') + f':{variant}')
  name = f'{experiment}_{variant}_run'
  return built_once(tmp_path_factory, name,
                    lambda folder: train_and_evaluate(config, folder / 'run', progress=False)) / 'run'


def fails_with_one_line(capsys, argv, *fragments, status: int = 2) -> str:
  """Runs the CLI in-process; asserts the exit status and one stderr line containing `fragments`."""
  from cnnrecon import cli
  got = cli.main([str(arg) for arg in argv])
  err = capsys.readouterr().err.strip()
  assert got == status, err
  assert len(err.splitlines()) == 1, err
  assert err.startswith('cnnrecon: error: ')
  for fragment in fragments:
    assert fragment in err, err
  return err
