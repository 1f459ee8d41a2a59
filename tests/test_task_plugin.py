"""A task written outside the package, through the public API only (tests/plugin_task/): compressed sensing,
whose observation is a vector. It trains, reports, evaluates, sweeps, exports and restores with the shared
code, and no file under cnnrecon/ names it."""

import json
import pathlib

import numpy as np
import pytest

from cnnrecon import cli, load_model
from cnnrecon.config import load_config
from cnnrecon.evaluation import load_trained, train_and_evaluate
from cnnrecon.export import load
from cnnrecon.export.writer import export_workdir
from cnnrecon.sweep import run_sweep, sweep_report
from cnnrecon.tasks import build_task
from conftest import REPO

PLUGIN = pathlib.Path(__file__).parent / 'plugin_task'
SPEC = str(PLUGIN / 'experiment.py') + ':smoke'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The smoke run of the plugin task, trained once for this module."""
  workdir = tmp_path_factory.mktemp('plugin') / 'run'
  summary = train_and_evaluate(load_config(SPEC), workdir, progress=False)
  assert summary['step'] == 8 and 'report' in summary
  return workdir


def test_no_file_of_the_package_names_the_plugin_task():
  for path in (REPO / 'cnnrecon').rglob('*.py'):
    assert 'compressed_sensing' not in path.read_text(), path


def test_its_report_scores_the_model_the_back_projection_and_its_least_squares_baseline(trained):
  summary = json.loads((trained / 'eval' / 'summary.json').read_text())
  assert set(summary) == {'model', 'back-projection', 'baselines'} and set(summary['baselines']) == {'least_squares'}
  report = (trained / 'report.md').read_text()
  assert '| least_squares |' in report and 'ΔPSNR vs back-projection' in report
  assert (trained / 'grid.png').is_file()
  # The least-squares baseline is the minimum-norm solution numpy's lstsq finds for one observation.
  task = build_task(load_config(SPEC))
  clean = np.random.default_rng(0).random((16, 16, 1), dtype=np.float32)
  observed = np.asarray(task.operator.apply(__import__('jax').random.key(0), clean))
  expected = np.linalg.lstsq(task.operator.matrix, observed, rcond=None)[0].reshape(16, 16, 1)
  np.testing.assert_allclose(task.baselines['least_squares']({'observed': observed}), expected, atol=1e-4)


def test_it_evaluates_from_the_cli_and_refuses_what_does_not_apply(trained, tmp_path, capsys):
  assert cli.main(['eval', '--workdir', str(trained), '--seeds', '0,1', '--out', str(tmp_path / 'eval')]) == 0
  summary = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
  assert summary['model']['psnr'] > summary['back-projection']['psnr']
  assert cli.main(['eval', '--workdir', str(trained), '--sigma', '-3', '--out', str(tmp_path / 'e2')]) == 2
  assert '--sigma -3.0 must be a finite noise level' in capsys.readouterr().err


def test_a_two_run_sweep_over_it(tmp_path):
  counts = run_sweep(str(PLUGIN / 'experiment.py') + ':smoke', tmp_path, echo=lambda line: None)
  assert counts['finished'] == 2 and counts['failed'] == 0
  sweep_report(tmp_path)
  lines = (tmp_path / 'results.csv').read_text().splitlines()
  assert len(lines) == 3 and 'measurements' in lines[0]
  statuses = [json.loads((tmp_path / run / 'sweep_status.json').read_text()) for run in
              ('measurements=64', 'measurements=128')]
  assert statuses[0]['flops_per_image'] < statuses[1]['flops_per_image']  # A^T y of 64 rows costs less


def test_it_exports_and_the_exports_restore_its_vector_observations(trained, tmp_path, capsys):
  model = load_trained(trained)
  observed = np.random.default_rng(1).normal(0.0, 1.0, (3, 128)).astype(np.float32)
  expected = np.stack([model.restore(y) for y in observed])
  export_workdir(trained, tmp_path / 'hlo')
  export_workdir(trained, tmp_path / 'params', fmt='params')
  manifest = json.loads((tmp_path / 'hlo' / 'manifest.json').read_text())
  assert manifest['inputs'] == [{'name': 'observed', 'kind': 'vector', 'size': 128, 'dtype': 'float32',
                                 'shape': '(b, 128)'}]
  np.testing.assert_allclose(load(tmp_path / 'hlo')(observed), expected, atol=1e-6)
  np.testing.assert_allclose(np.stack([load_model(tmp_path / 'params').restore(y) for y in observed]), expected,
                             atol=1e-6)
  np.save(tmp_path / 'y.npy', observed[0])
  assert cli.main(['restore', str(tmp_path / 'y.npy'), '--exported', str(tmp_path / 'hlo'),
                   '--out', str(tmp_path / 'out')]) == 0
  assert (tmp_path / 'out' / 'y.png').is_file()
  np.save(tmp_path / 'bad.npy', observed)  # a batch, not one vector
  assert cli.main(['restore', str(tmp_path / 'bad.npy'), '--workdir', str(trained),
                   '--out', str(tmp_path / 'out2')]) == 2
  assert 'give one vector of measurements' in capsys.readouterr().err
  assert not (tmp_path / 'out2').exists()


def test_a_task_that_trains_on_whole_images_refuses_images_of_other_sizes():
  from cnnrecon.tasks import TASKS, register_task
  from cnnrecon.tasks.denoise import GaussianDenoising
  from cnnrecon.train.checks import check_sizes
  if 'whole_image_gaussian' not in TASKS:
    register_task('whole_image_gaussian')(type('WholeImageGaussian', (GaussianDenoising,), {'trains_on': 'images'}))
  config = load_config(str(REPO / 'experiments' / 'denoise_dncnn.py') + ':smoke',
                       ['task.name=whole_image_gaussian', 'data.patch_size=16', 'data.eval_crop=16'])
  config.task.whole_image_gaussian = config.task.gaussian
  same = [{'image': np.zeros((16, 16, 1), np.uint8)}] * 3
  check_sizes(config, same, same)
  with pytest.raises(Exception, match='trains on whole images, but image 1 .* is 16x20 px'):
    check_sizes(config, [same[0], {'image': np.zeros((16, 20, 1), np.uint8)}], same)
