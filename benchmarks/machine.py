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
      'fp32_peak_gflops': peak,
      'peak_formula': f'{cores} cores x {lanes} fp32 lanes x 2 FMA units (assumed) x 2 flops x {mhz:.0f} MHz',
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
  return machine
