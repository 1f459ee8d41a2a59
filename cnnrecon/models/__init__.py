"""cnnrecon.models: flax.linen reconstruction networks and their registry."""

from cnnrecon.models.dncnn import DnCNN
from cnnrecon.models.registry import MODELS, build_model
from cnnrecon.models.seed_stack import ConvPoolAutoencoder, SeedStack
from cnnrecon.models.unet import UNet

__all__ = ['ConvPoolAutoencoder', 'DnCNN', 'MODELS', 'SeedStack', 'UNet', 'build_model']
