"""The `make demo` recipe: trains on the bundled samples and must beat every classical baseline.

About 100 s of CPU alone (FLOP-bound: 1,600 steps of a 10-layer DnCNN), so it runs in `make
test-reproductions` with the other recipe-level checks; CI runs that right after `make test`.
"""

import json

import pytest

from cnnrecon.evaluation import train_and_evaluate
from conftest import REPO


@pytest.mark.reproduction
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
