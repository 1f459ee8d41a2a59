"""The work behind `cnnrecon eval` and `cnnrecon denoise` (the CLI only parses flags)."""

import pathlib
from typing import Sequence

from cnnrecon import evaluate
from cnnrecon.data.images import read_image, write_image
from cnnrecon.data.sources import load_source
from cnnrecon.inference import evaluate_images, load_trained
from cnnrecon.ops.degrade import validate_degradation
from cnnrecon.train.final_report import source_images


def evaluate_workdir(workdir: str, *, data: str | None = None, sigma: float | None = None, seed: int = 0,
                     out: str | None = None, with_baselines: bool = True) -> dict:
  """Scores a trained model, the noisy input and classical baselines; prints and writes the table.

  Args:
    workdir: a trained workdir.
    data: image folder or data spec (default: the config's `data.eval`).
    sigma: noise level on the 0-255 scale (default: the training sigma).
    seed: noise seed (image i uses `fold_in(key(seed), i)`).
    out: output folder (default `<workdir>/eval`).
    with_baselines: include scikit-image's classical denoisers.

  Returns:
    The per-method averages (`evaluate.summarize`).
  """
  model = load_trained(workdir)
  degradation = model.config.degradation.copy_and_resolve_references()
  if sigma is not None:
    degradation.sigma = float(sigma)
  validate_degradation(degradation)
  spec = data or model.config.data.eval
  images = source_images(load_source(spec, data_dir=model.config.data.data_dir or None), model.config.data.channels)
  rows, _ = evaluate_images(model, images, degradation_config=degradation, seed=seed, with_baselines=with_baselines)
  out_dir = pathlib.Path(out) if out else pathlib.Path(workdir) / 'eval'
  title = f'{model.config.model.name} (step {model.step}) on {spec}, sigma={degradation.sigma:g}, seed={seed}'
  paths = evaluate.write_tables(rows, out_dir, title=title)
  print(title)
  print(evaluate.format_table(rows))
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
