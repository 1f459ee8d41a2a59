"""`cnnrecon export`: StableHLO and params exports equal the in-memory model, load without the model code,
and refuse bad input in one line."""

import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import cnnrecon
from cnnrecon import cli
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation import train_and_evaluate
from cnnrecon.inference import load_trained
from cnnrecon.export import ExportedModel, load
from cnnrecon.export.writer import export_workdir
from conftest import fails_with_one_line, run_python, smoke_config


def _trained(tmp_path_factory, experiment: str) -> pathlib.Path:
  workdir = tmp_path_factory.mktemp(experiment)
  train_and_evaluate(smoke_config(experiment), workdir, progress=False)
  return workdir


@pytest.fixture(scope='module')
def dncnn(tmp_path_factory):
  """The DnCNN smoke run (BatchNorm statistics; any image side)."""
  return _trained(tmp_path_factory, 'denoise_dncnn')


@pytest.fixture(scope='module')
def seed_stack(seed_stack_run, tmp_path_factory):
  """The seed-stack smoke run (two 2x2 poolings: sides must be multiples of 4) and its StableHLO export."""
  return seed_stack_run, export_workdir(seed_stack_run, tmp_path_factory.mktemp('export') / 'seed_stack')


def _images(batch, height, width, seed=0):
  return np.random.default_rng(seed).random((batch, height, width, 1), dtype=np.float32)


@pytest.mark.parametrize('run', ['seed_stack', 'dncnn'])
def test_stablehlo_and_params_equal_the_in_memory_model_at_any_batch_and_size(run, request, tmp_path):
  trained = request.getfixturevalue(run)
  trained = trained[0] if run == 'seed_stack' else trained
  model = load_trained(trained)
  stablehlo = load(export_workdir(trained, tmp_path / 'hlo'))
  params = cnnrecon.load_model(export_workdir(trained, tmp_path / 'params', fmt='params'))
  assert isinstance(stablehlo, ExportedModel) and params.step == model.step
  # The export fixes no batch or size: two shapes, neither the training patches' (8 x 32 x 32).
  for images in (_images(3, 24, 40), _images(1, 64, 16, seed=1)):
    expected = model(images)
    np.testing.assert_allclose(stablehlo(images), expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(params(images), expected, rtol=0, atol=1e-6)


def test_manifest_says_what_the_model_takes_and_sums_check_with_sha256sum(seed_stack):
  workdir, export = seed_stack
  manifest = json.loads((export / 'manifest.json').read_text())
  assert manifest['format'] == 'stablehlo' and manifest['platforms'] == ['cpu', 'cuda']
  assert manifest['task'] == {'name': 'gaussian', 'sigma': 25.0}
  assert manifest['inputs'][0]['shape'] == '(b, 4*h, 4*w, 1)'  # depth 2: sides are multiples of 2^2
  assert manifest['inputs'][0]['layout'] == 'NHWC' and manifest['inputs'][0]['range'] == [0.0, 1.0]
  assert manifest['spatial']['multiple'] == 4
  assert manifest['source']['step'] == load_trained(workdir).step
  assert manifest['source']['config']['model']['name'] == 'seed_stack'
  assert {'jax', 'jaxlib', 'flax', 'cnnrecon', 'commit'} <= set(manifest['versions'])
  checked = subprocess.run(['sha256sum', '-c', 'SHA256SUMS'], cwd=export, capture_output=True, text=True)
  assert checked.returncode == 0 and 'model.stablehlo: OK' in checked.stdout


def test_stablehlo_runs_in_a_fresh_process_that_cannot_import_the_model_code(seed_stack, tmp_path):
  workdir, export = seed_stack
  images = _images(2, 20, 28)
  np.save(tmp_path / 'in.npy', images)
  code = f'''
import sys
class Forbid:
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in ('flax', 'orbax', 'optax') or name.startswith(('cnnrecon.models', 'cnnrecon.train')):
      raise ImportError(f'{{name}} is blocked in this test')
sys.meta_path.insert(0, Forbid())
import numpy as np
from cnnrecon.export import load
model = load({str(export)!r})
np.save({str(tmp_path / 'out.npy')!r}, model(np.load({str(tmp_path / 'in.npy')!r})))
assert not any(name.startswith(('flax', 'cnnrecon.models')) for name in sys.modules)
'''
  done = run_python(code, env_extra={'JAX_PLATFORMS': 'cpu'})
  assert done.returncode == 0, done.stderr[-2000:]
  np.testing.assert_allclose(np.load(tmp_path / 'out.npy'), load_trained(workdir)(images), rtol=0, atol=1e-6)


def test_a_fixed_image_size_export_refuses_other_sizes(seed_stack, tmp_path):
  workdir, _ = seed_stack
  model = load(export_workdir(workdir, tmp_path / 'fixed', image_size=(32, 48)))
  assert model.manifest['inputs'][0]['shape'] == '(b, 32, 48, 1)'
  np.testing.assert_allclose(model(_images(2, 32, 48)), load_trained(workdir)(_images(2, 32, 48)), atol=1e-6)
  with pytest.raises(CnnreconError, match='takes only 32x48 images'):
    model(_images(1, 48, 32))


def test_step_picks_best_latest_or_a_number(seed_stack, tmp_path):
  workdir, _ = seed_stack
  saved = sorted(int(path.name) for path in (workdir / 'checkpoints').iterdir() if path.name.isdigit())
  latest = export_workdir(workdir, tmp_path / 'latest', fmt='params', step='latest')
  first = export_workdir(workdir, tmp_path / 'first', fmt='params', step=str(saved[0]))
  assert cnnrecon.load_model(latest).step == saved[-1]
  assert cnnrecon.load_model(first).step == saved[0]


def test_export_refuses_bad_input_in_one_line(seed_stack, tmp_path, capsys):
  workdir, export = seed_stack
  (tmp_path / 'empty').mkdir()
  fails_with_one_line(capsys, ['export', '--workdir', tmp_path / 'empty', '--out', tmp_path / 'a'],
                      'holds no checkpoints')
  fails_with_one_line(capsys, ['export', '--workdir', workdir, '--out', tmp_path / 'a', '--step', '999'],
                      'step 999 is not saved', 'best or latest')
  fails_with_one_line(capsys, ['export', '--workdir', workdir, '--out', tmp_path / 'a', '--step', 'last'],
                      "--step 'last' is not best, latest or a step number")
  fails_with_one_line(capsys, ['export', '--workdir', workdir, '--out', export], 'exists and is not empty',
                      '--overwrite')
  fails_with_one_line(capsys, ['export', '--workdir', workdir, '--out', tmp_path / 'a', '--image-size', '30x32'],
                      'multiples of 4', 'e.g. to 32x32')
  fails_with_one_line(capsys, ['export', '--workdir', workdir, '--out', tmp_path / 'a', '--format', 'onnx'],
                      "unknown --format 'onnx'")
  assert sorted(path.name for path in tmp_path.iterdir()) == ['empty']  # nothing half-written
  assert load(export).manifest['format'] == 'stablehlo'  # the existing export is untouched


def test_savedmodel_runs_in_tensorflow_or_says_how_to_install_it(seed_stack, tmp_path, capsys):
  workdir, _ = seed_stack
  argv = ['export', '--workdir', workdir, '--out', tmp_path / 'tf', '--format', 'savedmodel']
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
  except ImportError:
    fails_with_one_line(capsys, argv, 'needs TensorFlow', "pip install 'cnnrecon[tf]'")
    assert not (tmp_path / 'tf').exists()
    return
  assert cli.main([str(arg) for arg in argv]) == 0
  images = _images(2, 20, 36)
  served = tf.saved_model.load(str(tmp_path / 'tf' / 'savedmodel')).serve(tf.constant(images)).numpy()
  np.testing.assert_allclose(served, load_trained(workdir)(images), rtol=0, atol=1e-6)


@pytest.mark.parametrize('tampered', ['model.stablehlo', 'manifest.json'])
def test_tampered_export_is_refused_in_one_line(seed_stack, tmp_path, capsys, tampered):
  _, export = seed_stack
  copy = shutil.copytree(export, tmp_path / 'export')
  path = copy / tampered
  if tampered == 'manifest.json':  # a plausible edit: claim another noise level
    path.write_text(path.read_text().replace('"sigma": 25.0', '"sigma": 15.0'))
  else:
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 1
    path.write_bytes(bytes(payload))
  noisy = tmp_path / 'noisy.png'
  _write_png(noisy, 32, 32)
  fails_with_one_line(capsys, ['denoise', noisy, '--exported', copy, '--out', tmp_path / 'out'],
                      f'{tampered} does not match its sha256')
  assert not (tmp_path / 'out').exists()


def _write_png(path: pathlib.Path, height: int, width: int) -> None:
  from PIL import Image
  pixels = np.random.default_rng(height * width).integers(0, 256, (height, width), dtype=np.uint8)
  Image.fromarray(pixels).save(path)


def test_restore_with_an_export_equals_the_workdir_and_checks_sides_first(seed_stack, tmp_path, capsys):
  workdir, export = seed_stack
  _write_png(tmp_path / 'photo.png', 48, 36)
  _write_png(tmp_path / 'odd.png', 30, 36)
  assert cli.main(['restore', str(tmp_path / 'photo.png'), '--exported', str(export), '--out',
                   str(tmp_path / 'exported')]) == 0
  assert cli.main(['denoise', str(tmp_path / 'photo.png'), '--workdir', str(workdir), '--out',
                   str(tmp_path / 'trained')]) == 0
  assert (tmp_path / 'exported' / 'photo.png').read_bytes() == (tmp_path / 'trained' / 'photo.png').read_bytes()
  fails_with_one_line(capsys, ['denoise', tmp_path / 'photo.png', tmp_path / 'odd.png', '--exported', export,
                               '--out', tmp_path / 'odd_out'], 'odd.png is 30x36 px', 'e.g. to 32x36')
  assert not (tmp_path / 'odd_out').exists()
  fails_with_one_line(capsys, ['denoise', tmp_path / 'photo.png', '--exported', tmp_path / 'nowhere', '--out',
                               tmp_path / 'x'], 'does not exist')
