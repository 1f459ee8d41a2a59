"""cnnrecon: convolutional networks that reconstruct and synthesize images, in JAX/Flax."""

from cnnrecon.version import __version__


def load_model(directory):
  """Loads a `cnnrecon export --format params` directory (no orbax needed) as an in-memory model.

  Returns the model the task's class makes (`Task.inference_model`): a
  `TrainedModel` (call it on NHWC model inputs in [0, 1]) for reconstruction
  tasks, a `FastNet` or `AdaINNet` for style tasks.
  """
  from cnnrecon.inference import load_model as load_params  # pylint: disable=import-outside-toplevel
  return load_params(directory)
