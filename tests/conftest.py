"""Shared fixtures: a private TFDS data dir with the bundled samples, and CLI runners."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
# Environment of a fresh process that sees 4 CPU devices (parallel code without accelerators).
FOUR_DEVICES = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4', 'JAX_PLATFORMS': 'cpu'}


@pytest.fixture(scope='session', autouse=True)
def samples_data_dir(tmp_path_factory):
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
  workdir = tmp_path_factory.mktemp('seed_stack') / 'run'
  train_and_evaluate(smoke_config('denoise_seed_stack'), workdir, progress=False)
  return workdir


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
