"""Run logs: `metrics.jsonl` (one JSON object per logged step) and TensorBoard events.

Only process 0 writes; other processes get a writer that does nothing.
"""

import json
import pathlib

import jax
import numpy as np
import tensorboardX


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
    with self.jsonl_path.open('a') as stream:
      stream.write(json.dumps({'step': step, **scalars}) + '\n')
    for name, value in scalars.items():
      self._tensorboard.add_scalar(name, value, step)

  def write_image(self, step: int, name: str, image: np.ndarray) -> None:
    """Logs an HxWx3 uint8 image (e.g. a noisy | denoised | clean grid)."""
    if self.enabled:
      self._tensorboard.add_image(name, image, step, dataformats='HWC')

  def close(self) -> None:
    """Flushes TensorBoard events."""
    if self.enabled:
      self._tensorboard.close()


def truncate_after(jsonl_path: pathlib.Path, step: int) -> None:
  """Drops log lines past `step` (written after the checkpoint a resumed run restarts from)."""
  if not jsonl_path.exists():
    return
  lines = jsonl_path.read_text().splitlines(keepends=True)
  kept = [line for line in lines if line.strip() and json.loads(line)['step'] <= step]
  jsonl_path.write_text(''.join(kept))
