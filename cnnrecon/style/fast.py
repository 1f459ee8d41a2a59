"""Stylizing with a trained fast (feed-forward) net: one forward pass per image, trained styles blendable.

Training is the shared one (`cnnrecon train --config experiments/style_fast.py`):
task `fast_style` (`cnnrecon.style.tasks`) with the `transform_net` model.
"""

import dataclasses
import functools
import pathlib
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import compiler
from cnnrecon.errors import CnnreconError
from cnnrecon.inference import load_trained
from cnnrecon.models.registry import build_model
from cnnrecon.style import perceptual

SIDE_MULTIPLE = 4  # two stride-2 convs, then two x2 upsamplings
# Reflection padding of the 9x9 first conv and of the 3x3 convs after two stride-2 convs needs sides of at
# least 2 * SIDE_MULTIPLE: the one rule for its images, in stylize (workdir or export) and in the export.
MIN_SIDE = 2 * SIDE_MULTIPLE


@dataclasses.dataclass(frozen=True)
class FastNet:
  """A trained transform net, its config and the styles it learned (in training order)."""

  config: ml_collections.ConfigDict
  variables: dict
  step: int

  @property
  def styles(self) -> tuple[str, ...]:
    """The style images (paths or shipped painting names) the net was trained on."""
    return tuple(self.config.task.fast_style.styles)

  @functools.cached_property
  def _apply(self):
    model = build_model(self.config.model, channels=3)
    return compiler.jit(lambda variables, images, mix: model.apply(variables, {'image': images, 'style': mix}),
                        cpu_conv=self.config.compile.cpu_conv)

  @functools.cached_property
  def scorer(self):
    """`(parts(estimate, content, mix, frozen) -> {'content', 'style', 'tv'}, frozen)`: the training loss's terms."""
    loss = perceptual.fast_style_loss(self.config.task.fast_style, seed=self.config.seed)
    return jax.jit(loss.parts), loss.init_frozen()

  def __call__(self, image: np.ndarray, style_mix: Sequence[float]) -> np.ndarray:
    """Stylizes one RGB image [H, W, 3] in [0, 1] with a mix of the trained styles (weights sum to 1)."""
    height, width = image.shape[:2]
    padded = reflect_pad_to_multiple(image, SIDE_MULTIPLE)
    mix = jnp.asarray([style_mix], jnp.float32)
    return np.asarray(self._apply(self.variables, padded, mix))[0, :height, :width]


def reflect_pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
  """`image` [H, W, C] reflect-padded at the bottom and right to sides divisible by `multiple`, as [1, H', W', C].

  (The models' `common.pad_to_multiple` pads a batch inside the net and crops back there.)
  """
  height, width = image.shape[:2]
  pad = [(0, -height % multiple), (0, -width % multiple), (0, 0)]
  return np.pad(image, pad, mode='reflect')[None].astype(np.float32)


def load_style_workdir(workdir: str | pathlib.Path, *, task: str, method: str, experiment: str):
  """The best (lowest validation loss, else latest) net of a workdir, which must be trained for `task`.

  Raises:
    CnnreconError: no checkpoint, or a workdir trained for another task.
  """
  model = load_trained(workdir)
  if model.config.task.name != task:
    raise CnnreconError(f'{workdir} was trained for task {model.config.task.name!r}, not {method}: pass a '
                        f'workdir trained with experiments/{experiment}.py, or use --method gatys')
  return model


def load_fast_net(workdir: str | pathlib.Path) -> FastNet:
  """The best (lowest validation loss, else latest) transform net of a workdir trained for `fast_style`."""
  return load_style_workdir(workdir, task='fast_style', method='fast style transfer', experiment='style_fast')


def style_mix_for(net: FastNet, styles: Sequence[str], blend: Sequence[float]) -> list[float]:
  """The [styles] mix that gives each of `styles` (trained style names) its blend weight."""
  trained = [pathlib.Path(name).stem for name in net.styles]
  mix = [0.0] * len(trained)
  for style, weight in zip(styles, blend):
    name = pathlib.Path(style).stem
    if name not in trained:
      raise CnnreconError(f'--style {style!r} is not one of the styles this net was trained on '
                          f'({", ".join(trained)}): pick from those, or use --method gatys for a new style')
    mix[trained.index(name)] += weight
  return mix


def stylize_and_score(net: FastNet, contents: Sequence[np.ndarray], style_mix: Sequence[float]
                      ) -> list[tuple[np.ndarray, dict[str, float]]]:
  """Stylizes each content image and scores it with the net's own training loss.

  Returns:
    `(result, {'content', 'style', 'tv', 'seconds'})` per image; `seconds` is
    the forward pass alone (after a first compiled call of that shape).
  """
  parts_of, frozen = net.scorer
  mix = jnp.asarray([style_mix], jnp.float32)
  scored = []
  for content in contents:
    net(content, style_mix)  # compile for this shape
    started = time.perf_counter()
    result = net(content, style_mix)
    seconds = time.perf_counter() - started
    parts = parts_of(jnp.asarray(result[None]), jnp.asarray(content[None], jnp.float32), mix, frozen)
    scored.append((result, {**{k: float(v) for k, v in parts.items()}, 'seconds': seconds}))
  return scored


def stylize_timed(net, contents: Sequence[np.ndarray], style_mix: Sequence[float]
                  ) -> list[tuple[np.ndarray, dict[str, float]]]:
  """`(result, {'seconds'})` per content image, for a net without a loss to score with (an export)."""
  timed = []
  for content in contents:
    net(content, style_mix)  # compile for this shape
    started = time.perf_counter()
    result = net(content, style_mix)
    timed.append((result, {'seconds': time.perf_counter() - started}))
  return timed
