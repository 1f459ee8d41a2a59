"""What an exported model computes: its task's `Signature`, and the symbolic shapes `jax.export` lowers it at.

The task decides the function and its inputs (`Task.export_signature`): a
reconstruction net maps observations to estimates (the task's initial
estimate, then the model); a fast style net maps content images and a mix of
its trained styles to stylizations; an AdaIN net maps a content image, a style
image and the style strength alpha to a stylization. Here they become
argument specs with a symbolic batch `b` and symbolic image sides.
"""

import pathlib
from typing import Any

import jax
import jax.numpy as jnp

from cnnrecon.inference import load_trained
from cnnrecon.tasks import Signature, task_class


def dimension_names(signature: Signature) -> list[str]:
  """The symbolic dimensions: the batch `b`, then `h`, `w` (`style_h`, `style_w`, ...) per image input."""
  prefixes = [item.prefix for item in signature.inputs if item.kind == 'image']
  return ['b'] + [f'{prefix}{side}' for prefix in prefixes for side in 'hw']


def constraints(signature: Signature) -> list[str]:
  """Lower bounds on the side variables, so that sides `multiple * h` are at least `min_side`."""
  low = -(-signature.min_side // signature.multiple)
  return [f'{name} >= {low}' for name in dimension_names(signature)[1:]]


def symbolic_specs(signature: Signature, image_size: tuple[int, int] | None = None) -> list[jax.ShapeDtypeStruct]:
  """Argument specs for `jax.export`: a symbolic batch `b`, symbolic sides `multiple*h` (or `image_size`)."""
  names = dimension_names(signature) if image_size is None else ['b']  # fixed sides: only the batch is symbolic
  dims = jax.export.symbolic_shape(', '.join(names), constraints=constraints(signature) if image_size is None else ())
  by_name = dict(zip(names, dims))
  specs = []
  for item in signature.inputs:
    if item.kind == 'image':
      sides = image_size if image_size is not None else tuple(
          signature.multiple * by_name[f'{item.prefix}{side}'] for side in 'hw')
      shape = (by_name['b'], *sides, item.channels)
    elif item.kind in ('mix', 'vector'):
      shape = (by_name['b'], item.length)
    else:
      shape = ()
    specs.append(jax.ShapeDtypeStruct(shape, jnp.float32))
  return specs


def signature_of_model(model: Any) -> Signature:
  """The inference signature of a model already in memory (from `cnnrecon.inference`)."""
  return task_class(model.config).export_signature(model)


def signature_of(workdir: str | pathlib.Path, *, step: int | str | None = None) -> Signature:
  """The inference signature of a workdir's checkpoint (`step`: best (default), latest or a number)."""
  return signature_of_model(load_trained(workdir, step=step))


def concrete_specs(signature: Signature, side: int) -> list[jax.ShapeDtypeStruct]:
  """Argument specs of one example whose images are `side` x `side` (rounded up to the side multiple)."""
  side = -(-max(side, signature.min_side) // signature.multiple) * signature.multiple
  shapes = {'image': lambda item: (1, side, side, item.channels), 'mix': lambda item: (1, item.length),
            'vector': lambda item: (1, item.length), 'scalar': lambda item: ()}
  return [jax.ShapeDtypeStruct(shapes[item.kind](item), jnp.float32) for item in signature.inputs]
