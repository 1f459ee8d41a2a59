"""The `make demo` recipe: trains on the bundled samples and must beat every classical baseline."""

import json

from cnnrecon.evaluation import train_and_evaluate
from conftest import REPO


def test_demo_beats_noisy_input_and_classical_denoisers(tmp_path):
  from cnnrecon.config import load_config
  config = load_config(str(REPO / 'experiments' / 'denoise_dncnn.py') + ':demo')
  summary = train_and_evaluate(config, tmp_path, progress=False)
  assert (tmp_path / 'report.md').exists() and summary['report'].endswith('report.md')
  results = json.loads((tmp_path / 'eval' / 'summary.json').read_text())
  model, noisy = results['model']['psnr'], results['noisy']['psnr']
  best_baseline = max(scores['psnr'] for scores in results['baselines'].values())
  assert set(results['baselines']) == {'nl_means', 'tv', 'wavelet'}
  assert model >= noisy + 6.0, results
  assert model > best_baseline, results
