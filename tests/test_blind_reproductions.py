"""The DnCNN authors' blind models reproduced through `cnnrecon weights import` + `cnnrecon eval`.

DnCNN-3 (one model: blind denoising, bicubic x2/x3/x4 super-resolution, JPEG deblocking) on Set5,
Set14 and Classic5, DnCNN-B (blind denoising) on Set12, against the numbers of Zhang et al. (TIP 2017,
Tables V-VII and II), each within 0.05 dB, and the MATLAB-bicubic baseline on Set5 within 0.02 dB.

These evaluate 20-layer nets over whole test sets (about 8 minutes of CPU in all), so they are marked
`reproduction`: `make test` leaves them out and `make test-reproductions` (run by CI after it) runs them.
They need the developer data in ../shared/data and skip without it.
"""

import json
import pathlib

import pytest

from cnnrecon import cli

DATA = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'data'
OFFICIAL = DATA / 'dncnn_official'

pytestmark = [pytest.mark.reproduction,
              pytest.mark.skipif(not (OFFICIAL / 'matconvnet_dncnn3.mat').is_file(),
                                 reason='needs ../shared/data (the DnCNN releases and test sets; developer data)')]

# Zhang et al. 2017, Table VI (DnCNN-3, PSNR on Y, border = scale) and Table VII (Classic5, JPEG).
SR_PUBLISHED = {'set5': {2: 37.58, 3: 33.75, 4: 31.40}, 'set14': {2: 33.03, 3: 29.81, 4: 28.04}}
BICUBIC_SET5 = {2: 33.66, 3: 30.39, 4: 28.42}
JPEG_CLASSIC5 = {10: 29.40, 20: 31.63, 30: 32.91, 40: 33.77}
# Table II (DnCNN-B, Set12).
BLIND_SET12 = {15: 32.68, 25: 30.36, 50: 27.21}


def _import(tmp_path_factory, name: str) -> pathlib.Path:
  workdir = tmp_path_factory.mktemp(name) / 'run'
  assert cli.main(['weights', 'import', '--format', 'matconvnet', str(OFFICIAL / f'matconvnet_{name}.mat'),
                   '--workdir', str(workdir)]) in (0, None)
  return workdir


@pytest.fixture(scope='module')
def dncnn3(tmp_path_factory):
  return _import(tmp_path_factory, 'dncnn3')


def _evaluate(workdir: pathlib.Path, out: pathlib.Path, *flags: str, baselines: bool = False) -> dict:
  args = ['eval', '--workdir', str(workdir), '--out', str(out), *flags]
  assert cli.main(args + ([] if baselines else ['--no-baselines'])) in (0, None)
  return json.loads((out / 'summary.json').read_text())


@pytest.mark.parametrize('data', sorted(SR_PUBLISHED))
def test_dncnn3_super_resolution(dncnn3, tmp_path, data):
  for scale, published in SR_PUBLISHED[data].items():
    summary = _evaluate(dncnn3, tmp_path / f'x{scale}', '--data', str(DATA / data), '--task', 'super_resolve',
                        '--scale', str(scale))
    model, bicubic = summary['model']['psnr'], summary['bicubic']['psnr']
    print(f'DnCNN-3 {data} x{scale}: {model:.3f} dB (published {published}), bicubic {bicubic:.3f} dB')
    assert abs(model - published) < 0.05
    if data == 'set5':
      assert abs(bicubic - BICUBIC_SET5[scale]) < 0.02


def test_dncnn3_jpeg_classic5(dncnn3, tmp_path):
  for quality, published in JPEG_CLASSIC5.items():
    summary = _evaluate(dncnn3, tmp_path / f'q{quality}', '--data', str(DATA / 'classic5'), '--task', 'jpeg',
                        '--quality', str(quality))
    model = summary['model']['psnr']
    print(f"DnCNN-3 Classic5 q={quality}: {model:.3f} dB (published {published}), "
          f"JPEG {summary['compressed']['psnr']:.3f} dB")
    assert abs(model - published) < 0.05


def test_dncnn_b_set12(tmp_path_factory, tmp_path):
  workdir = _import(tmp_path_factory, 'blind_gray')
  for sigma, published in BLIND_SET12.items():
    summary = _evaluate(workdir, tmp_path / f's{sigma}', '--data', str(DATA / 'set12'), '--task', 'gaussian',
                        '--sigma', str(sigma))
    model = summary['model']['psnr']
    print(f'DnCNN-B Set12 sigma={sigma}: {model:.3f} dB (published {published})')
    assert abs(model - published) < 0.05
