"""cnnrecon: convolutional networks that reconstruct and synthesize images, in JAX/Flax."""

__version__ = "0.1.0"
