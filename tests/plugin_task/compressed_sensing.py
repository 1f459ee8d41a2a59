"""A task defined outside cnnrecon through its public API only: compressed sensing of small gray images.

The observation is not an image: y = A x + n, a vector of `measurements` random Gaussian projections of
the `side` x `side` image x (A fixed by `matrix_seed`, n white noise of `sigma` on the 0-255 scale). The
model sees the back-projection A^T y as an image; the classical baseline is the minimum-norm
least-squares estimate A^T (A A^T)^-1 y. A user of `cnnrecon restore` gives observations as `.npy`
vectors. Importing this module registers the task as 'compressed_sensing'.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from cnnrecon.errors import CnnreconError
from cnnrecon.tasks import Input, Labels, ReconstructionTask, register_task


def gaussian_matrix(measurements: int, pixels: int, seed: int) -> np.ndarray:
  """A [measurements, pixels] matrix of N(0, 1/measurements) entries, so that A^T A is about the identity."""
  return np.random.default_rng(seed).normal(0.0, 1.0 / np.sqrt(measurements), (measurements, pixels)).astype(
      np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class RandomProjections:
  """The forward operator y = A x + n of one `side` x `side` x 1 image (`cnnrecon.ops` protocol)."""

  matrix: np.ndarray
  side: int
  sigma: float

  def apply(self, key: jax.Array, clean: jax.Array) -> jax.Array:
    measured = jnp.asarray(self.matrix) @ clean.reshape(-1)
    return measured + (self.sigma / 255.0) * jax.random.normal(key, measured.shape)

  def adjoint(self, observed: jax.Array) -> jax.Array:
    """A^T y as an image."""
    return (jnp.asarray(self.matrix).T @ observed).reshape(self.side, self.side, 1)

  def initial_estimate(self, observed: jax.Array) -> jax.Array:
    return self.adjoint(observed)

  def describe(self) -> str:
    return (f'{self.matrix.shape[0]} random Gaussian projections of {self.side}x{self.side} px '
            f'+ AWGN sigma={self.sigma:g}/255')


@register_task('compressed_sensing')
class CompressedSensing(ReconstructionTask):
  """Recover an image from fewer random projections than it has pixels."""

  @classmethod
  def from_options(cls, *, measurements: int, side: int, matrix_seed: int, sigma: float, loss):
    if not 0 < measurements <= side * side:
      raise CnnreconError(f'task.compressed_sensing.measurements={measurements} must be in 1..{side * side}')
    operator = RandomProjections(gaussian_matrix(measurements, side * side, matrix_seed), side, float(sigma))
    pseudo_inverse = operator.matrix.T @ np.linalg.inv(operator.matrix @ operator.matrix.T)

    def least_squares(example):
      return (pseudo_inverse @ example['observed']).reshape(side, side, 1)

    return cls(operator=operator, loss=loss, labels=Labels(observed='measured', estimate='reconstructed',
                                                           initial_estimate='back-projection'),
               baselines={'least_squares': least_squares})

  @classmethod
  def check_config(cls, config):
    super().check_config(config)
    side = config.task.compressed_sensing.side
    if config.data.channels != 1 or config.data.patch_size != side or config.data.eval_crop != side:
      raise CnnreconError(f'compressed_sensing measures {side}x{side} gray images: set data.channels=1 and '
                          f'data.patch_size and data.eval_crop to {side}')

  @classmethod
  def observation_input(cls, config):
    return Input('observed', 'vector', length=config.task.compressed_sensing.measurements)

  @classmethod
  def read_observation(cls, path, channels):
    del channels
    observed = np.load(path)
    if observed.ndim != 1:
      raise CnnreconError(f'{path} holds an array of shape {observed.shape}: give one vector of measurements')
    return observed.astype(np.float32)

  def evaluation_image(self, clean):
    """The central `side` x `side` crop: what the operator measures."""
    side = self.operator.side
    top, left = (clean.shape[0] - side) // 2, (clean.shape[1] - side) // 2
    return clean[top:top + side, left:left + side]
