"""What a forward operator is, and how a batch goes through one.

A forward operator models the measurement: `apply(key, clean) -> observed`
for ONE example (an HWC image), `initial_estimate(observed)` maps an
observation into image space (the identity for noise and masks; bicubic
upsampling for super-resolution; FBP for CT), and `describe()` names it in
tables. Observations may have a different shape from the clean image.
"""

from typing import Protocol

import jax


class ForwardOperator(Protocol):
  """The interface every operator in `cnnrecon.ops` implements."""

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    """Draws the observation of one clean HWC image from a typed PRNG key."""

  def initial_estimate(self, observed: jax.Array) -> jax.Array:
    """Maps one observation to an image the size of the clean one."""

  def describe(self) -> str:
    """A short description for tables and reports, e.g. 'AWGN sigma=25/255'."""


def observe_batch(operator: ForwardOperator, keys: jax.Array, clean: jax.Array) -> jax.Array:
  """Applies `operator` to every example with its own key.

  The per-example op is vmapped over one key per example, so an example's
  observation depends only on its own key, never on the batch it is in:
  training is then identical across device counts and batch splits.

  Args:
    operator: the forward operator.
    keys: typed PRNG keys [B].
    clean: images [B, H, W, C].

  Returns:
    The observations [B, ...].
  """
  return jax.vmap(operator.apply)(keys, clean)


class IdentityEstimate:
  """Mixin for operators whose observation already lives in image space."""

  def initial_estimate(self, observed: jax.Array) -> jax.Array:
    """The observation itself."""
    return observed
