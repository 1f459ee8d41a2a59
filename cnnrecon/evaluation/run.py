"""`train_and_evaluate`: train (or resume), then score the final model and write report.md."""

import pathlib
import types
from typing import Any, Sequence

import jax
import ml_collections

from cnnrecon import config as config_lib
from cnnrecon.data.grids import image_grid
from cnnrecon.data.sources import load_source
from cnnrecon.errors import CnnreconError
from cnnrecon.evaluation import report
from cnnrecon.evaluation.workdir import images_as_trained
from cnnrecon.io import read_jsonl
from cnnrecon.safety import check_workdir_usable
from cnnrecon.tasks import task_class
from cnnrecon.train import checkpoint, loop
from cnnrecon.train.metric_writer import wall_time_logged


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, *,
                       force: bool = False, stop_at: int | None = None, from_step: int | None = None,
                       progress: bool = True) -> dict:
  """Trains (or resumes) the model of `config` in `workdir`, evaluates and reports.

  The workdir stays locked (one writer) from the first step to the report.

  Args:
    config: the resolved experiment config.
    workdir: where checkpoints, logs and the report go; an existing run resumes.
    force: resume even when the saved config differs.
    stop_at: stop (with a checkpoint) after this step, e.g. to split a long run
      over several job allocations; the next call resumes.
    from_step: resume from this checkpoint instead of the latest (see `train.loop.train`).
    progress: show a progress bar.

  Returns:
    A summary dict: final step, last train/eval metrics, `stopped_by` when a
    signal stopped training, and the report path (when training finished).
  """
  config = config_lib.upgrade_config(config)
  workdir = pathlib.Path(workdir)
  loop.validate_config(config, stop_at=stop_at)
  check_workdir_usable(workdir)
  with loop.workdir_lock(workdir):
    summary = loop.train(config, workdir, force=force, stop_at=stop_at, from_step=from_step, progress=progress)
    host_state = summary.pop('host_state')
    start = summary.pop('start_step')
    report_path = workdir / 'report.md'
    finished = summary['step'] >= config.train.steps and 'stopped_by' not in summary
    if finished and jax.process_index() == 0:
      # A rerun of a finished workdir trains nothing and keeps the report it has.
      if summary['step'] > start or not report_path.exists():
        eval_source = load_source(config.data.eval, data_dir=config.data.data_dir or None)
        write_final_report(config, workdir, host_state, eval_source, wall_time_s=summary['wall_time_s'],
                           images_per_second=summary.get('train/images_per_s'))
      summary['report'] = str(report_path)
  return summary


def regenerate_report(workdir: str | pathlib.Path) -> pathlib.Path:
  """Rewrites a finished run's report.md, tables, grid and plots from its last checkpoint and metrics.jsonl.

  The same function `train_and_evaluate` reports with, on the final model
  (the latest checkpoint), so a report lost or made by an older cnnrecon comes
  back as training would have written it. The training wall time and
  throughput are the ones logged in metrics.jsonl.

  Raises:
    CnnreconError: no checkpoint, or a run that has not finished training.
  """
  workdir = pathlib.Path(workdir)
  step, saved, variables = checkpoint.load_variables(workdir, step='latest')
  config = config_lib.upgrade_config(config_lib.config_from_dict(saved))
  if step < config.train.steps:
    raise CnnreconError(f'{workdir} stopped at step {step} of {config.train.steps}: finish it with '
                        f'`cnnrecon train --config ... --workdir {workdir}` (it resumes), which writes the report')
  metrics_path = workdir / 'metrics.jsonl'
  throughput = [record['train/images_per_s'] for record in read_jsonl(metrics_path)
                if 'train/images_per_s' in record] if metrics_path.is_file() else []
  host_state = types.SimpleNamespace(step=step, **variables)
  with loop.workdir_lock(workdir):  # not while a training run writes here
    return write_final_report(config, workdir, host_state,
                              load_source(config.data.eval, data_dir=config.data.data_dir or None),
                              wall_time_s=wall_time_logged(metrics_path) if metrics_path.is_file() else 0.0,
                              images_per_second=throughput[-1] if throughput else None)


def write_final_report(config: ml_collections.ConfigDict, workdir: pathlib.Path, host_state: Any,
                       eval_source: Sequence, *, wall_time_s: float,
                       images_per_second: float | None = None) -> pathlib.Path:
  """Evaluates the final model on the full validation images and writes the report.

  The task decides what is scored and shown (`Task.final_report`); this writes
  `<workdir>/eval/` (its tables, e.g. results.{md,csv} + summary.json),
  `grid.png` (e.g. model input | estimate | target, titled by the task: noisy
  | denoised | clean), `loss_curve.png` and `report.md`.

  Returns:
    The path of `report.md`.
  """
  cls = task_class(config)
  model = cls.inference_model(config, {'params': host_state.params, 'batch_stats': host_state.batch_stats},
                              int(host_state.step))
  results = cls.final_report(model, images_as_trained(eval_source, config, config.data.eval))
  report.write_results_files(workdir / 'eval', results.files)
  grid_png = (report.save_png(workdir / 'grid.png', image_grid(results.grid_columns, titles=results.grid_titles))
              if results.grid_columns else None)
  curve_png = report.plot_loss_curve(workdir / 'metrics.jsonl', workdir / 'loss_curve.png')
  summary = report.run_summary(config, model=results.model_row, task=results.task_row)
  return report.write_report(workdir, config_summary=summary, results_lines=results.results_lines,
                             grid_png=str(grid_png) if grid_png else None, curve_png=str(curve_png),
                             wall_time_s=wall_time_s, steps=config.train.steps, convention=results.convention,
                             images_per_second=images_per_second)
