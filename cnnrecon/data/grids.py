"""Image grids: batches laid out side by side (observed | estimate | target) for reports and TensorBoard."""

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import util as skutil

SEPARATOR_PX = 2


def image_grid(columns: Sequence[np.ndarray], *,
               titles: Sequence[str] | None = None) -> np.ndarray:
  """Lays out batches side by side: one row per example, one column per batch.

  Args:
    columns: NHWC batches with equal N, H and W (e.g. noisy, denoised, clean);
      C is 1 or 3, values are clipped to [0, 1].
    titles: optional column titles drawn in a band above the grid.

  Returns:
    uint8 RGB image of shape (N*(H+2)+2 [+ title band], K*(W+2)+2, 3) for K
    columns, with white 2-px separators and border.
  """
  batches = [_as_rgb_batch(c) for c in columns]
  if not batches or any(b.shape != batches[0].shape for b in batches):
    raise ValueError(f'image_grid needs >= 1 batch, all the same NHW; got '
                     f'{[np.shape(c) for c in columns]}')
  if titles is not None and len(titles) != len(batches):
    raise ValueError(f'got {len(titles)} titles for {len(batches)} columns')
  n, height, width, _ = batches[0].shape
  # Row-major order (example, column) is what montage fills its grid with.
  tiles = np.stack(batches, axis=1).reshape(n * len(batches), height, width, 3)
  grid = skutil.montage(tiles, grid_shape=(n, len(batches)), fill=(1.0, 1.0, 1.0),
                        padding_width=SEPARATOR_PX, channel_axis=-1)
  grid = np.round(grid * 255.0).astype(np.uint8)
  return _add_titles(grid, titles, width) if titles else grid


def _as_rgb_batch(batch: np.ndarray) -> np.ndarray:
  batch = np.clip(np.asarray(batch, dtype=np.float32), 0.0, 1.0)
  if batch.ndim != 4 or batch.shape[-1] not in (1, 3):
    raise ValueError(f'image_grid columns must be NHWC with C=1 or 3, got {batch.shape}')
  return np.repeat(batch, 3, axis=-1) if batch.shape[-1] == 1 else batch


def _add_titles(grid: np.ndarray, titles: Sequence[str], tile_width: int) -> np.ndarray:
  """Prepends a white band with each title centred over its column."""
  font = ImageFont.load_default()
  band_height = max(font.getbbox(t)[3] for t in titles) + 2 * SEPARATOR_PX + 2
  canvas = Image.new('RGB', (grid.shape[1], grid.shape[0] + band_height), 'white')
  canvas.paste(Image.fromarray(grid), (0, band_height))
  draw = ImageDraw.Draw(canvas)
  for j, title in enumerate(titles):
    left, _, right, _ = font.getbbox(title)
    x = SEPARATOR_PX + j * (tile_width + SEPARATOR_PX) + (tile_width - (right - left)) // 2
    draw.text((x, SEPARATOR_PX), title, fill='black', font=font)
  return np.asarray(canvas)
