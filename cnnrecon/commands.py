"""The work behind `cnnrecon eval` and `cnnrecon denoise` (the CLI only parses flags)."""

import pathlib
from typing import Sequence

import numpy as np

from cnnrecon import evaluate
from cnnrecon.data.images import read_image, write_image
from cnnrecon.data.sources import load_source
from cnnrecon.inference import evaluate_images, load_trained
from cnnrecon.ops.degrade import validate_degradation
from cnnrecon.train.final_report import source_images


PROTOCOL = ('Protocol: images in [0, 1]; AWGN drawn per image from `fold_in(key(seed), index)`; the noisy '
            'input is not clipped; estimates are clipped to [0, 1]; PSNR (data range 1) and SSIM on the full image.')


def mean_over_seeds(rows_per_seed: Sequence[dict]) -> dict:
  """Per-image metrics averaged over noise seeds (same structure as one seed's rows)."""
  first = rows_per_seed[0]
  return {method: {image: {key: float(np.mean([rows[method][image][key] for rows in rows_per_seed]))
                           for key in first[method][image]}
                   for image in first[method]}
          for method in first}


def _seed_lines(rows_per_seed: Sequence[dict], seeds: Sequence[int]) -> str:
  spread = evaluate.summarize_seeds(rows_per_seed)
  lines = [f'Averages over noise seeds {", ".join(map(str, seeds))} (mean ± sample std of the per-seed averages):', '',
           '| method | PSNR (dB) | SSIM |', '|---|---:|---:|']
  lines += [f"| {method} | {values['psnr_mean']:.2f} ± {values['psnr_std']:.2f} | "
            f"{values['ssim_mean']:.4f} ± {values['ssim_std']:.4f} |" for method, values in spread.items()]
  return '\n'.join(lines)


def evaluate_workdir(workdir: str, *, data: str | None = None, sigma: float | None = None,
                     seeds: Sequence[int] = (0,), out: str | None = None, with_baselines: bool = True) -> dict:
  """Scores a trained model, the noisy input and classical baselines; prints and writes the table.

  Args:
    workdir: a trained (or imported) workdir.
    data: image folder or data spec (default: the config's `data.eval`).
    sigma: noise level on the 0-255 scale (default: the training sigma).
    seeds: noise seeds; with several, per-image values are averaged over
      seeds and the mean ± std of the per-seed averages is reported too.
    out: output folder (default `<workdir>/eval`).
    with_baselines: include scikit-image's classical denoisers.

  Returns:
    The per-method averages (`evaluate.summarize`, over all seeds).
  """
  model = load_trained(workdir)
  degradation = model.config.degradation.copy_and_resolve_references()
  if sigma is not None:
    degradation.sigma = float(sigma)
  validate_degradation(degradation)
  spec = data or model.config.data.eval
  images = source_images(load_source(spec, data_dir=model.config.data.data_dir or None), model.config.data.channels)
  rows_per_seed = [evaluate_images(model, images, degradation_config=degradation, seed=seed,
                                   with_baselines=with_baselines)[0] for seed in seeds]
  rows = mean_over_seeds(rows_per_seed)
  notes = PROTOCOL + ('\n\n' + _seed_lines(rows_per_seed, seeds) if len(seeds) > 1 else '')
  out_dir = pathlib.Path(out) if out else pathlib.Path(workdir) / 'eval'
  title = (f'{model.config.model.name} (step {model.step}) on {spec}, sigma={degradation.sigma:g}, '
           f'seed{"s" if len(seeds) > 1 else ""} {",".join(map(str, seeds))}')
  paths = evaluate.write_tables(rows, out_dir, title=title, notes=notes)
  print(title)
  print(evaluate.format_table(rows))
  if len(seeds) > 1:
    print(_seed_lines(rows_per_seed, seeds))
  print(f"tables: {', '.join(str(path) for path in paths.values())}")
  return evaluate.summarize(rows)


def denoise_files(paths: Sequence[str], *, workdir: str, out: str) -> list[pathlib.Path]:
  """Restores each image file with a trained model and writes `<out>/<stem>.png`.

  Every input is read before anything is written, so a bad file changes nothing.

  Returns:
    The written paths.
  """
  model = load_trained(workdir)
  images = [read_image(path, channels=model.config.data.channels) for path in paths]
  written = []
  for path, image in zip(paths, images):
    target = pathlib.Path(out) / f'{pathlib.Path(path).stem}.png'
    write_image(target, model(image[None])[0].clip(0.0, 1.0))
    written.append(target)
    print(target)
  return written
