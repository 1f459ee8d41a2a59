"""Run logs: `metrics.jsonl` (one JSON object per logged step) and TensorBoard events.

Only process 0 writes; other processes get a writer that does nothing.
"""

import pathlib
from typing import Sequence

import jax
import numpy as np
import tensorboardX

from cnnrecon.data.grids import image_grid
from cnnrecon.io import append_jsonl, read_jsonl, write_jsonl_atomic


class MetricWriter:
  """Appends scalars to `<workdir>/metrics.jsonl` and `<workdir>/tb/`."""

  def __init__(self, workdir: str | pathlib.Path):
    self.enabled = jax.process_index() == 0
    self.jsonl_path = pathlib.Path(workdir) / 'metrics.jsonl'
    self._tensorboard = tensorboardX.SummaryWriter(str(pathlib.Path(workdir) / 'tb')) if self.enabled else None

  def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
    """Logs `scalars` (e.g. {'train/loss': 0.01}) at `step`."""
    if not self.enabled:
      return
    append_jsonl(self.jsonl_path, {'step': step, **scalars})
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, step)

  def write_image_columns(self, step: int, name: str, columns: Sequence[np.ndarray]) -> None:
    """Logs NHWC batches side by side (e.g. observed | estimate | target) as one image."""
    if self.enabled:
      self._tensorboard.add_image(name, image_grid(columns), step, dataformats='HWC')

  def close(self) -> None:
    """Flushes TensorBoard events."""
    if self.enabled:
      self._tensorboard.close()


def truncate_after(jsonl_path: pathlib.Path, step: int) -> None:
  """Drops log lines past `step` (written after the checkpoint a resumed run restarts from)."""
  if jsonl_path.exists():
    write_jsonl_atomic(jsonl_path, [record for record in read_jsonl(jsonl_path) if record['step'] <= step])


def wall_time_logged(jsonl_path: pathlib.Path) -> float:
  """The training wall time recorded so far (`train/wall_time_s` of the last logged step), 0 if none."""
  if not jsonl_path.exists():
    return 0.0
  times = [record['train/wall_time_s'] for record in read_jsonl(jsonl_path) if 'train/wall_time_s' in record]
  return float(times[-1]) if times else 0.0
