"""cnnrecon.ops: forward operators (how a clean image is observed)."""

from cnnrecon.ops.base import ForwardOperator, observe_batch
from cnnrecon.ops.masks import RandomPixelMask
from cnnrecon.ops.noise import GaussianNoise, PoissonGaussianNoise, PoissonNoise

__all__ = ['ForwardOperator', 'observe_batch', 'GaussianNoise', 'PoissonNoise', 'PoissonGaussianNoise',
           'RandomPixelMask']
