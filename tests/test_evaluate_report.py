"""Evaluation: scoring against skimage, result tables, image grids and report.md."""

import csv
import json

import numpy as np
import pytest
from skimage import data, img_as_float32
from skimage import color
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cnnrecon.data.grids import image_grid
from cnnrecon.evaluation import report
from cnnrecon.tasks import scoring, tables
from cnnrecon.io import write_file_atomic
from cnnrecon.tasks import MetricConvention

METHODS = ('model', 'noisy', 'nl_means', 'tv', 'wavelet')


def _rows(offset=0.0):
  """Synthetic rows: two images, PSNR/SSIM distinct per method and image."""
  return {
      method: {
          image: {'psnr': 20.0 + 2 * i + j + offset, 'ssim': 0.5 + 0.05 * i + 0.01 * j}
          for j, image in enumerate(('camera', 'moon'))
      }
      for i, method in enumerate(METHODS)
  }


def _image_pair():
  clean = img_as_float32(data.camera())[200:264, 200:264, None]
  noisy = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
  return clean, noisy


def test_image_metrics_psnr_matches_closed_form_without_clipping():
  clean, noisy = _image_pair()
  assert noisy.min() < 0 or noisy.max() > 1  # the clipping choice matters here
  mse = np.mean((clean.astype(np.float64) - noisy) ** 2)
  got = scoring.image_metrics(clean, noisy, clip_estimate=False)
  np.testing.assert_allclose(got['psnr'], 10 * np.log10(1.0 / mse), rtol=1e-6)


def test_image_metrics_clips_estimate_by_default():
  clean, noisy = _image_pair()
  clipped = np.clip(noisy, 0, 1)
  mse = np.mean((clean.astype(np.float64) - clipped) ** 2)
  got = scoring.image_metrics(clean, noisy)
  np.testing.assert_allclose(got['psnr'], 10 * np.log10(1.0 / mse), rtol=1e-6)
  want_ssim = structural_similarity(
      clean[..., 0].astype(np.float64), clipped[..., 0].astype(np.float64), data_range=1,
      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
  np.testing.assert_allclose(got['ssim'], want_ssim, atol=1e-5)  # float32 vs float64


def _rgb_pair():
  clean = img_as_float32(data.astronaut())[100:164, 180:260]
  noise = np.random.default_rng(1).normal(0, 0.05, clean.shape).astype(np.float32)
  return clean, np.clip(clean + noise, 0, 1)


def test_image_metrics_rgb_match_skimage():
  clean, estimate = _rgb_pair()
  got = scoring.image_metrics(clean, estimate)
  want_psnr = peak_signal_noise_ratio(clean.astype(np.float64), estimate.astype(np.float64), data_range=1)
  want_ssim = structural_similarity(clean.astype(np.float64), estimate.astype(np.float64), data_range=1,
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)
  np.testing.assert_allclose(got['psnr'], want_psnr, rtol=1e-6)
  np.testing.assert_allclose(got['ssim'], want_ssim, atol=1e-5)  # float32 vs float64


def test_y_channel_and_border_crop_convention_matches_skimage():
  clean, estimate = _rgb_pair()
  convention = MetricConvention(y_channel=True, crop=4)
  got = scoring.image_metrics(clean, estimate, convention=convention)
  # skimage's rgb2ycbcr is MATLAB's: Y in [16, 235] for RGB in [0, 1].
  luma = lambda image: color.rgb2ycbcr(image.astype(np.float64))[4:-4, 4:-4, 0] / 255.0
  want_psnr = peak_signal_noise_ratio(luma(clean), luma(estimate), data_range=1)
  want_ssim = structural_similarity(luma(clean), luma(estimate), data_range=1, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
  np.testing.assert_allclose(got['psnr'], want_psnr, rtol=1e-5)
  np.testing.assert_allclose(got['ssim'], want_ssim, atol=1e-5)
  assert 'Y channel' in convention.describe() and '4-pixel border' in convention.describe()


def test_summarize_is_mean_over_images():
  summary = scoring.summarize(_rows())
  assert summary['tv'] == pytest.approx({'psnr': 26.5, 'ssim': 0.655})


def test_summarize_seeds_mean_and_sample_std():
  seeds = scoring.summarize_seeds([_rows(0.0), _rows(1.0), _rows(2.0)])
  assert seeds['model']['psnr_mean'] == pytest.approx(21.5)
  assert seeds['model']['psnr_std'] == pytest.approx(np.std([20.5, 21.5, 22.5], ddof=1))
  assert seeds['model']['ssim_std'] == pytest.approx(0.0, abs=1e-12)
  assert scoring.summarize_seeds([_rows()])['tv']['psnr_std'] == 0.0


def _write_tables(rows, out_dir, *, title):
  paths = report.write_results_files(out_dir, tables.table_files(rows, title=title))
  return {'markdown': paths['results.md'], 'csv': paths['results.csv'], 'summary': paths['summary.json']}


def test_write_tables_files(tmp_path):
  paths = _write_tables(_rows(), tmp_path / 'eval', title='Set12, sigma 25')

  summary = json.loads(paths['summary'].read_text())
  assert set(summary) == {'model', 'noisy', 'baselines'}
  assert set(summary['baselines']) == {'nl_means', 'tv', 'wavelet'}
  for metrics in [summary['model'], summary['noisy'], *summary['baselines'].values()]:
    assert set(metrics) == {'psnr', 'ssim'}
    assert all(isinstance(v, float) for v in metrics.values())
  assert summary['model']['psnr'] == pytest.approx(20.5)

  with paths['csv'].open(newline='') as f:
    records = list(csv.DictReader(f))
  assert list(records[0]) == ['image', 'method', 'psnr', 'ssim']
  assert len(records) == 2 * len(METHODS) + len(METHODS)
  average_tv = [r for r in records if r['image'] == 'Average' and r['method'] == 'tv']
  assert float(average_tv[0]['psnr']) == pytest.approx(26.5)

  markdown = paths['markdown'].read_text()
  assert '# Set12, sigma 25' in markdown
  assert '| **Average** |' in markdown
  assert '| tv | 26.50 | 0.6550 |' in markdown


def test_write_tables_is_atomic_and_overwrites(tmp_path):
  _write_tables(_rows(), tmp_path, title='first')
  _write_tables(_rows(1.0), tmp_path, title='second')
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'results.csv', 'results.md', 'summary.json']
  assert '# second' in (tmp_path / 'results.md').read_text()


def test_failed_write_leaves_no_tmp_file(tmp_path):
  with pytest.raises(TypeError):  # fails inside the write, after the tmp file exists
    write_file_atomic(tmp_path / 'x.md', ['neither str nor bytes'])
  assert list(tmp_path.iterdir()) == []


def test_format_table_is_fixed_width():
  lines = tables.format_table(_rows()).splitlines()
  assert lines[0].split() == ['image', 'noisy', 'nl_means', 'tv', 'wavelet', 'model']
  assert lines[-1].startswith('Average')
  assert len({len(line) for line in lines}) == 1


def test_mismatched_images_are_rejected():
  rows = _rows()
  del rows['tv']['moon']
  with pytest.raises(ValueError, match='tv'):
    tables.format_table(rows)


def test_image_grid_shape_and_separators():
  rng = np.random.default_rng(0)
  columns = [rng.uniform(-0.5, 1.5, (2, 10, 12, 1)), rng.uniform(0, 1, (2, 10, 12, 3)),
             rng.uniform(0, 1, (2, 10, 12, 3))]
  grid = image_grid(columns)
  assert grid.dtype == np.uint8
  assert grid.shape == (2 * (10 + 2) + 2, 3 * (12 + 2) + 2, 3)
  assert np.all(grid[:2] == 255) and np.all(grid[:, 14:16] == 255)
  # Example 1 (second row), column 0 is the clipped gray image in all channels.
  want = np.round(np.clip(columns[0][1, ..., 0], 0, 1) * 255)
  np.testing.assert_array_equal(grid[14:24, 2:14, 1], want)


def test_image_grid_titles_add_a_band():
  columns = [np.zeros((2, 10, 12, 3))] * 3
  plain = image_grid(columns)
  titled = image_grid(columns, titles=['noisy', 'denoised', 'clean'])
  assert titled.shape[1:] == plain.shape[1:] and titled.shape[0] > plain.shape[0]
  np.testing.assert_array_equal(titled[-plain.shape[0]:], plain)


def test_save_png_roundtrip(tmp_path):
  from PIL import Image
  grid = image_grid([np.full((1, 8, 8, 3), 0.5)] * 2)
  path = report.save_png(tmp_path / 'grid.png', grid)
  np.testing.assert_array_equal(np.asarray(Image.open(path)), grid)


def test_plot_loss_curve_writes_png(tmp_path):
  lines = [json.dumps({'step': s, 'train/loss': 1.0 / s, 'train/psnr': 20 + s / 10})
           for s in range(1, 50)]
  lines += [json.dumps({'step': s, 'eval/psnr': 25.0 + s / 100}) for s in (10, 30, 49)]
  metrics = tmp_path / 'metrics.jsonl'
  metrics.write_text('\n'.join(lines) + '\n\n')
  out = report.plot_loss_curve(metrics, tmp_path / 'curves.png')
  assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  assert sorted(p.name for p in tmp_path.iterdir()) == ['curves.png', 'metrics.jsonl']


def test_plot_loss_curve_bad_line_is_a_user_error(tmp_path):
  from cnnrecon.errors import CnnreconError
  metrics = tmp_path / 'metrics.jsonl'
  metrics.write_text('{"step": 1, "train/loss": 0.1}\n{oops\n')
  with pytest.raises(CnnreconError, match='metrics.jsonl:2'):
    report.plot_loss_curve(metrics, tmp_path / 'curves.png')


def test_write_report_contains_table_and_links(tmp_path):
  summary = scoring.summarize(_rows())
  (tmp_path / 'plots').mkdir()
  path = report.write_report(
      tmp_path, config_summary={'model': {'name': 'dncnn', 'depth': 17}, 'sigma': 25},
      results_lines=tables.gains_table(summary, 'noisy'), grid_png=str(tmp_path / 'plots' / 'grid.png'),
      curve_png=str(tmp_path / 'curves.png'), wall_time_s=120.0, steps=1000,
      images_per_second=266.7, convention='PSNR on [0, 1], noisy not clipped')
  text = path.read_text()
  assert path == tmp_path / 'report.md'
  assert '| model.depth | 17 |' in text
  table = [line for line in text.splitlines() if line.startswith('| ') and 'dB' not in line
           and line.split('|')[1].strip() in METHODS]
  assert [line.split('|')[1].strip() for line in table] == [
      'wavelet', 'tv', 'nl_means', 'noisy', 'model']  # PSNR descending
  assert '| tv | 26.50 | 0.6550 | +4.00 | +0.1000 |' in text
  assert '(plots/grid.png)' in text and '(curves.png)' in text
  assert '0.120 s/step' in text and '266.7 images/s' in text
  assert 'noisy not clipped' in text
