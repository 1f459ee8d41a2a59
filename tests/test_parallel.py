"""Data parallelism: 1 vs 4 devices, shard_map vs pmap, and two real processes (gloo)."""

import socket
import subprocess
import sys

import pytest

from conftest import REPO, read_metrics, run_cli

STEPS = 5
FLAGS = ['--config', 'experiments/denoise_dncnn.py:smoke', f'--config.train.steps={STEPS}',
         '--config.train.log_every=1', '--config.train.eval_every=100', '--no-progress']
FOUR_DEVICES = {'XLA_FLAGS': '--xla_force_host_platform_device_count=4', 'JAX_PLATFORMS': 'cpu'}


def _losses(workdir):
  losses = read_metrics(workdir, 'train/loss')
  assert sorted(losses) == list(range(1, STEPS + 1))
  return [losses[step] for step in range(1, STEPS + 1)]


@pytest.fixture(scope='module')
def reference_losses(tmp_path_factory):
  """Per-step losses of one process on one device (shard_map)."""
  workdir = tmp_path_factory.mktemp('one_device')
  result = run_cli('train', *FLAGS, '--workdir', workdir, env_extra={'JAX_PLATFORMS': 'cpu'})
  assert result.returncode == 0, result.stderr
  return _losses(workdir)


@pytest.mark.parametrize('strategy, env', [('shard_map', FOUR_DEVICES), ('pmap', FOUR_DEVICES),
                                           ('pmap', {'JAX_PLATFORMS': 'cpu'})])
def test_devices_and_strategies_match_one_device(reference_losses, tmp_path, strategy, env):
  result = run_cli('train', *FLAGS, f'--config.parallel={strategy}', '--workdir', tmp_path, env_extra=env)
  assert result.returncode == 0, result.stderr
  losses = _losses(tmp_path)
  assert losses == pytest.approx(reference_losses, abs=1e-5)
  assert losses[-1] < losses[0]


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def test_two_processes_match_one_process(reference_losses, tmp_path):
  address = f'127.0.0.1:{_free_port()}'
  command = [sys.executable, '-m', 'cnnrecon.cli', 'train', *FLAGS, '--workdir', str(tmp_path),
             '--coordinator-address', address, '--num-processes', '2']
  import os
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  processes = [subprocess.Popen(command + ['--process-id', str(index)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for index in range(2)]
  outputs = [process.communicate(timeout=300) for process in processes]
  for process, (_, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr
  assert _losses(tmp_path) == pytest.approx(reference_losses, abs=1e-5)
