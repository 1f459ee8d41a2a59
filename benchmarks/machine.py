"""What the benchmark ran on: CPU model, cores, vector width, clock, fp32 peak, versions."""

import os
import platform
import sys


def _cpuinfo() -> dict[str, str]:
  """The first processor block of /proc/cpuinfo as a dict ({} where there is none)."""
  info = {}
  try:
    with open('/proc/cpuinfo') as stream:
      for line in stream:
        if not line.strip():
          break
        key, _, value = line.partition(':')
        info[key.strip()] = value.strip()
  except OSError:
    pass
  return info


# Dense tensor-core peaks (GFLOP/s) from NVIDIA's data sheets (SXM parts; the H200 has the
# H100's compute). fp32 rows use the TF32 peak: XLA and cuDNN (PyTorch's default
# `allow_tf32` for convolutions) run float32 convolutions on TF32 tensor cores.
_GPU_PEAK_GFLOPS = {
    'H100': {'float32': 494_700, 'bfloat16': 989_400},
    'H200': {'float32': 494_700, 'bfloat16': 989_400},
    'A100': {'float32': 156_000, 'bfloat16': 312_000},
}


def _gpu_peak(kind: str) -> dict[str, float]:
  """The data-sheet peaks of a GPU named `kind` ({} for a GPU not in the table)."""
  return next((peak for name, peak in _GPU_PEAK_GFLOPS.items() if name in kind), {})


def describe(device: str) -> dict:
  """Machine facts and the fp32 peak used for '% of peak'.

  The peak is cores x fp32 lanes per FMA x 2 FMA units x 2 flops x clock: 16
  lanes with AVX-512, 8 with AVX2 (the usual two FMA ports per core is an
  assumption, stated in the output), clock = /proc/cpuinfo's 'cpu MHz'.
  """
  import jax
  import jaxlib
  info = _cpuinfo()
  flags = set(info.get('flags', '').split())
  cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  lanes = 16 if 'avx512f' in flags else 8 if 'avx2' in flags else 4
  mhz = float(info.get('cpu MHz', 0) or 0)
  peak = cores * lanes * 2 * 2 * mhz / 1000
  machine = {
      'device': device,
      'cpu': info.get('model name', platform.processor() or 'unknown'),
      'cores': cores,
      'vector': 'AVX-512' if lanes == 16 else 'AVX2' if lanes == 8 else 'SSE',
      'clock_mhz': mhz,
      # bfloat16 is held to the fp32 peak on CPU: XLA's CPU convolutions compute in fp32.
      'peak_gflops': {'float32': peak, 'bfloat16': peak},
      'peak_formula': (f'{peak:.0f} GFLOP/s fp32 = {cores} cores x {lanes} fp32 lanes x 2 FMA units (assumed) '
                       f'x 2 flops x {mhz:.0f} MHz'),
      'python': sys.version.split()[0],
      'jax': jax.__version__,
      'jaxlib': jaxlib.__version__,
      'jax_devices': f'{jax.device_count()} x {jax.devices()[0].device_kind}',
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
  }
  try:
    import torch
    machine.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
  except ImportError:
    machine['torch'] = 'not installed'
  if device == 'gpu':
    machine['gpu'] = jax.devices()[0].device_kind
    machine['peak_gflops'] = _gpu_peak(machine['gpu'])
    machine['peak_formula'] = (f"{machine['gpu']}: dense tensor-core data-sheet peak, "
                               f"{machine['peak_gflops'] or 'unknown GPU'} GFLOP/s (fp32 = TF32)")
  return machine
