"""Data parallelism: 1 vs 4 devices, shard_map vs pmap, and two real processes (gloo)."""

import os
import socket
import subprocess
import sys

import pytest

from cnnrecon import cli
from conftest import REPO, read_metrics

STEPS = 5
# Every run here has the same 400-step schedule, so all compile the same programs (XLA's cache serves
# them): the 2-process run must last long enough to be signalled; the others stop after STEPS.
RUN = ['--config', str(REPO / 'experiments' / 'denoise_dncnn.py') + ':smoke', '--config.train.steps=400',
       '--config.train.log_every=1', '--config.train.eval_every=100', '--no-progress']
FLAGS = [*RUN, '--stop-at', str(STEPS)]


def _losses(workdir, *, logged_steps=STEPS):
  """The losses of steps 1..STEPS of a run that logged steps 1..logged_steps."""
  losses = read_metrics(workdir, 'train/loss')
  assert sorted(losses) == list(range(1, logged_steps + 1))
  return [losses[step] for step in range(1, STEPS + 1)]


@pytest.fixture(scope='module')
def reference_losses(tmp_path_factory):
  """Per-step losses of one process on one device (shard_map), trained in this process."""
  workdir = tmp_path_factory.mktemp('one_device')
  assert cli.main(['train', *FLAGS, '--workdir', str(workdir)]) == 0
  return _losses(workdir)


@pytest.mark.parametrize('strategy', ['shard_map', 'pmap'])
def test_four_devices_match_one_device(reference_losses, four_devices, strategy):
  results, folder = four_devices  # trained by the one 4-device process (conftest.four_devices)
  assert results['train_status'][strategy] == 0
  losses = _losses(folder / strategy)
  assert losses == pytest.approx(reference_losses, abs=1e-5)
  assert losses[-1] < losses[0]
  # Saved from 4 devices, read on this process's 1 ("Topology mismatch" before).
  from cnnrecon.evaluation import load_trained
  assert load_trained(folder / strategy).step in (STEPS, 3)


def test_pmap_on_one_device_matches_shard_map(reference_losses, tmp_path):
  assert cli.main(['train', *FLAGS, '--config.parallel=pmap', '--workdir', str(tmp_path)]) == 0
  assert _losses(tmp_path) == pytest.approx(reference_losses, abs=1e-5)


def _free_port() -> int:
  with socket.socket() as sock:
    sock.bind(('127.0.0.1', 0))
    return sock.getsockname()[1]


def one_step_gradients(strategies=('shard_map', 'pmap')) -> dict:
  """Params change of one SGD(lr=1) step = minus the gradient: {'one_device': ..., strategy: ...} via
  make_data_parallel with each strategy (the one-device step is compiled once for both)."""
  import functools
  import jax
  import numpy as np
  import optax
  from cnnrecon.models.registry import build_model
  from cnnrecon.tasks import build_task
  from cnnrecon.train.parallel import AXIS, make_data_parallel
  from cnnrecon.train.state import create_train_state
  from cnnrecon.train.step import train_step
  from conftest import smoke_config
  config = smoke_config('denoise_unet')  # every layer gets a gradient (DnCNN's last conv starts at zero)
  steps = dict(task=build_task(config))
  rng = np.random.default_rng(0)
  batch = {'target': rng.random((8, 16, 16, 1), dtype=np.float32), 'example_seed': np.arange(8, dtype=np.uint32)}

  def fresh_state(axis_name):
    model = build_model(config.model, channels=1, bn_axis_name=axis_name)  # BatchNorm statistics over AXIS
    return create_train_state(model, optax.sgd(1.0), seed=0, sample_shape=(1, 16, 16, 1))

  before = jax.device_get(fresh_state(None).params)
  change = lambda params: jax.tree.map(lambda new, old: np.asarray(new) - old, params, before)
  single, _ = jax.jit(functools.partial(train_step, axis_name=None, **steps))(fresh_state(None), batch)
  changes = {'one_device': change(jax.device_get(single.params))}
  for strategy in strategies:
    data_parallel = make_data_parallel(strategy)
    step = data_parallel.compile_train_step(train_step, **steps)
    parallel, _ = step(data_parallel.put_state(fresh_state(AXIS)), data_parallel.put_batch(batch))
    changes[strategy] = change(data_parallel.host_state(parallel).params)
  return changes


@pytest.mark.parametrize('strategy', ['shard_map', 'pmap'])
def test_gradient_on_four_devices_equals_one_device(four_devices, strategy):
  changes = four_devices[0]['gradient_changes'][strategy]  # one_step_gradients, in the 4-device process
  assert len(changes) > 4 and max(changes) < 1e-4, changes  # float32 sums in another order


def test_two_processes_match_one_process_and_a_sigterm_to_one_stops_both_at_the_same_step(reference_losses,
                                                                                          tmp_path):
  """One 2-process (gloo) run: its first STEPS losses equal one process's; then only the second process
  hears SIGTERM, and both stop at the same step with a checkpoint."""
  import signal
  import time
  address = f'127.0.0.1:{_free_port()}'
  command = [sys.executable, '-m', 'cnnrecon.cli', 'train', *RUN, '--workdir', str(tmp_path),
             '--coordinator-address', address, '--num-processes', '2']
  env = {**os.environ, 'JAX_PLATFORMS': 'cpu'}
  processes = [subprocess.Popen(command + ['--process-id', str(index)], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for index in range(2)]
  deadline = time.monotonic() + 200
  while not (tmp_path / 'metrics.jsonl').exists() or len(read_metrics(tmp_path, 'train/loss')) < STEPS:
    assert time.monotonic() < deadline and all(p.poll() is None for p in processes)
    time.sleep(0.05)
  processes[1].send_signal(signal.SIGTERM)  # only the second process hears it
  outputs = [process.communicate(timeout=200) for process in processes]
  stopped = []
  for process, (stdout, stderr) in zip(processes, outputs):
    assert process.returncode == 0, stderr
    stopped.append(int(stdout.split('stopped at step ')[1].split()[0]))
  assert stopped[0] == stopped[1] < 400
  assert (tmp_path / 'checkpoints' / str(stopped[0])).is_dir()
  assert _losses(tmp_path, logged_steps=stopped[0]) == pytest.approx(reference_losses, abs=1e-5)
