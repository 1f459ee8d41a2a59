"""The end-of-training evaluation: full-size validation images, baselines, report.md."""

import pathlib
from typing import Any, Sequence

import ml_collections
import numpy as np

from cnnrecon import evaluate, report
from cnnrecon.data.images import to_channels
from cnnrecon.data.pipeline import center_crop
from cnnrecon.inference import TrainedModel, evaluate_images


def source_images(source: Sequence, channels: int) -> list[tuple[str, np.ndarray]]:
  """(name, float HWC image in [0, 1]) for every example of a data source."""
  return [(str(source[i]['name']), to_channels(source[i]['image'], channels).astype(np.float32) / 255.0)
          for i in range(len(source))]


def write(config: ml_collections.ConfigDict, workdir: pathlib.Path, host_state: Any, eval_source: Sequence, *,
          wall_time_s: float, images_per_second: float | None = None) -> pathlib.Path:
  """Evaluates the final model on the full validation images and writes the report.

  Writes `<workdir>/eval/results.{md,csv}` + `summary.json`, `grid.png`
  (noisy | denoised | clean), `loss_curve.png` and `report.md`.

  Returns:
    The path of `report.md`.
  """
  model = TrainedModel(config=config, step=int(host_state.step),
                       variables={'params': host_state.params, 'batch_stats': host_state.batch_stats})
  rows, triplets = evaluate_images(model, source_images(eval_source, config.data.channels),
                                   degradation_config=config.degradation, seed=config.seed,
                                   with_baselines=config.report.baselines)
  evaluate.write_tables(rows, workdir / 'eval', title=f'{config.model.name} on {config.data.eval}')
  examples = triplets[:config.report.grid_examples]
  crop = min(min(image.shape[0], image.shape[1]) for _, _, image in examples)
  columns = [np.stack([center_crop(t[i], crop) for t in examples]) for i in range(3)]
  grid_png = workdir / 'grid.png'
  report.save_png(grid_png, report.image_grid(columns, titles=['noisy', 'denoised', 'clean']))
  curve_png = workdir / 'loss_curve.png'
  report.plot_loss_curve(workdir / 'metrics.jsonl', curve_png)
  config_summary = {'model': f'{config.model.name} (depth {config.model.depth}, {config.model.features} features)',
                    'degradation': _describe_degradation(config.degradation),
                    'train data': config.data.train, 'eval data': config.data.eval,
                    'batch / patch': f'{config.data.batch_size} x {config.data.patch_size}px',
                    'steps': config.train.steps, 'seed': config.seed, 'parallel': config.parallel}
  return report.write_report(workdir, config_summary=config_summary, rows_summary=evaluate.summarize(rows),
                             grid_png=str(grid_png), curve_png=str(curve_png), wall_time_s=wall_time_s,
                             steps=config.train.steps, images_per_second=images_per_second)


def _describe_degradation(degradation: ml_collections.ConfigDict) -> str:
  if degradation.name == 'gaussian':
    return f'AWGN sigma={degradation.sigma:g}/255'
  if degradation.name == 'poisson':
    return f'Poisson peak={degradation.peak:g}'
  return f'inpainting, keep {degradation.keep_prob:.0%} of pixels'
