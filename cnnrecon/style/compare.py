"""A trained fast net against Gatys optimisation on the same images, loss and loss network.

Both minimise the same objective (`train.perceptual.GramPerceptualLoss`, with
the fast net's own weights, layers, VGG and style targets); the comparison
reports each method's style and content loss and seconds per image.
"""

from typing import Sequence

import numpy as np

from cnnrecon.style import gatys
from cnnrecon.style.fast import FastNet, stylize_and_score
from cnnrecon.train import perceptual


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
