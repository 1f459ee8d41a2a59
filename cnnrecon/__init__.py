"""cnnrecon: convolutional networks that reconstruct and synthesize images, in JAX/Flax."""

__version__ = "0.1.0"


def load_model(directory):
  """Loads a `cnnrecon export --format params` directory (no orbax needed) as an in-memory model.

  Returns a `TrainedModel` (call it on NHWC observations in [0, 1]) for
  reconstruction tasks, a `FastNet` or `AdaINNet` for style tasks.
  """
  from cnnrecon.export.params import load_model as load_params  # pylint: disable=import-outside-toplevel
  return load_params(directory)
