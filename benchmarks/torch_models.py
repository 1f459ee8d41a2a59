"""The benchmarked networks in PyTorch, layer for layer the same as cnnrecon's.

Only `make bench` uses this file: it is the reference the ratios are taken
against, so each network mirrors its flax module in `cnnrecon/models/`
(same convs, BatchNorm placement, pooling, upsampling and residual output).
"""

import numpy as np
import torch
from torch import nn
from torch.nn import functional


class DnCNN(nn.Module):
  """cnnrecon.models.DnCNN: conv+ReLU, (depth-2) x [conv+BN+ReLU], conv; x - noise."""

  def __init__(self, depth: int, features: int, channels: int = 1, space_to_depth: int = 1):
    super().__init__()
    self.factor = space_to_depth
    inner = channels * space_to_depth**2
    layers = [nn.Conv2d(inner, features, 3, padding=1), nn.ReLU(inplace=True)]
    for _ in range(depth - 2):
      layers += [nn.Conv2d(features, features, 3, padding=1, bias=False),
                 nn.BatchNorm2d(features, momentum=0.1), nn.ReLU(inplace=True)]
    layers.append(nn.Conv2d(features, inner, 3, padding=1))
    self.body = nn.Sequential(*layers)

  def forward(self, x):
    y = functional.pixel_unshuffle(x, self.factor) if self.factor > 1 else x
    noise = self.body(y)
    if self.factor > 1:
      noise = functional.pixel_shuffle(noise, self.factor)
    return x - noise


def _conv_block(in_features: int, features: int) -> nn.Sequential:
  """cnnrecon.models.unet.ConvBlock: 2 x [3x3 conv (no bias) -> BN -> ReLU]."""
  layers = []
  for index in range(2):
    layers += [nn.Conv2d(in_features if index == 0 else features, features, 3, padding=1, bias=False),
               nn.BatchNorm2d(features), nn.ReLU(inplace=True)]
  return nn.Sequential(*layers)


class UNet(nn.Module):
  """cnnrecon.models.UNet: max-pool encoder, 2x2 transposed-conv decoder, skips, residual output."""

  def __init__(self, depth: int, features: int, channels: int = 1):
    super().__init__()
    width = [features * 2**level for level in range(depth + 1)]
    self.down = nn.ModuleList(_conv_block(channels if level == 0 else width[level - 1], width[level])
                              for level in range(depth))
    self.bottom = _conv_block(width[depth - 1], width[depth])
    self.upsample = nn.ModuleList(nn.ConvTranspose2d(width[level + 1], width[level], 2, stride=2)
                                  for level in range(depth))
    self.up = nn.ModuleList(_conv_block(2 * width[level], width[level]) for level in range(depth))
    self.out = nn.Conv2d(width[0], channels, 1)

  def forward(self, x):
    y, skips = x, []
    for block in self.down:
      y = block(y)
      skips.append(y)
      y = functional.max_pool2d(y, 2)
    y = self.bottom(y)
    for level in reversed(range(len(self.up))):
      y = self.upsample[level](y)
      y = self.up[level](torch.cat([y, skips[level]], dim=1))
    return x + self.out(y)


def build(model_config, channels: int) -> nn.Module:
  """The PyTorch twin of `cnnrecon.models.registry.build_model(model_config)`."""
  if model_config.name == 'dncnn':
    return DnCNN(model_config.depth, model_config.features, channels, model_config.dncnn.space_to_depth)
  if model_config.name == 'unet':
    return UNet(model_config.depth, model_config.features, channels)
  raise ValueError(f'no PyTorch twin for model {model_config.name!r}')


class VGGFeatures(nn.Module):
  """VGG-16 up to relu5_1 with average pooling and torchvision preprocessing, from cnnrecon's HWIO params."""

  def __init__(self, params):
    super().__init__()
    import torch
    self.names, self.layers = [], nn.ModuleList()
    for block, convs in enumerate((2, 2, 3, 3, 3), start=1):
      for conv in range(1, convs + 1):
        name = f'conv{block}_{conv}'
        kernel = torch.from_numpy(np.array(params[name]['kernel'])).permute(3, 2, 0, 1)
        layer = nn.Conv2d(kernel.shape[1], kernel.shape[0], 3, padding=1)
        layer.weight.data.copy_(kernel)
        layer.bias.data.copy_(torch.from_numpy(np.array(params[name]['bias'])))
        self.layers.append(layer)
        self.names.append(f'relu{block}_{conv}')
        if name == 'conv5_1':
          break
    self.register_buffer('mean', torch.tensor([0.485, 0.456, 0.406])[:, None, None])
    self.register_buffer('std', torch.tensor([0.229, 0.224, 0.225])[:, None, None])

  def forward(self, x):
    x = (x - self.mean) / self.std
    features = {}
    for index, (name, layer) in enumerate(zip(self.names, self.layers)):
      x = functional.relu(layer(x))
      features[name] = x
      if index + 1 < len(self.names) and self.names[index + 1].endswith('_1'):
        x = functional.avg_pool2d(x, 2)
    return features


def gram(features):
  """Johnson-normalised Gram matrices [B, C, C] of NCHW features."""
  batch, channels, height, width = features.shape
  flat = features.reshape(batch, channels, height * width)
  return flat @ flat.transpose(1, 2) / (channels * height * width)
