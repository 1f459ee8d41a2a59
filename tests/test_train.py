"""Training: bitwise determinism, resume equivalence, no recompiles, checkpoint retention."""

import chex
import jax
import numpy as np
import pytest

from cnnrecon.data.pipeline import train_iterator
from cnnrecon.data.sources import load_source
from cnnrecon.evaluation import load_trained, train_and_evaluate
from cnnrecon.models.registry import build_model
from cnnrecon.tasks import build_task
from cnnrecon.train import parallel
from cnnrecon.train.state import create_train_state, make_optimizer
from cnnrecon.train.step import train_step
from conftest import read_metrics, run_cli, smoke_config


def _params(workdir, step):
  return jax.tree.leaves(load_trained(workdir, step=step).variables)


def _assert_bitwise_equal(leaves_a, leaves_b):
  assert len(leaves_a) == len(leaves_b)
  for a, b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_same_config_and_seed_give_identical_bits(tmp_path):
  config = smoke_config(train__steps=4, train__log_every=1, train__eval_every=2)
  for name in ('a', 'b'):
    train_and_evaluate(config, tmp_path / name, progress=False)
  _assert_bitwise_equal(_params(tmp_path / 'a', 4), _params(tmp_path / 'b', 4))
  for key in ('train/loss', 'train/psnr', 'eval/psnr'):
    assert read_metrics(tmp_path / 'a', key) == read_metrics(tmp_path / 'b', key)


def test_different_seed_gives_different_params(tmp_path):
  train_and_evaluate(smoke_config(train__steps=2), tmp_path / 'a', progress=False)
  train_and_evaluate(smoke_config(train__steps=2, seed=1), tmp_path / 'b', progress=False)
  assert any(not np.array_equal(a, b) for a, b in zip(_params(tmp_path / 'a', 2), _params(tmp_path / 'b', 2)))


@pytest.mark.parametrize('sampler', ['device', 'host'])
def test_resume_after_process_exit_equals_uninterrupted_run(tmp_path, sampler):
  flags = ['--config', 'experiments/denoise_dncnn.py:smoke', '--config.train.steps=20',
           '--config.train.eval_every=10', '--config.train.log_every=1', '--no-progress',
           f'--config.data.sampler={sampler}']
  # The reference trains in this process; the split run in two fresh ones.
  train_and_evaluate(smoke_config(train__steps=20, train__eval_every=10, train__log_every=1, data__sampler=sampler),
                     tmp_path / 'straight', progress=False)
  first = run_cli('train', *flags, '--workdir', tmp_path / 'split', '--stop-at', 10)
  assert first.returncode == 0, first.stderr
  assert 'stopped at step 10' in first.stdout
  second = run_cli('train', *flags, '--workdir', tmp_path / 'split')
  assert second.returncode == 0, second.stderr
  _assert_bitwise_equal(_params(tmp_path / 'straight', 20), _params(tmp_path / 'split', 20))
  straight_losses = read_metrics(tmp_path / 'straight', 'train/loss')
  assert sorted(straight_losses) == list(range(1, 21))
  assert read_metrics(tmp_path / 'split', 'train/loss') == straight_losses
  _assert_two_sessions_recorded(tmp_path / 'split')


def _assert_two_sessions_recorded(workdir):
  """run.json holds one record per session, with the versions and commit that ran it."""
  import json
  import subprocess
  from conftest import REPO
  record = json.loads((workdir / 'run.json').read_text())
  assert record['seed'] == 0
  first, second = record['sessions']
  assert (first['from_step'], first['to_step'], first['outcome']) == (0, 10, 'stopped (--stop-at)')
  assert (second['from_step'], second['to_step'], second['outcome']) == (10, 20, 'finished')
  assert second['versions']['jax'] == jax.__version__ and second['devices']['count'] == jax.device_count()
  assert '--no-progress' in second['command'] and second['ended'] >= second['started'] >= first['ended']
  head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True, text=True)
  if head.returncode == 0:  # a git checkout (CI's clean clone is one)
    assert second['git']['commit'] == head.stdout.strip()


def test_train_step_compiles_once():
  config = smoke_config()
  model = build_model(config.model, channels=1, bn_axis_name=parallel.AXIS)
  data_parallel = parallel.make_data_parallel('shard_map')
  counted_step = chex.assert_max_traces(train_step, n=1)
  step = data_parallel.compile_train_step(counted_step, task=build_task(config))
  optimizer = make_optimizer(config.optim, config.train.steps)
  state = data_parallel.put_state(create_train_state(model, optimizer, seed=0, sample_shape=(1, 24, 24, 1)))
  batches = train_iterator(load_source('samples:train'), seed=0, patch_size=24, channels=1, batch_size=8)
  for _ in range(3):
    state, metrics = step(state, data_parallel.put_batch(next(batches)))
  assert np.isfinite(float(metrics['loss']))


def test_checkpoints_keep_latest_and_best(tmp_path):
  config = smoke_config(train__steps=12, train__eval_every=2, train__keep_checkpoints=2)
  train_and_evaluate(config, tmp_path, progress=False)
  kept = sorted(int(path.name) for path in (tmp_path / 'checkpoints').iterdir() if path.name.isdigit())
  psnr = read_metrics(tmp_path, 'eval/psnr')
  best = max(psnr, key=psnr.get)
  assert kept == sorted({10, 12, best})
  assert load_trained(tmp_path).step == best


def test_resume_with_a_different_config_is_refused_unless_forced(tmp_path):
  from cnnrecon.errors import CnnreconError
  train_and_evaluate(smoke_config(train__steps=2), tmp_path, progress=False)
  with pytest.raises(CnnreconError, match='model.features'):
    train_and_evaluate(smoke_config(train__steps=4, model__features=4), tmp_path, progress=False)
  with pytest.raises(CnnreconError, match='train.steps'):
    train_and_evaluate(smoke_config(train__steps=4), tmp_path, progress=False)
  summary = train_and_evaluate(smoke_config(train__steps=4), tmp_path, progress=False, force=True)
  assert summary['step'] == 4


def test_rerunning_a_finished_workdir_keeps_its_report(tmp_path):
  config = smoke_config(train__steps=2)
  train_and_evaluate(config, tmp_path, progress=False)
  report = (tmp_path / 'report.md').read_text()
  summary = train_and_evaluate(config, tmp_path, progress=False)
  assert summary['step'] == 2 and summary['report'] == str(tmp_path / 'report.md')
  assert (tmp_path / 'report.md').read_text() == report
