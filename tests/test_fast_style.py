"""Fast feed-forward style transfer: the transform net, its training through the spine, and `stylize --method fast`."""

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import REPO, fails_with_one_line, read_metrics, smoke_config
import cnnrecon
from cnnrecon import cli, compiler
from cnnrecon.data.images import PAINTINGS, write_image
from cnnrecon.evaluation import train_and_evaluate
from cnnrecon.export import load
from cnnrecon.export.writer import export_workdir
from cnnrecon.models.transform_net import ConditionalInstanceNorm, TransformNet
from cnnrecon.style.command import NET_SIDES
from cnnrecon.style.exported import fast_style_signature
from cnnrecon.style.fast import load_fast_net
from cnnrecon.train import checkpoint, loop



def test_conditional_instance_norm_matches_numpy_and_blends_styles():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  gamma, beta = rng.normal(size=(2, 3)).astype(np.float32), rng.normal(size=(2, 3)).astype(np.float32)
  mix = np.array([[1.0, 0.0], [0.3, 0.7]], np.float32)
  norm = ConditionalInstanceNorm(styles=2)
  got = norm.apply({'params': {'scale': gamma, 'bias': beta}}, x, mix)
  normalized = (x - x.mean(axis=(1, 2), keepdims=True)) / np.sqrt(x.var(axis=(1, 2), keepdims=True) + 1e-5)
  expected = normalized * (mix @ gamma)[:, None, None] + (mix @ beta)[:, None, None]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_transform_net_keeps_the_image_shape_and_range():
  net = TransformNet(depth=2, features=4, styles=3)
  images = jnp.asarray(np.random.default_rng(1).random((2, 36, 44, 3), np.float32))
  variables = compiler.jit_run_once(net.init)(jax.random.key(0), images)
  assert variables['params']['ConditionalInstanceNorm_0']['scale'].shape == (3, 4)
  mix = jnp.asarray([[1.0, 0, 0], [0, 0.5, 0.5]])
  apply = jax.jit(net.apply)  # one program instead of op-by-op dispatch (seconds of compiles)
  out = apply(variables, {'image': images, 'style': mix})
  assert out.shape == images.shape
  # The style mix picks the norms' parameters (all styles start equal, so style 1's shift in the last
  # norm, which no later norm removes, is changed).
  last = max((name for name in variables['params'] if name.startswith('ConditionalInstanceNorm_')),
             key=lambda name: int(name.rsplit('_', 1)[1]))
  norm = variables['params'][last]
  norm['bias'] = norm['bias'].at[1].set(1.0)
  out = apply(variables, {'image': images, 'style': mix})
  other = apply(variables, {'image': images, 'style': jnp.asarray([[0, 1.0, 0], [0, 0.5, 0.5]])})
  assert not np.allclose(other[0], out[0], atol=1e-6)
  np.testing.assert_array_equal(other[1], out[1])
  # A plain image array means style 0.
  np.testing.assert_array_equal(apply(variables, images)[0], out[0])


def _params(workdir, step):
  _, _, variables = checkpoint.load_variables(workdir, step=step)
  return jax.tree.leaves(variables['params'])


def _two_style_config():
  return smoke_config('style_fast', task__fast_style__styles='("starry_night","the_scream")',
                      model__transform_net__styles=2, train__log_every=1)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A two-style smoke net trained uninterrupted (6 steps), with its final report."""
  workdir = tmp_path_factory.mktemp('fast')
  assert train_and_evaluate(_two_style_config(), workdir, progress=False)['step'] == 6
  return workdir


def test_training_learns_and_reports(trained):
  losses = read_metrics(trained, 'train/loss')
  assert losses[6] < losses[1]
  report = (trained / 'report.md').read_text()
  assert '| starry_night |' in report and '| the_scream |' in report
  summary = json.loads((trained / 'eval' / 'summary.json').read_text())
  assert set(summary) == {'starry_night', 'the_scream'}


def test_resume_gives_the_bits_of_an_uninterrupted_run_of_the_same_seed(trained, tmp_path):
  # Bit-identical params also show that the same seed gives the same bits.
  resumed = tmp_path / 'resumed'
  loop.train(_two_style_config(), resumed, stop_at=3, progress=False)
  loop.train(_two_style_config(), resumed, progress=False)
  for ours, theirs in zip(_params(trained, 6), _params(resumed, 6)):
    np.testing.assert_array_equal(ours, theirs)


def one_step_gradients():
  """Params change of one SGD(lr=1) step (minus the gradient) of the two-style smoke net, via make_data_parallel and on
  one device; run in a process with 4 forced host devices."""
  import functools
  import optax
  from cnnrecon.models.registry import build_model
  from cnnrecon.tasks import build_task
  from cnnrecon.train.parallel import make_data_parallel
  from cnnrecon.train.state import create_train_state
  from cnnrecon.train.step import train_step
  # The loss network up to relu2_2 only: what data parallelism must preserve is the same, and the two
  # compilations (1 and 4 devices) take a third of the time of the smoke config's relu4_3 network.
  config = _two_style_config()
  config.task.fast_style.style_layers = ('relu1_2', 'relu2_2')
  task = build_task(config)
  rng = np.random.default_rng(0)
  batch = {'target': rng.random((4, 32, 32, 3), dtype=np.float32), 'example_seed': np.arange(4, dtype=np.uint32)}

  def fresh_state():
    return create_train_state(build_model(config.model, channels=3), optax.sgd(1.0), seed=0,
                              sample_shape=(1, 32, 32, 3), frozen=task.init_frozen())

  before = jax.device_get(fresh_state().params)
  single, _ = jax.jit(functools.partial(train_step, axis_name=None, task=task))(fresh_state(), batch)
  data_parallel = make_data_parallel('shard_map')
  parallel, _ = data_parallel.compile_train_step(train_step, task=task)(
      data_parallel.put_state(fresh_state()), data_parallel.put_batch(batch))
  change = lambda params: jax.tree.map(lambda new, old: np.asarray(new) - old, params, before)
  return change(jax.device_get(single.params)), change(data_parallel.host_state(parallel).params)


def test_gradient_on_four_devices_equals_one_device(four_devices):
  # The step's gradient is what data parallelism must preserve. Whole training runs on 4 vs 1 devices
  # agree to 1e-5 for two steps and then drift (2.4e-4 relative at step 5, measured): Adam's first
  # updates are nearly lr * sign(gradient), which turns float32 summation-order noise in near-zero
  # gradients into lr-sized steps. Compared relative to the whole gradient: some parameters (the
  # shift of the instance norm whose output a later instance norm re-centres) have a zero gradient
  # up to float noise, so per-leaf ratios are noise. `one_step_gradients` ran in the 4-device process.
  assert four_devices[0]['fast_style_gradient_change'] < 1e-5


def test_stylize_fast_blends_trained_styles(trained, tmp_path):
  from cnnrecon import cli
  from cnnrecon.data.images import PAINTINGS
  content = PAINTINGS / 'shipwreck.jpg'
  out = tmp_path / 'out'
  assert cli.main(['stylize', str(content), '--method', 'fast', '--workdir', str(trained), '--size', '64',
                   '--out', str(out), '--style', 'starry_night', '--style', 'the_scream',
                   '--style-weights', '0.25,0.75']) == 0
  losses = json.loads((out / 'shipwreck_losses.json').read_text())
  assert losses['style_mix'] == [0.25, 0.75] and losses['seconds'] > 0
  assert (out / 'shipwreck.png').is_file() and (out / 'shipwreck_side_by_side.png').is_file()


def test_stylize_fast_bad_input(trained, tmp_path, capsys):
  content = str(trained / 'grid.png')
  fails_with_one_line(capsys, ['stylize', content, '--method', 'fast', '--out', tmp_path], '--workdir')
  fails_with_one_line(capsys, ['stylize', content, '--method', 'fast', '--workdir', trained, '--style', 'shipwreck',
                               '--out', tmp_path], 'not one of the styles', 'starry_night')
  fails_with_one_line(capsys, ['stylize', content, '--method', 'fast', '--workdir', trained, '--style', 'starry_night',
                               '--style', 'the_scream', '--style-weights', '0.5,0.6', '--out', tmp_path], 'sum to 1')


def test_stylize_fast_refuses_a_workdir_of_another_task(tmp_path, capsys):
  denoiser = tmp_path / 'denoiser'
  shutil.copytree(REPO / 'tests' / 'data' / 'workdir_before_issue7', denoiser)  # a DnCNN trained for 'gaussian'
  content = REPO / 'cnnrecon' / 'data' / 'paintings' / 'shipwreck.jpg'
  fails_with_one_line(capsys, ['stylize', content, '--method', 'fast', '--workdir', denoiser,
                               '--out', tmp_path / 'out'], "trained for task 'gaussian'", 'style_fast.py')
  assert not (tmp_path / 'out').exists()


def test_bad_fast_style_configs_are_one_line_errors(tmp_path, capsys):
  base = ['train', '--config', 'experiments/style_fast.py:smoke', '--workdir', tmp_path / 'w']
  fails_with_one_line(capsys, base + ['--config.model.transform_net.styles=2'], 'transform_net.styles=1')
  fails_with_one_line(capsys, base + ['--config.task.fast_style.styles=("no_such_painting",)'], 'not found')
  fails_with_one_line(capsys, base + ['--config.model.name=dncnn'], 'model.name=transform_net')
  fails_with_one_line(capsys, base + ['--config.data.patch_size=30'], 'multiple of 4')
  fails_with_one_line(capsys, base + ['--config.task.fast_style.colour=1'], 'colour')


def test_eval_of_a_fast_style_workdir_scores_every_image_in_every_style(trained, tmp_path, capsys):
  import csv
  from PIL import Image
  from cnnrecon import cli
  from cnnrecon.style.fast import load_fast_net, stylize_and_score
  from skimage import data
  folder = tmp_path / 'contents'
  folder.mkdir()
  images = {'chelsea': data.chelsea()[::6, ::6], 'rocket': data.rocket()[::8, ::8]}
  for name, image in images.items():
    Image.fromarray(image).save(folder / f'{name}.png')
  out = tmp_path / 'eval'
  assert cli.main(['eval', '--workdir', str(trained), '--data', str(folder), '--out', str(out)]) == 0
  rows = list(csv.DictReader((out / 'results.csv').open()))
  assert [(r['image'], r['style_image']) for r in rows] == [
      ('chelsea.png', 'starry_night'), ('rocket.png', 'starry_night'), ('chelsea.png', 'the_scream'),
      ('rocket.png', 'the_scream')]
  # The table holds the training loss's terms of each stylized image (style 1 of the net, image 'rocket').
  rocket = np.asarray(images['rocket'], np.float32) / 255.0
  (_, parts), = stylize_and_score(load_fast_net(trained), [rocket], [0.0, 1.0])
  np.testing.assert_allclose(float(rows[3]['style_loss']), parts['style'], rtol=1e-4)
  summary = json.loads((out / 'summary.json').read_text())
  assert set(summary) == {'starry_night', 'the_scream'}
  before = (out / 'results.csv').read_bytes()
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--data', folder, '--out', out], 'already holds',
                      '--overwrite')
  assert (out / 'results.csv').read_bytes() == before
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--sigma', '25'], "--sigma does not apply to task 'fast_style'")
  fails_with_one_line(capsys, ['eval', '--workdir', trained, '--seeds', '0,1', '--out', tmp_path / 'seeds'],
                      'takes no noise')
  fails_with_one_line(capsys, ['restore', folder / 'rocket.png', '--workdir', trained, '--out', tmp_path / 'r'],
                      'stylizes rather than restores', '--method fast')
  assert not (tmp_path / 'r').exists()


def test_exported_net_stylizes_like_the_trained_one_at_another_size(trained, tmp_path, capsys):
  net = load_fast_net(trained)
  exported = load(export_workdir(trained, tmp_path / 'hlo'))
  assert exported.manifest['inputs'][1]['shape'] == '(b, 2)'  # one weight per trained style
  params = cnnrecon.load_model(export_workdir(trained, tmp_path / 'params', fmt='params'))
  content = np.random.default_rng(3).random((36, 44, 3), np.float32)  # training crops are 32 x 32
  mix = [0.25, 0.75]
  expected = net(content, mix)
  np.testing.assert_allclose(exported(content[None], np.asarray([mix], np.float32))[0], expected, atol=1e-6)
  np.testing.assert_allclose(params(content, mix), expected, atol=1e-6)
  # The CLI takes the export in place of the workdir.
  out = tmp_path / 'out'
  assert cli.main(['stylize', str(PAINTINGS / 'shipwreck.jpg'), '--method', 'fast', '--exported',
                   str(tmp_path / 'hlo'), '--style', 'the_scream', '--size', '48', '--out', str(out)]) == 0
  assert json.loads((out / 'shipwreck_losses.json').read_text())['style_mix'] == [0.0, 1.0]
  # The same size rule, in the same words, as the workdir's (test_the_fast_net_takes_the_sizes_its_export_takes).
  from_export = fails_with_one_line(capsys, _too_small(tmp_path / 'hlo', tmp_path, '--exported'), *TOO_SMALL)
  assert from_export == fails_with_one_line(capsys, _too_small(trained, tmp_path, '--workdir'), *TOO_SMALL)


def test_denoise_of_a_fast_style_workdir_is_one_line_naming_stylize(trained, tmp_path, capsys):
  content = tmp_path / 'c.png'
  write_image(content, np.random.default_rng(0).random((40, 40, 3)))
  fails_with_one_line(capsys, ['denoise', content, '--workdir', trained, '--out', tmp_path / 'd'],
                      'this is a style net (fast_style)', 'style workdir',
                      '`cnnrecon stylize CONTENT --method fast --workdir RUN --out OUT`')
  assert not (tmp_path / 'd').exists()


def test_the_fast_net_takes_the_sizes_its_export_takes(trained, tmp_path, capsys):
  # One rule per net: the export's multiple and min_side, applied by stylize to the padded content
  # (the export's own line is compared with this one in the export test below).
  signature = fast_style_signature(load_fast_net(trained))
  assert NET_SIDES['fast'][:2] == (signature.multiple, signature.min_side) == (4, 8)
  fails_with_one_line(capsys, _too_small(trained, tmp_path, '--workdir'), *TOO_SMALL)
  assert not (tmp_path / 'o').exists()


TOO_SMALL = ('--size 4 makes', '4x4 px', 'at least 5 px', 'multiple of 4, at least 8 px', 'pass --size 5 or more')


def _too_small(net, tmp_path, flag) -> list:
  """`stylize --size 4` of a 40 x 40 content with the net of a workdir or an export."""
  content = tmp_path / 'c.png'
  write_image(content, np.random.default_rng(0).random((40, 40, 3)))
  return ['stylize', content, '--method', 'fast', flag, net, '--size', '4', '--out', tmp_path / 'o']
