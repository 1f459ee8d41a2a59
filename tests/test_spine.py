"""The task-generic spine: every experiment trains, old workdirs still work, frozen variables, registries."""

import dataclasses
import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from cnnrecon import cli
from cnnrecon import config as config_lib
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation import load_trained
from cnnrecon.losses import mse
from cnnrecon.registry import Registry
from cnnrecon.tasks import build_task
from cnnrecon.train import checkpoint
from cnnrecon.train.state import create_train_state
from cnnrecon.train.step import train_step
from conftest import REPO, read_metrics, trained_smoke_run

OLD_WORKDIR = pathlib.Path(__file__).parent / 'data' / 'workdir_before_issue7'
# Every experiment file has a `smoke` variant; some have more variants worth a run.
EXTRA_SMOKE_VARIANTS = {'denoise_poisson_gaussian': ['poisson_smoke'], 'inpaint_unet': ['regions_smoke']}
# The style experiments' smoke runs are trained (and reported) by the fixtures of
# tests/test_fast_style.py and tests/test_adain.py.
TRAINED_ELSEWHERE = ('style_fast', 'style_adain')
ALL_SMOKE_RUNS = [(path.stem, variant) for path in sorted((REPO / 'experiments').glob('*.py'))
                  for variant in ['smoke', *EXTRA_SMOKE_VARIANTS.get(path.stem, [])]]
SMOKE_RUNS = [(name, variant) for name, variant in ALL_SMOKE_RUNS if name not in TRAINED_ELSEWHERE]


# Smoke runs the session trains once for other tests too (conftest fixtures), read here instead of trained again.
SHARED_RUNS = {('denoise_dncnn', 'smoke'): 'dncnn_smoke_run', ('denoise_seed_stack', 'smoke'): 'seed_stack_run'}


@pytest.mark.parametrize('experiment, variant', SMOKE_RUNS)
def test_every_experiment_smoke_variant_trains_and_reports(request, tmp_path_factory, experiment, variant):
  config = config_lib.load_config(str(REPO / 'experiments' / f'{experiment}.py:{variant}'))
  if (experiment, variant) in SHARED_RUNS:
    tmp_path = request.getfixturevalue(SHARED_RUNS[experiment, variant])
  else:  # trained once for this test and the task's own tests (conftest.trained_smoke_run)
    tmp_path = trained_smoke_run(tmp_path_factory, experiment, variant)
  recorded, given = json.loads((tmp_path / 'config.json').read_text()), json.loads(config_lib.config_to_json(config))
  assert given['data']['sampler'] == 'auto' and recorded['data']['sampler'] in ('device', 'host')  # what auto chose
  given['data']['sampler'] = recorded['data']['sampler']
  assert recorded == given
  assert sorted(read_metrics(tmp_path, 'train/loss'))[-1] == config.train.steps
  task = build_task(config)
  losses = read_metrics(tmp_path, 'train/loss')
  assert all(np.isfinite(value) for value in losses.values())
  # It trains: the params move between the checkpoints of steps 4 and 6. (Whether the loss of step 6's
  # batch is below step 2's is noise over 6 steps: with the device sampler's stream the CT and JPEG
  # smokes' were not. Each task's own tests and its :cpu recipe check that it learns.)
  moved = [np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(
      jax.tree.leaves(load_trained(tmp_path, step=4).variables['params']),
      jax.tree.leaves(load_trained(tmp_path, step=config.train.steps).variables['params']))]
  assert all(moved), losses
  results = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
  assert set(results) == {'model', task.labels.no_model, 'baselines'}
  assert np.isfinite(results['model']['psnr'])
  assert f'| {task.labels.no_model} |' in (tmp_path / 'report.md').read_text()


def test_all_models_and_tasks_have_a_smoke_experiment():
  from cnnrecon.models.registry import MODELS
  from cnnrecon.tasks import TASKS
  configs = [config_lib.load_config(str(REPO / 'experiments' / f'{name}.py:{variant}'))
             for name, variant in ALL_SMOKE_RUNS]
  assert {c.model.name for c in configs} == set(MODELS.names())
  # The package's own tasks (a test may have registered one of its own, tests/plugin_task).
  own = {name for name in TASKS.names() if TASKS.get(name).__module__.startswith('cnnrecon.')}
  assert {c.task.name for c in configs} == own and {'fast_style', 'adain'} <= own


def test_workdir_written_before_the_task_spine_evaluates_and_resumes(tmp_path):
  """A workdir saved by the code before issue 7 (old config keys; stopped at step 2 of 4)."""
  old = tmp_path / 'old'
  shutil.copytree(OLD_WORKDIR, old)
  saved = json.loads((old / 'config.json').read_text())
  assert saved['degradation']['sigma'] == 25.0 and 'space_to_depth' in saved['model']  # really the old layout
  model = load_trained(old)
  assert model.step == 2 and model.config.task.gaussian.sigma == 25.0
  assert model.config.model.dncnn.space_to_depth == 1
  flags = ['train', '--config', str(REPO / 'experiments/denoise_dncnn.py') + ':smoke', '--config.train.steps=4',
           '--config.train.eval_every=2', '--config.train.log_every=1', '--no-progress']
  assert cli.main([*flags, '--workdir', str(old)]) == 0  # same config under new names: resumes, no --force
  assert json.loads((old / 'config.json').read_text())['data']['sampler'] == 'host'  # as it was trained
  # The default sampler of a new run is the device's: the old run's stream is the host pipeline's.
  assert cli.main([*flags, '--config.data.sampler=host', '--workdir', str(tmp_path / 'new')]) == 0
  _assert_same_run_up_to_rounding(old, tmp_path / 'new', step=4, learning_rate=1e-3)
  assert cli.main(['eval', '--workdir', str(old), '--no-baselines', '--out', str(tmp_path / 'eval')]) == 0
  assert json.loads((tmp_path / 'eval' / 'summary.json').read_text())['noisy']['psnr'] > 19


def _data_position(workdir: pathlib.Path, step: int) -> dict:
  return json.loads((checkpoint.checkpoint_dir(workdir) / str(step) / 'data' / 'process_0-of-1.json').read_text())


def _assert_same_run_up_to_rounding(resumed: pathlib.Path, fresh: pathlib.Path, *, step: int,
                                    learning_rate: float) -> None:
  """A resume of a workdir whose first steps ran on another CPU against a fresh run on this one.

  What a wrong restore changes is compared exactly: the step, the optimizer's step count and the
  data position. The arrays may differ by float rounding: the fixture's first steps ran on jax
  0.10.2 on an AVX-512 Xeon, and another jaxlib or CPU rounds a few float32 sums differently; Adam
  then turns a rounding-sized gradient difference of a parameter whose gradient is near zero into
  up to one update of difference (each Adam step moves a parameter by at most about the learning
  rate). So every value must lie within two updates per step of the run of the fresh run's, and all
  but a few within rounding (1e-4 relative): a wrong optimizer state or data position moves most of
  them by update-sized amounts.
  """
  with checkpoint.open_manager(resumed, read_only=True) as manager:
    first = checkpoint.restore_arrays(manager, step)
  with checkpoint.open_manager(fresh, read_only=True) as manager:
    second = checkpoint.restore_arrays(manager, step)
  assert int(first['step']) == int(second['step']) == step
  counts = [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(first['opt_state'])[0]
            if 'count' in jax.tree_util.keystr(path)]
  assert counts and all(int(count) == step for count in counts)
  assert _data_position(resumed, step) == _data_position(fresh, step)
  pairs = [(np.asarray(a), np.asarray(b)) for a, b in zip(jax.tree.leaves((first['params'], first['batch_stats'])),
                                                          jax.tree.leaves((second['params'], second['batch_stats'])))]
  assert pairs
  bound = 2 * learning_rate * step
  assert max(float(np.max(np.abs(a - b))) for a, b in pairs) <= bound
  far = sum(int(np.sum(~np.isclose(a, b, rtol=1e-4, atol=1e-7))) for a, b in pairs)
  total = sum(a.size for a, _ in pairs)
  assert far <= 0.01 * total, f'{far} of {total} values differ by more than rounding'


def test_differing_keys_ignore_renames_and_unselected_components():
  current = config_lib.load_config(str(REPO / 'experiments' / 'denoise_dncnn.py:smoke')).to_dict()
  old = json.loads(json.dumps(current))
  old['degradation'] = {'name': 'gaussian', 'sigma': 25.0, 'peak': 99.0, 'keep_prob': 0.1}
  del old['task']
  assert config_lib.differing_keys(old, current) == []
  old['degradation']['sigma'] = 15.0
  assert config_lib.differing_keys(old, current) == ['task.gaussian.sigma']


@dataclasses.dataclass(frozen=True)
class _ScaledTarget:
  """A task whose loss uses a frozen variable: MSE to `frozen['scale'] * target`."""

  base: object

  def prepare(self, keys, clean, frozen=None):
    return self.base.prepare(keys, clean, frozen)

  def compute_loss(self, estimate, example, frozen):
    return mse(estimate, frozen['scale'] * example['target'])

  def init_frozen(self):
    return {'scale': jnp.full((1,), 0.5)}


def test_frozen_variables_reach_the_loss_but_not_the_optimizer_or_checkpoints(tmp_path):
  from cnnrecon.models.registry import build_model
  base_config = config_lib.base_config()
  base_config.model.update(depth=3, features=4)
  task = _ScaledTarget(build_task(base_config))
  model = build_model(base_config.model, channels=1)
  state = create_train_state(model, optax.adam(1e-2), seed=0, sample_shape=(1, 8, 8, 1), frozen=task.init_frozen())
  assert jax.tree.structure(state.opt_state) == jax.tree.structure(
      optax.adam(1e-2).init(state.params))  # the optimizer sees params only
  batch = {'target': jnp.full((2, 8, 8, 1), 0.8), 'example_seed': jnp.arange(2, dtype=jnp.uint32)}
  step = jax.jit(lambda s, b: train_step(s, b, task=task))
  new_state, metrics = step(state, batch)
  np.testing.assert_array_equal(new_state.frozen['scale'], [0.5])
  loss_with_half = float(metrics['loss'])
  _, metrics_full = step(state.replace(frozen={'scale': jnp.ones((1,))}), batch)
  assert loss_with_half != float(metrics_full['loss'])  # the loss really reads the frozen variable
  with checkpoint.open_manager(tmp_path) as manager:
    checkpoint.save(manager, 1, state=new_state, config={}, data_iterator=None)
    manager.wait_until_finished()
    assert 'frozen' not in checkpoint.restore_arrays(manager, 1)
    restored = checkpoint.restore_state(manager, 1, target=jax.device_get(new_state))
  np.testing.assert_array_equal(restored.frozen['scale'], [0.5])
  for a, b in zip(jax.tree.leaves(restored.params), jax.tree.leaves(new_state.params)):
    np.testing.assert_array_equal(a, b)


def test_registry_lookup_build_and_errors():
  things = Registry('thing.name')

  @things.register('box')
  def box(*, side: int, color: str = 'red'):
    return (side, color)

  assert things.names() == ['box'] and 'box' in things and things.get('box') is box
  assert things.build('box', {'side': 2}, color='blue') == (2, 'blue')
  with pytest.raises(CnnreconError, match=r"unknown thing.name='ball'; known: box\. Set --config.thing.name"):
    things.get('ball')
  with pytest.raises(CnnreconError, match=r'thing.box.radius is not an option of thing .box. \(its options: side'):
    things.build('box', {'side': 2, 'radius': 1})
  with pytest.raises(ValueError, match='registered twice'):
    things.register('box')(box)


def test_renamed_keys_in_an_experiment_file_move_with_a_notice(tmp_path, capsys):
  path = tmp_path / 'legacy.py'
  path.write_text('from cnnrecon.config import base_config\n\n\ndef get_config(arg=None):\n'
                  '  config = base_config()\n  config.degradation.name = "poisson"\n'
                  '  config.degradation.peak = 12.0\n  config.optim.weight_decay = 0.5\n  return config\n')
  config = config_lib.load_config(str(path))
  assert (config.task.name, config.task.poisson.peak, config.optim.adamw.weight_decay) == ('poisson', 12.0, 0.5)
  assert 'degradation' not in config
  notices = capsys.readouterr().err.splitlines()
  assert any('degradation.peak is now task.poisson.peak' in line for line in notices)


def test_eval_sigma_applies_only_to_tasks_with_a_sigma():
  from cnnrecon.evaluation.task_options import config_at_sigma
  config = config_lib.load_config(str(REPO / 'experiments' / 'inpaint_unet.py:smoke'))
  with pytest.raises(CnnreconError, match="--sigma does not apply to task 'inpaint'"):
    config_at_sigma(config, 25)
  config.task.name = 'poisson_gaussian'
  assert build_task(config_at_sigma(config, 3)).describe() == 'Poisson peak=30 + AWGN sigma=3/255'
  assert config.task.poisson_gaussian.sigma == 10.0  # the trained config is left as it was
