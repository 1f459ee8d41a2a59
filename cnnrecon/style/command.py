"""The work behind `cnnrecon stylize`: read, stylize (Gatys, fast or AdaIN), write result, side-by-side and losses.

Its settings are a ConfigDict (`stylize_config`) like training's: the command's flags and
`--config.KEY=VALUE` overrides set it.
"""

import json
import pathlib
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_dict
import numpy as np
from skimage import color

from cnnrecon import safety
from cnnrecon.data.grids import image_grid
from cnnrecon.data.images import read_image, style_image_path, write_image
from cnnrecon.errors import CnnreconError
from cnnrecon.io import write_file_atomic
from cnnrecon.style import adain, fast, gatys
from cnnrecon.style.loss_network import DEFAULT_FEATURES, deepest, load_loss_network
from cnnrecon.style.perceptual import GATYS_DEFAULTS

METHODS = ('gatys', 'fast', 'adain')
TRAINED_METHODS = ('fast', 'adain')  # a net trained with experiments/style_<method>.py, given by --workdir
MAX_SIZE = 2048
# Each trained net's side rule, as its export states it (`multiple`, `min_side`): stylize pads images to
# the multiple, and padded sides must be at least min_side, from a workdir as from an export. Then why.
NET_SIDES = {
    'fast': (fast.SIDE_MULTIPLE, fast.MIN_SIDE, 'the reflection padding of its convolutions after two stride-2 '
                                                'ones needs that'),
    'adain': (adain.UPSAMPLING, adain.MIN_SIDE, f'its encoder works at 1/{adain.UPSAMPLING} of the image, where '
                                                'reflection padding needs 2 px'),
}


def stylize_config() -> ml_collections.ConfigDict:
  """Every setting of `cnnrecon stylize`, with its default: its flags and `--config.KEY=VALUE` set them.

  `method`: gatys (optimise each image), fast or adain (a trained net); `size`: the longer side of
  the results; `style_weights`: one blend weight per style (empty: equal); `alpha` (adain): the style
  strength. Gatys' optimisation: `steps` per pyramid level, `optimizer` (adam | lbfgs) and its
  `learning_rate` (None: 0.02 for Adam, 1.0 for L-BFGS), `init` (content | style | noise),
  `pyramid` levels, the loss network `features`, the Gram normalisation `gram` (johnson | gatys),
  and the loss's weights and layers (`perceptual.GATYS_DEFAULTS`; `style_layer_weights` empty: all 1).
  """
  return ml_collections.ConfigDict({
      'method': 'gatys', 'size': 512, 'style_weights': (), 'preserve_color': False, 'alpha': 1.0,
      'steps': 200, 'optimizer': 'adam', 'learning_rate': config_dict.placeholder(float), 'init': 'content',
      'pyramid': 1, 'features': DEFAULT_FEATURES, 'gram': 'johnson', 'style_layer_weights': (), 'seed': 0,
      **GATYS_DEFAULTS,
  })


def parse_numbers(text: str, flag: str, *, example: str = '1,0.5') -> tuple[float, ...]:
  """A flag's comma-separated numbers, e.g. '0.7,0.3'."""
  try:
    return tuple(float(part) for part in text.split(','))
  except ValueError:
    raise CnnreconError(f'{flag} {text!r} is not a comma-separated list of numbers, e.g. {example}') from None


def blend_weights(weights: Sequence[float], count: int) -> list[float]:
  """The blend weights of `count` styles (`config.style_weights`; empty: equal); they must sum to 1."""
  if not weights:
    return [1.0 / count] * count
  weights = [float(weight) for weight in weights]
  if len(weights) != count:
    raise CnnreconError(f'--style-weights has {len(weights)} weights for {count} --style images: give one per style')
  if any(not np.isfinite(w) or w < 0 for w in weights) or abs(sum(weights) - 1.0) > 1e-6:
    raise CnnreconError(f'--style-weights {",".join(f"{w:g}" for w in weights)} must be non-negative and sum to 1 '
                        f'(they sum to {sum(weights):g})')
  return weights


def _resized_shape(shape: Sequence[int], size: int) -> tuple[int, int]:
  """(height, width) of an image of `shape` scaled so that its longer side is `size`."""
  scale = size / max(shape[:2])
  return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _resized(image: np.ndarray, size: int) -> np.ndarray:
  """`image` scaled so that its longer side is `size` (antialiased)."""
  return gatys.resize_image(image, _resized_shape(image.shape, size))


def _read_for_net(paths: Sequence[str | pathlib.Path], size: int, method: str) -> list[np.ndarray]:
  """RGB images at --size for a trained net, after checking that it takes them (`NET_SIDES`, as its export).

  Raises:
    CnnreconError: --size makes an image's shorter side smaller than the net takes (the line says
      which --size fits it).
  """
  multiple, min_side, why = NET_SIDES[method]
  smallest = min_side - multiple + 1  # the smallest side that padding to `multiple` makes `min_side`
  images = [read_image(path, channels=3) for path in paths]
  for path, image in zip(paths, images):
    height, width = _resized_shape(image.shape, size)
    if min(height, width) < smallest:
      fits = next((larger for larger in range(size + 1, MAX_SIZE + 1)
                   if min(_resized_shape(image.shape, larger)) >= smallest), None)
      fix = f'pass --size {fits} or more' if fits else 'crop it to a less elongated shape'
      raise CnnreconError(f'--size {size} makes {path} {height}x{width} px, but the {method} net needs sides of at '
                          f'least {smallest} px (padded to a multiple of {multiple}, at least {min_side} px: {why}): '
                          f'{fix}')
  return [_resized(image, size) for image in images]


def preserve_color(result: np.ndarray, content: np.ndarray) -> np.ndarray:
  """Keeps the content's colours: the result's luma with the content's chroma (YCbCr)."""
  luma = color.rgb2ycbcr(result)[..., :1]
  chroma = color.rgb2ycbcr(content)[..., 1:]
  return np.clip(color.ycbcr2rgb(np.concatenate([luma, chroma], axis=-1)), 0, 1).astype(np.float32)


def _check(config: ml_collections.ConfigDict, styles: Sequence[str], *, trained: bool) -> None:
  """One-line errors for settings that do not fit together, before any work."""
  method = config.method
  if method not in METHODS:
    raise CnnreconError(f'unknown --method {method!r}: use {", ".join(METHODS)}')
  if not 0 < config.size <= MAX_SIZE:
    raise CnnreconError(f'--size {config.size} must be between 1 and {MAX_SIZE} pixels (the longer side)')
  if method in TRAINED_METHODS and not trained:
    raise CnnreconError(f'--method {method} needs --workdir (a workdir trained with '
                        f'experiments/style_{method}.py) or --exported (its export), one of them')
  if method not in TRAINED_METHODS and trained:
    raise CnnreconError(f'--workdir and --exported are only for --method fast or adain (a trained net), not {method}')
  if not 0 <= config.alpha <= 1:
    raise CnnreconError(f'--alpha {config.alpha} must be between 0 (the content\'s own features) and 1 (full style)')
  if config.alpha != 1 and method != 'adain':
    raise CnnreconError(f'--alpha is only for --method adain, not {method}: leave it out')
  if method in ('gatys', 'adain') and not styles:
    raise CnnreconError(f'--method {method} needs at least one --style image')
  if config.pyramid < 1:
    raise CnnreconError(f'--pyramid {config.pyramid} must be >= 1 (1 = no pyramid)')


def gatys_settings(config: ml_collections.ConfigDict) -> gatys.GatysSettings:
  """The optimisation `config` describes."""
  learning_rate = config.learning_rate or (1.0 if config.optimizer == 'lbfgs' else 0.02)
  return gatys.GatysSettings(
      content_weight=float(config.content_weight), style_weight=float(config.style_weight),
      tv_weight=float(config.tv_weight), content_layers=tuple(config.content_layers),
      style_layers=tuple(config.style_layers), style_layer_weights=tuple(config.style_layer_weights) or None,
      gram_normalisation=config.gram, optimizer=config.optimizer, learning_rate=learning_rate, steps=config.steps,
      init=config.init, seed=config.seed)


def _legacy_settings(config: ml_collections.ConfigDict, settings: dict) -> ml_collections.ConfigDict:
  """The previous release's keyword arguments (`method=`, `size=`, `keep_colors=`, ...) as config keys."""
  print('cnnrecon: deprecated: stylize_files(..., method=..., size=..., ...) is now stylize_files(contents, styles, '
        'config) with config = stylize_config(); the keyword form stops working in the next release', file=sys.stderr)
  config = config.copy_and_resolve_references()
  for key, value in settings.items():
    if value is None:
      continue
    if key == 'keep_colors':
      key = 'preserve_color'
    elif key in ('style_weights', 'style_layer_weights') and isinstance(value, str):
      value = parse_numbers(value, f'--{key.replace("_", "-")}')
    elif key == 'style_layers' and isinstance(value, str):
      value = tuple(value.split(','))
    if key not in config:
      raise TypeError(f'stylize_files() got an unexpected keyword argument {key!r}')
    config[key] = value
  return config


def _check_distinct(outputs: Sequence[Sequence[pathlib.Path]]) -> None:
  """Refuses two outputs of one path (content `c_side_by_side.png` next to `c.png`), which would lose one."""
  seen = set()
  for path in (path for group in outputs for path in group):
    if path in seen:
      raise CnnreconError(f'two results would be written to {path} (a content image is named like another one\'s '
                          'side-by-side or losses file): rename that content image, or stylize it on its own')
    seen.add(path)


def stylize_files(contents: Sequence[str], styles: Sequence[str], config: ml_collections.ConfigDict | None = None,
                  *, out: str, workdir: str | None = None, net=None, net_source: str | None = None,
                  overwrite: bool = False, progress: bool = True, **legacy_settings) -> list[pathlib.Path]:
  """Stylises every content image with the blended `styles`; writes three files per content image.

  `<out>/<stem>.png` (the result), `<stem>_side_by_side.png` (content | style |
  result) and `<stem>_losses.json` (content, style, TV, total, seconds per
  step). Every input is read and every output name checked before any work.
  Styles are image files or the names of the shipped paintings.

  Args:
    contents: content image files.
    styles: style images (or painting names); for --method fast, trained styles' names.
    config: the settings (`stylize_config()`, default as it is).
    out: the output folder.
    workdir: for methods fast and adain, the trained net's workdir ...
    net: ... or its export, loaded by `cnnrecon.style.exported.load_style_net` from `net_source`.
    overwrite: replace results already in `out`.
    progress: show a progress bar.
    **legacy_settings: the previous release's keyword form of the settings (`method='fast'`, `size=256`);
      they still work, with one `deprecated:` line.

  Returns:
    The result PNG paths.
  """
  config = config if config is not None else stylize_config()
  if legacy_settings:
    config = _legacy_settings(config, legacy_settings)
  _check(config, styles, trained=workdir is not None or net is not None)
  if workdir is not None and net is not None:
    raise CnnreconError('give the net as --workdir or --exported, not both')
  out_dir = pathlib.Path(out)
  outputs = [safety.output_paths(contents, out_dir, suffix=suffix, overwrite=overwrite,
                                 also_inputs=[style_image_path(style) for style in styles])
             for suffix in ('.png', '_side_by_side.png', '_losses.json')]
  _check_distinct(outputs)
  if config.method == 'fast':
    return _stylize_fast(contents, styles, net or fast.load_fast_net(workdir), outputs, config,
                         source=str(workdir or net_source))
  if config.method == 'adain':
    return _stylize_adain(contents, styles, net or adain.load_adain_net(workdir), outputs, config,
                          source=str(workdir or net_source))
  return _stylize_gatys(contents, styles, outputs, config, progress=progress)


def _stylize_gatys(contents: Sequence[str], styles: Sequence[str], outputs, config: ml_collections.ConfigDict, *,
                   progress: bool) -> list[pathlib.Path]:
  """`--method gatys`: optimise each content image against the blended styles."""
  blend = blend_weights(config.style_weights, len(styles))
  content_images = [_resized(read_image(path, channels=3), config.size) for path in contents]
  style_images = [_resized(read_image(style_image_path(style), channels=3), config.size) for style in styles]
  settings = gatys_settings(config)
  network = load_loss_network(config.features, last_layer=deepest(settings.content_layers + settings.style_layers))
  print(f'features: {network.description}')
  written = []
  for content, result_path, side_path, losses_path in zip(content_images, *outputs):
    result, history = gatys.stylize_pyramid(network, content, style_images, levels=config.pyramid, blend=blend,
                                            settings=settings, progress=progress)
    if config.preserve_color:
      result = preserve_color(result, content)
    write_image(result_path, result)
    write_image(side_path, _side_by_side(content, style_images[0], result))
    write_file_atomic(losses_path, json.dumps({'method': 'gatys', 'features': network.description,
                                               'optimizer': config.optimizer, 'steps': history}, indent=1) + '\n')
    print(result_path)
    written.append(result_path)
  return written


def _side_by_side(content: np.ndarray, style: np.ndarray, result: np.ndarray) -> np.ndarray:
  """content | style (resized to the content's shape) | result, as a float image."""
  style_shown = np.asarray(jax.image.resize(jnp.asarray(style), content.shape, 'bilinear')).clip(0, 1)
  side = image_grid([content[None], style_shown[None], result[None]], titles=['content', 'style', 'result'])
  return side.astype(np.float32) / 255.0


def _stylize_fast(contents: Sequence[str], styles: Sequence[str], net, outputs, config: ml_collections.ConfigDict, *,
                  source: str) -> list[pathlib.Path]:
  """`--method fast`: one forward pass of the transform net (`FastNet` or an export) per content image."""
  styles = list(styles) or [net.styles[0]]
  mix = fast.style_mix_for(net, styles, blend_weights(config.style_weights, len(styles)))
  content_images = _read_for_net(contents, config.size, 'fast')
  style_shown = read_image(style_image_path(net.styles[int(np.argmax(mix))]), channels=3)
  print(f'fast net: {source} (step {net.step}), trained styles {", ".join(net.styles)}; mix {mix}')
  scored = (fast.stylize_and_score(net, content_images, mix) if isinstance(net, fast.FastNet) else
            fast.stylize_timed(net, content_images, mix))  # an export has no loss network to score with
  written = []
  for content, (result, parts), result_path, side_path, losses_path in zip(content_images, scored, *outputs):
    if config.preserve_color:
      result = preserve_color(result, content)
    write_image(result_path, result)
    write_image(side_path, _side_by_side(content, style_shown, result))
    write_file_atomic(losses_path, json.dumps({'method': 'fast', 'source': source, 'step': net.step,
                                               'styles': list(net.styles), 'style_mix': mix, **parts},
                                              indent=1) + '\n')
    print(result_path)
    written.append(result_path)
  return written


def _stylize_adain(contents: Sequence[str], styles: Sequence[str], net, outputs, config: ml_collections.ConfigDict, *,
                   source: str) -> list[pathlib.Path]:
  """`--method adain`: the decoder (`AdaINNet` or an export) on AdaIN of each content image and (any) styles."""
  blend, alpha = blend_weights(config.style_weights, len(styles)), config.alpha
  content_images = _read_for_net(contents, config.size, 'adain')
  style_images = _read_for_net([style_image_path(style) for style in styles], config.size, 'adain')
  print(f'adain decoder: {source} (step {net.step}); styles {", ".join(styles)}; weights {blend}; alpha {alpha}')
  written = []
  for content, result_path, side_path, losses_path in zip(content_images, *outputs):
    result, parts = net.score(content, style_images, blend, alpha)
    if config.preserve_color:
      result = preserve_color(result, content)
    write_image(result_path, result)
    write_image(side_path, _side_by_side(content, style_images[int(np.argmax(blend))], result))
    write_file_atomic(losses_path, json.dumps({'method': 'adain', 'source': source, 'step': net.step,
                                               'styles': list(styles), 'style_weights': blend, 'alpha': alpha,
                                               **parts}, indent=1) + '\n')
    print(result_path)
    written.append(result_path)
  return written
