"""The work behind `cnnrecon stylize`: read, optimise, write result, side-by-side and losses per content image."""

import json
import pathlib
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from skimage import color

from cnnrecon import safety
from cnnrecon.data.grids import image_grid
from cnnrecon.data.images import read_image, style_image_path, write_image
from cnnrecon.errors import CnnreconError
from cnnrecon.io import write_file_atomic
from cnnrecon.style import adain, fast, gatys
from cnnrecon.style.loss_network import DEFAULT_FEATURES, deepest, load_loss_network

METHODS = ('gatys', 'fast', 'adain')
TRAINED_METHODS = ('fast', 'adain')  # a net trained with experiments/style_<method>.py, given by --workdir
MAX_SIZE = 2048


def parse_blend(text: str | None, count: int) -> list[float]:
  """Blend weights of `count` styles from '0.7,0.3' (default: equal); they must sum to 1."""
  if text is None:
    return [1.0 / count] * count
  weights = list(_numbers(text, '--style-weights', example='0.7,0.3'))
  if len(weights) != count:
    raise CnnreconError(f'--style-weights has {len(weights)} weights for {count} --style images: give one per style')
  if any(not np.isfinite(w) or w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
    raise CnnreconError(f'--style-weights {text} must be non-negative and sum to 1 (they sum to {sum(weights):g})')
  return weights


def _numbers(text: str | None, flag: str, *, example: str = '1,0.5') -> tuple[float, ...] | None:
  """A flag's comma-separated numbers (None when the flag is not given)."""
  if text is None:
    return None
  try:
    return tuple(float(part) for part in text.split(','))
  except ValueError:
    raise CnnreconError(f'{flag} {text!r} is not a comma-separated list of numbers, e.g. {example}') from None


def _resized(image: np.ndarray, size: int) -> np.ndarray:
  """`image` scaled so that its longer side is `size` (antialiased)."""
  scale = size / max(image.shape[:2])
  return gatys.resize_image(image, (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))))


def preserve_color(result: np.ndarray, content: np.ndarray) -> np.ndarray:
  """Keeps the content's colours: the result's luma with the content's chroma (YCbCr)."""
  luma = color.rgb2ycbcr(result)[..., :1]
  chroma = color.rgb2ycbcr(content)[..., 1:]
  return np.clip(color.ycbcr2rgb(np.concatenate([luma, chroma], axis=-1)), 0, 1).astype(np.float32)


def stylize_files(contents: Sequence[str], styles: Sequence[str], *, out: str, method: str = 'gatys',
                  workdir: str | None = None, net=None, net_source: str | None = None, size: int = 512, steps: int = 200, optimizer: str = 'adam',
                  style_weights: str | None = None, features: str = DEFAULT_FEATURES, keep_colors: bool = False,
                  init: str = 'content',
                  pyramid: int = 1, style_layers: str | None = None, style_layer_weights: str | None = None,
                  gram: str = 'johnson', alpha: float = 1.0, overwrite: bool = False,
                  progress: bool = True) -> list[pathlib.Path]:
  """Stylises every content image with the blended `styles`; writes three files per content image.

  `<out>/<stem>.png` (the result), `<stem>_side_by_side.png` (content | style |
  result) and `<stem>_losses.json` (content, style, TV, total, seconds per
  step). Every input is read and every output name checked before any work.
  `init` starts from the content, the (first) style or noise; `pyramid` > 1
  optimises coarse to fine over that many scales (`gatys.stylize_pyramid`).
  `method` 'fast' and 'adain' run the net trained in `workdir`, or `net` (an
  export loaded by `cnnrecon.style.exported.load_style_net` from
  `net_source`); `alpha`
  (adain) trades the style's features for the content's own (0 = content only).

  Returns:
    The result PNG paths.
  """
  if method not in METHODS:
    raise CnnreconError(f'unknown --method {method!r}: use {", ".join(METHODS)}')
  if not 0 < size <= MAX_SIZE:
    raise CnnreconError(f'--size {size} must be between 1 and {MAX_SIZE} pixels (the longer side)')
  if method in TRAINED_METHODS and (workdir is None) == (net is None):
    raise CnnreconError(f'--method {method} needs --workdir (a workdir trained with '
                        f'experiments/style_{method}.py) or --exported (its export), one of them')
  if method not in TRAINED_METHODS and (workdir is not None or net is not None):
    raise CnnreconError(f'--workdir and --exported are only for --method fast or adain (a trained net), not {method}')
  if not 0 <= alpha <= 1:
    raise CnnreconError(f'--alpha {alpha} must be between 0 (the content\'s own features) and 1 (full style)')
  if alpha != 1 and method != 'adain':
    raise CnnreconError(f'--alpha is only for --method adain, not {method}: leave it out')
  if method in ('gatys', 'adain') and not styles:
    raise CnnreconError(f'--method {method} needs at least one --style image')
  out_dir = pathlib.Path(out)
  outputs = [safety.output_paths(contents, out_dir, suffix=suffix, overwrite=overwrite, also_inputs=styles)
             for suffix in ('.png', '_side_by_side.png', '_losses.json')]
  if method == 'fast':
    return _stylize_fast(contents, styles, net or fast.load_fast_net(workdir), outputs, size=size,
                         style_weights=style_weights, keep_colors=keep_colors, source=str(workdir or net_source))
  if method == 'adain':
    return _stylize_adain(contents, styles, net or adain.load_adain_net(workdir), outputs, size=size,
                          style_weights=style_weights, alpha=alpha, keep_colors=keep_colors,
                          source=str(workdir or net_source))
  blend = parse_blend(style_weights, len(styles))
  content_images = [_resized(read_image(path, channels=3), size) for path in contents]
  style_images = [_resized(read_image(path, channels=3), size) for path in styles]
  layers = tuple(style_layers.split(',')) if style_layers else gatys.STYLE_LAYERS
  settings = gatys.GatysSettings(steps=steps, optimizer=optimizer, init=init, style_layers=layers,
                                 style_layer_weights=_numbers(style_layer_weights, '--style-layer-weights'),
                                 gram_normalisation=gram, learning_rate=1.0 if optimizer == 'lbfgs' else 0.02)
  if pyramid < 1:
    raise CnnreconError(f'--pyramid {pyramid} must be >= 1 (1 = no pyramid)')
  network = load_loss_network(features, last_layer=deepest(settings.content_layers + settings.style_layers))
  print(f'features: {network.description}')
  written = []
  for content, result_path, side_path, losses_path in zip(content_images, *outputs):
    result, history = gatys.stylize_pyramid(network, content, style_images, levels=pyramid, blend=blend,
                                            settings=settings, progress=progress)
    if keep_colors:
      result = preserve_color(result, content)
    write_image(result_path, result)
    write_image(side_path, _side_by_side(content, style_images[0], result))
    write_file_atomic(losses_path, json.dumps({'method': method, 'features': network.description,
                                               'optimizer': optimizer, 'steps': history}, indent=1) + '\n')
    print(result_path)
    written.append(result_path)
  return written


def _side_by_side(content: np.ndarray, style: np.ndarray, result: np.ndarray) -> np.ndarray:
  """content | style (resized to the content's shape) | result, as a float image."""
  style_shown = np.asarray(jax.image.resize(jnp.asarray(style), content.shape, 'bilinear')).clip(0, 1)
  side = image_grid([content[None], style_shown[None], result[None]], titles=['content', 'style', 'result'])
  return side.astype(np.float32) / 255.0


def _stylize_fast(contents: Sequence[str], styles: Sequence[str], net, outputs, *, size: int,
                  style_weights: str | None, keep_colors: bool, source: str) -> list[pathlib.Path]:
  """`--method fast`: one forward pass of the transform net (`FastNet` or an export) per content image."""
  styles = list(styles) or [net.styles[0]]
  mix = fast.style_mix_for(net, styles, parse_blend(style_weights, len(styles)))
  content_images = [_resized(read_image(path, channels=3), size) for path in contents]
  style_shown = read_image(style_image_path(net.styles[int(np.argmax(mix))]), channels=3)
  print(f'fast net: {source} (step {net.step}), trained styles {", ".join(net.styles)}; mix {mix}')
  scored = (fast.stylize_and_score(net, content_images, mix) if isinstance(net, fast.FastNet) else
            fast.stylize_timed(net, content_images, mix))  # an export has no loss network to score with
  written = []
  for content, (result, parts), result_path, side_path, losses_path in zip(content_images, scored, *outputs):
    if keep_colors:
      result = preserve_color(result, content)
    write_image(result_path, result)
    write_image(side_path, _side_by_side(content, style_shown, result))
    write_file_atomic(losses_path, json.dumps({'method': 'fast', 'source': source, 'step': net.step,
                                               'styles': list(net.styles), 'style_mix': mix, **parts},
                                              indent=1) + '\n')
    print(result_path)
    written.append(result_path)
  return written


def _stylize_adain(contents: Sequence[str], styles: Sequence[str], net, outputs, *, size: int,
                   style_weights: str | None, alpha: float, keep_colors: bool, source: str) -> list[pathlib.Path]:
  """`--method adain`: the decoder (`AdaINNet` or an export) on AdaIN of each content image and (any) styles."""
  blend = parse_blend(style_weights, len(styles))
  content_images = [_resized(read_image(path, channels=3), size) for path in contents]
  style_images = [_resized(read_image(style_image_path(style), channels=3), size) for style in styles]
  print(f'adain decoder: {source} (step {net.step}); styles {", ".join(styles)}; weights {blend}; alpha {alpha}')
  written = []
  for content, result_path, side_path, losses_path in zip(content_images, *outputs):
    result, parts = net.score(content, style_images, blend, alpha)
    if keep_colors:
      result = preserve_color(result, content)
    write_image(result_path, result)
    write_image(side_path, _side_by_side(content, style_images[int(np.argmax(blend))], result))
    write_file_atomic(losses_path, json.dumps({'method': 'adain', 'source': source, 'step': net.step,
                                               'styles': list(styles), 'style_weights': blend, 'alpha': alpha,
                                               **parts}, indent=1) + '\n')
    print(result_path)
    written.append(result_path)
  return written
