"""XLA compiler options for cnnrecon's jitted steps, chosen per platform.

Why this exists: on CPU, XLA (jaxlib 0.10) hands convolutions to YNNPACK by
default, and YNNPACK's weight-gradient convolution is slow and
single-threaded. Measured on a 2-core Xeon (AVX-512), one 3x3 conv,
32x40x40x64 -> 64, forward + backward: 129 ms with YNNPACK, 37 ms with XLA's
Eigen convolution (the weight gradient alone 127 ms vs 22 ms). Routing
convolutions back to Eigen while keeping YNNPACK for dots and reductions
took a DnCNN-17 train step from 2509 ms to 976-1000 ms. The
option is set per `jax.jit` (`compiler_options=`), so it touches nothing
else in the process, and `config.compile.cpu_conv='xla_default'` removes it.

Where XLA does not know the option (a jaxlib without YNNPACK, or a newer
one that renamed it) and on GPU/TPU, no option is set: XLA's own choice is
used there.
"""

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp

from cnnrecon.errors import CnnreconError

CPU_CONV_CHOICES = ('eigen', 'xla_default')

# YNNPACK keeps dots and reductions (BatchNorm statistics: 1.9 s per DnCNN-17 step without
# it); INDIVIDUAL_CONVOLUTION is left out, and so is ELTWISE, whose fusions pull a convolution
# in with the elementwise op that follows it (tests/test_fast_paths.py checks that none is left).
_CPU_CONV_ON_EIGEN = {
    'xla_cpu_experimental_ynn_fusion_type': ','.join(
        f'LIBRARY_FUSION_TYPE_{kind}' for kind in ('DOT', 'INDIVIDUAL_DOT', 'REDUCE')),
}


def check_cpu_conv(cpu_conv: str) -> None:
  """Raises a one-line error unless `cpu_conv` is a known choice."""
  if cpu_conv not in CPU_CONV_CHOICES:
    raise CnnreconError(f'unknown compile.cpu_conv={cpu_conv!r}: use --config.compile.cpu_conv=eigen '
                        '(fast CPU convolutions) or xla_default (XLA\'s own choice)')


@functools.cache
def _xla_accepts(options: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib knows the options (compiles a tiny conv with them once)."""
  image, kernel = jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1))
  conv = functools.partial(jax.lax.conv_general_dilated, window_strides=(1, 1), padding='SAME',
                           dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  try:
    jax.jit(conv).lower(image, kernel).compile(compiler_options=dict(options))
  except Exception:  # pylint: disable=broad-except  # XLA reports unknown options as various errors
    return False
  return True


def compiler_options(cpu_conv: str = 'eigen') -> dict[str, str] | None:
  """The XLA options cnnrecon compiles steps with on the default backend.

  Args:
    cpu_conv: 'eigen' runs CPU convolutions on XLA's Eigen kernels (see the
      module docstring for the measurement); 'xla_default' leaves XLA's choice.

  Returns:
    A `compiler_options` dict for `jax.jit`, or None when nothing is to be
    changed (another platform, 'xla_default', or a jaxlib without the option).
  """
  check_cpu_conv(cpu_conv)
  if cpu_conv == 'xla_default' or jax.default_backend() != 'cpu':
    return None
  options = tuple(sorted(_CPU_CONV_ON_EIGEN.items()))
  return dict(options) if _xla_accepts(options) else None


def jit(fun: Callable, *, cpu_conv: str = 'eigen', **jit_kwargs: Any) -> Callable:
  """`jax.jit(fun, **jit_kwargs)` compiled with `compiler_options(cpu_conv)`."""
  return jax.jit(fun, compiler_options=compiler_options(cpu_conv), **jit_kwargs)


# Programs that run once, such as a model's initialisation: they take XLA seconds to compile (one
# threefry kernel per parameter draw) and microseconds to run, and LLVM's -O1 compiles them 1.4-4.5x
# faster than the default -O2 with bit-identical results. Measured on 2 CPU cores for the init of
# every experiment's model and of the random VGG-16: style_adain:smoke 3.61 -> 0.78 s, style_fast:smoke
# 3.21 -> 0.83 s, VGG-16 to relu5_3 2.52 -> 0.91 s, denoise_unet 2.09 -> 1.42 s, all the same bits
# (tests/test_fast_paths.py checks it). -O0 is not an option: it changes the bits.
_RUN_ONCE = {'xla_backend_optimization_level': 1}


def jit_run_once(fun: Callable, **jit_kwargs: Any) -> Callable:
  """`jax.jit(fun)` for programs run once (initialisers), compiled for compile time, not run time, on CPU.

  Elsewhere (GPU, TPU, or a jaxlib without the option) it is plain `jax.jit`.
  """
  options = tuple(sorted(_RUN_ONCE.items()))
  use = jax.default_backend() == 'cpu' and _xla_accepts(options)
  return jax.jit(fun, compiler_options=dict(options) if use else None, **jit_kwargs)


def pmap(fun: Callable, *, cpu_conv: str = 'eigen', **pmap_kwargs: Any) -> Callable:
  """`jax.pmap(fun, **pmap_kwargs)` compiled with `compiler_options(cpu_conv)`.

  `jax.pmap` takes no `compiler_options`, so the function is compiled ahead
  of time on its first call (and again for new argument shapes).
  """
  mapped = jax.pmap(fun, **pmap_kwargs)
  options = compiler_options(cpu_conv)
  if options is None:
    return mapped
  compiled = {}

  def call(*args):
    signature = jax.tree.structure(args), tuple(
        (jnp.shape(leaf), jnp.result_type(leaf)) for leaf in jax.tree.leaves(args))
    if signature not in compiled:
      compiled[signature] = mapped.lower(*args).compile(compiler_options=options)
    return compiled[signature](*args)

  return call
