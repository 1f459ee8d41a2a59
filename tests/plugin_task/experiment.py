"""The compressed-sensing task's experiment (`:smoke`) and a 2-run ablation over its number of measurements."""

import pathlib
import sys

import ml_collections

from cnnrecon.config import base_config, shrink_for_smoke
from cnnrecon.sweep import product

# The task's module lies beside this file (an installed package would declare a `cnnrecon.tasks` entry point).
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import compressed_sensing  # noqa: E402,F401  pylint: disable=wrong-import-position  (registers the task)


def get_config(arg=None):
  """16x16 crops of the bundled gray samples, 128 measurements of 256 pixels, a small DnCNN."""
  config = base_config()
  config.task.name = 'compressed_sensing'
  config.task.compressed_sensing = ml_collections.ConfigDict(
      {'measurements': 128, 'side': 16, 'matrix_seed': 0, 'sigma': 2.0})
  config.model.depth = 4
  config.data.patch_size = 16
  config.data.eval_crop = 16
  if arg == 'smoke':
    shrink_for_smoke(config)
    config.data.eval_crop = 16
    config.train.steps = 8
    config.report.baselines = True
  return config


def get_sweep(arg=None):
  del arg
  return product({'task.compressed_sensing.measurements': [64, 128]})
