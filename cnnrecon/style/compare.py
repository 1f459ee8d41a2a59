"""Trained nets against Gatys optimisation on the same images, loss and loss network.

A fast net and Gatys minimise the same objective (`style.perceptual.GramPerceptualLoss`,
with the fast net's own weights, layers, VGG and style targets). An AdaIN decoder
minimises another (mean / std statistics), so its results are scored with Gatys'
own loss (Gram matrices, `gatys.make_loss`) on the same VGG, beside Gatys' results.
Each comparison reports style and content loss and seconds per image.
"""

import json
import pathlib
from typing import Sequence

import numpy as np

from cnnrecon.data.grids import image_grid
from cnnrecon.data.images import write_image
from cnnrecon.io import write_file_atomic
from cnnrecon.style.loss_network import deepest, load_loss_network
from cnnrecon.style import gatys
from cnnrecon.style.adain import AdaINNet
from cnnrecon.style.fast import FastNet, stylize_and_score
from cnnrecon.style import perceptual


def gatys_settings_of(net: FastNet, *, steps: int = 200) -> gatys.GatysSettings:
  """Gatys settings with the fast net's loss weights and layers (Adam from the content image)."""
  options = net.config.task.fast_style
  return gatys.GatysSettings(content_weight=float(options.content_weight), style_weight=float(options.style_weight),
                             tv_weight=float(options.tv_weight), content_layers=tuple(options.content_layers),
                             style_layers=tuple(options.style_layers), steps=steps)


def compare_with_gatys(net: FastNet, contents: Sequence[np.ndarray], *, style_index: int = 0, steps: int = 200,
                       progress: bool = False) -> list[dict]:
  """Stylizes each content image with the net and with `steps` Gatys Adam steps.

  Returns:
    One dict per image: `{'fast': {'content', 'style', 'tv', 'seconds'},
    'gatys': {...}, 'fast_image', 'gatys_image'}`; Gatys' seconds are the
    optimisation's wall time (compilation of its step included, as a user
    waits for it), the fast net's one forward pass after compilation.
  """
  options = net.config.task.fast_style
  loss = perceptual.fast_style_loss(options, seed=net.config.seed)
  style = loss.style_images[style_index]
  mix = np.eye(len(net.styles))[style_index].tolist()
  settings = gatys_settings_of(net, steps=steps)
  rows = []
  for content, (fast_image, fast_parts) in zip(contents, stylize_and_score(net, contents, mix)):
    gatys_image, history = gatys.stylize(loss.network, content, [style], settings=settings, progress=progress)
    final = history[-1]
    rows.append({'fast': fast_parts, 'fast_image': fast_image, 'gatys_image': gatys_image,
                 'gatys': {key: final[key] for key in ('content', 'style', 'tv', 'seconds')}})
  return rows


def compare_adain_with_gatys(net: AdaINNet, contents: Sequence[np.ndarray], style: np.ndarray, *,
                             steps: int = 200) -> list[dict]:
  """Stylizes each content image with the AdaIN net (alpha 1) and with `steps` Gatys Adam steps.

  Both results are scored with Gatys' default loss (`GatysSettings()`) on the
  AdaIN encoder's VGG weights, and with AdaIN's own mean / std style loss
  (`style_mean_std`), Huang & Belongie's protocol (their Sec. 7.1, Gatys
  optimising Gram matrices). Returns rows like `compare_with_gatys`.
  """
  settings = gatys.GatysSettings(steps=steps)
  network = load_loss_network(net.config.task.adain.features, last_layer=deepest(
      settings.content_layers + settings.style_layers), seed=net.config.seed)
  grams = gatys.blended_grams(network, [style], [1.0], settings.style_layers)
  rows = []
  for content in contents:
    adain_image, adain_parts = net.score(content, [style], [1.0])
    _, parts = gatys.make_loss(network, content, grams, settings)(adain_image[None])
    gatys_image, history = gatys.stylize(network, content, [style], settings=settings, progress=False)
    rows.append({'adain': {**{k: float(v) for k, v in parts.items()}, 'seconds': adain_parts['seconds'],
                           'style_mean_std': adain_parts['style']},
                 'adain_image': adain_image, 'gatys_image': gatys_image,
                 'gatys': {**{key: history[-1][key] for key in ('content', 'style', 'tv', 'seconds')},
                           'style_mean_std': net.loss_terms(gatys_image, content, [style], [1.0])['style']}})
  return rows


def _write_comparison(rows: list[dict], contents: Sequence[np.ndarray], method: str, title: str,
                      out_dir: str | pathlib.Path, steps: int) -> dict[str, dict[str, float]]:
  """Writes `<method>_vs_gatys.png` (content | Gatys | method) and `.json` (means); returns the means."""
  out_dir = pathlib.Path(out_dir)
  grid = image_grid([np.stack(contents), np.stack([r['gatys_image'] for r in rows]),
                     np.stack([r[f'{method}_image'] for r in rows])],
                    titles=['content', f'Gatys, {steps} Adam steps', title])
  write_image(out_dir / f'{method}_vs_gatys.png', grid.astype(np.float32) / 255.0)
  keys = [key for key in ('content', 'style', 'seconds', 'style_mean_std') if key in rows[0][method]]
  figures = {name: {key: float(np.mean([r[name][key] for r in rows])) for key in keys} for name in (method, 'gatys')}
  write_file_atomic(out_dir / f'{method}_vs_gatys.json', json.dumps(figures, indent=1) + '\n')
  return figures


def write_fast_vs_gatys(net: FastNet, contents: Sequence[np.ndarray], out_dir: str | pathlib.Path, *,
                        steps: int = 200) -> dict[str, dict[str, float]]:
  """Runs `compare_with_gatys`; writes `fast_vs_gatys.png` (content | Gatys | fast) and `.json`.

  Returns:
    `{'fast': {...}, 'gatys': {...}}`: mean content and style loss and seconds per image.
  """
  rows = compare_with_gatys(net, contents, steps=steps)
  return _write_comparison(rows, contents, 'fast', 'fast net', out_dir, steps)


def describe_figures(figures: dict, count: int, side: int, method: str = 'fast') -> str:
  """One line: style and content loss and time per image, `method` ('fast' | 'adain') vs Gatys."""
  fast, slow = figures[method], figures['gatys']
  return (f"{method} vs Gatys on {count} held-out {side}px images: style loss {fast['style']:.4g} vs "
          f"{slow['style']:.4g} ({fast['style'] / slow['style']:.2f}x), content loss {fast['content']:.3g} vs "
          f"{slow['content']:.3g}, seconds per image {fast['seconds']:.3f} vs {slow['seconds']:.1f} "
          f"({slow['seconds'] / fast['seconds']:.0f}x less)" + _mean_std_clause(fast, slow))


def _mean_std_clause(fast: dict, slow: dict) -> str:
  if 'style_mean_std' not in fast:
    return ''
  return (f"; on AdaIN's mean/std style loss {fast['style_mean_std']:.4g} vs {slow['style_mean_std']:.4g} "
          f"({fast['style_mean_std'] / slow['style_mean_std']:.2f}x)")


def write_adain_vs_gatys(net: AdaINNet, contents: Sequence[np.ndarray], style: np.ndarray,
                         out_dir: str | pathlib.Path, *, steps: int = 200) -> dict[str, dict[str, float]]:
  """Runs `compare_adain_with_gatys`; writes `adain_vs_gatys.png` (content | Gatys | AdaIN) and `.json` (means)."""
  rows = compare_adain_with_gatys(net, contents, style, steps=steps)
  return _write_comparison(rows, contents, 'adain', 'AdaIN', out_dir, steps)
