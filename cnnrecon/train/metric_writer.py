"""Run logs: `metrics.jsonl` (one JSON object per logged step) and TensorBoard events.

Only process 0 writes; other processes get a writer that does nothing.
"""

import json
import pathlib

import jax
import numpy as np
import tensorboardX

from cnnrecon.errors import CnnreconError
from cnnrecon.evaluate import write_file_atomic


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


def read_records(path: pathlib.Path) -> list[dict]:
  """Parses a metrics.jsonl file (one JSON object per line; blank lines skipped)."""
  if not path.is_file():
    raise CnnreconError(f'metrics file {path} not found; train first or pass the '
                        f'workdir that holds metrics.jsonl')
  records = []
  for number, line in enumerate(path.read_text().splitlines(), start=1):
    if line.strip():
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as e:
        raise CnnreconError(f'{path}:{number} is not valid JSON ({e.msg}); '
                            f'fix or delete that line') from e
  return records


def truncate_after(jsonl_path: pathlib.Path, step: int) -> None:
  """Drops log lines past `step` (written after the checkpoint a resumed run restarts from)."""
  if not jsonl_path.exists():
    return
  kept = [record for record in read_records(jsonl_path) if record['step'] <= step]
  write_file_atomic(jsonl_path, ''.join(json.dumps(record) + '\n' for record in kept))
