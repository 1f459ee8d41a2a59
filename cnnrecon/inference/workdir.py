"""A trained model from a workdir's checkpoint, as its task's class makes it."""

import pathlib
from typing import Any

from cnnrecon.config import config_from_dict
from cnnrecon.tasks import task_class
from cnnrecon.train import checkpoint


def load_trained(workdir: str | pathlib.Path, *, step: int | str | None = None) -> Any:
  """Restores the best (else latest) checkpoint of a workdir for inference.

  Args:
    workdir: a directory written by `cnnrecon train` (or a weights import).
    step: 'latest' or a step number instead of the best one.

  Returns:
    The task's model (`Task.inference_model`: a `TrainedModel` for
    reconstruction, a `FastNet` or `AdaINNet` for style); its config has
    today's key names (old ones upgraded).
  """
  step, saved, variables = checkpoint.load_variables(workdir, step=step)
  config = config_from_dict(saved)
  return task_class(config).inference_model(config, variables, step)
