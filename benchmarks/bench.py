"""`make bench`: cnnrecon vs the same networks in PyTorch, in one process, on this machine.

    make bench                                  # every workload, PyTorch reference in the same run
    python benchmarks/bench.py --only dncnn17_train --repeats 3
    python benchmarks/bench.py --cpu-conv xla_default   # without cnnrecon's CPU convolution routing

Workloads (the configs are the experiments' own, unchanged):
- dncnn17_train: DnCNN-17, 64 features, batch 32 of 40x40, Adam, BatchNorm in training mode.
- unet_train: `experiments/denoise_unet.py` (depth 3, 32 features, batch 32 of 64x64).
- demo_train: `experiments/denoise_dncnn.py:demo` (10 layers on half-resolution sub-images, batch 16).
- dncnn17_infer_b1 / _b8: DnCNN-17 inference on 512x512 grayscale, batch 1 and 8.
- data_pipeline: the grain training iterator (bundled samples, DnCNN-17 batches) against what
  the dncnn17_train step consumes.

A train step is, on both sides: add Gaussian noise (sigma 25/255), forward, MSE, backward, Adam.
Times are medians of steady-state calls after warm-up (and compilation), the two sides
timed in turns. ratio = PyTorch ms /
cnnrecon ms: above 1, cnnrecon is faster. FLOPs are XLA's count of the compiled cnnrecon
program (the same network on both sides). Output: a table, and `runs/bench/results.json`.
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import machine  # pylint: disable=wrong-import-position
import workloads  # pylint: disable=wrong-import-position


def median_ms(call, *, warmup: int, repeats: int) -> float:
  """Median wall milliseconds of `call()` (which must block until its work is done)."""
  return interleaved_median_ms([call], warmup=warmup, repeats=repeats)[0]


def interleaved_median_ms(calls, *, warmup: int, repeats: int) -> list[float]:
  """Median wall milliseconds of each call, timed in turns (A B A B ...).

  Taking turns exposes both sides to the same drift of a shared machine
  (clock, neighbours), which back-to-back blocks of repeats do not: the
  PyTorch DnCNN-17 step alone measured 656-792 ms in different runs here.
  """
  for call in calls:
    for _ in range(warmup):
      call()
  times = [[] for _ in calls]
  for _ in range(repeats):
    for call, spent in zip(calls, times):
      started = time.perf_counter()
      call()
      spent.append(time.perf_counter() - started)
  return [1000 * statistics.median(spent) for spent in times]


def measure(name: str, args) -> dict:
  """Times one workload on both sides (in turns) and returns its row."""
  if name == 'data_pipeline':
    return workloads.data_pipeline(args, median_ms)
  ours, flops = workloads.cnnrecon_call(name, args)
  theirs = workloads.torch_call(name, args)
  calls = [ours] if theirs is None else [ours, theirs]
  times = interleaved_median_ms(calls, warmup=args.warmup, repeats=args.repeats)
  row = {'name': name, 'cnnrecon_ms': times[0], 'gflop': flops / 1e9}
  if theirs is not None:
    row['pytorch_ms'] = times[1]
    row['ratio'] = row['pytorch_ms'] / row['cnnrecon_ms']
  row['cnnrecon_gflops'] = row['gflop'] / (row['cnnrecon_ms'] / 1000)
  return row


def print_table(machine_info: dict, rows: list[dict]) -> None:
  """The human-readable table: one line per workload, then the machine."""
  peak = machine_info['fp32_peak_gflops']
  print(f"{'workload':<18} {'cnnrecon ms':>12} {'PyTorch ms':>11} {'ratio':>6} {'GFLOP':>7} "
        f"{'GFLOP/s':>8} {'% peak':>7}")
  for row in rows:
    if row['name'] == 'data_pipeline':
      print(f"{'data_pipeline':<18} {row['pipeline_images_per_s']:9.0f} img/s, the dncnn17 step consumes "
            f"{row['step_images_per_s']:.0f} img/s: {row['headroom']:.1f}x headroom")
      continue
    ratio = f"{row['ratio']:6.2f}" if 'ratio' in row else '     -'
    torch_ms = f"{row['pytorch_ms']:11.1f}" if 'pytorch_ms' in row else '          -'
    share = 100 * row['cnnrecon_gflops'] / peak if peak else float('nan')
    print(f"{row['name']:<18} {row['cnnrecon_ms']:12.1f} {torch_ms} {ratio} {row['gflop']:7.1f} "
          f"{row['cnnrecon_gflops']:8.1f} {share:6.1f}%")
  print('ratio = PyTorch ms / cnnrecon ms (above 1 = cnnrecon faster)')
  print(f"machine: {machine_info['cpu']}, {machine_info['cores']} cores, {machine_info['vector']}; "
        f"fp32 peak {peak:.0f} GFLOP/s = {machine_info['peak_formula']}")
  print(f"versions: python {machine_info['python']}, jax {machine_info['jax']} (jaxlib {machine_info['jaxlib']}, "
        f"{machine_info['jax_devices']}, cpu_conv={machine_info['cpu_conv']}), torch {machine_info.get('torch')} "
        f"({machine_info.get('torch_threads')} threads, {machine_info['pytorch_mode']}); "
        f"XLA_FLAGS={machine_info['xla_flags']!r}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--only', nargs='*', default=list(workloads.NAMES), choices=workloads.NAMES)
  parser.add_argument('--device', default='cpu', choices=('cpu', 'gpu'))
  parser.add_argument('--dtype', default='float32', choices=('float32', 'bfloat16'),
                      help='compute dtype of the train steps (params stay float32)')
  parser.add_argument('--cpu-conv', default='eigen', choices=('eigen', 'xla_default'))
  parser.add_argument('--torch-compile', action='store_true', help='compare with torch.compile(net), not eager')
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--out', default='runs/bench/results.json')
  args = parser.parse_args()
  if args.device == 'gpu' and jax.default_backend() != 'gpu':
    raise SystemExit('bench: --device gpu but jax sees no GPU (install jax[cuda12])')
  machine_info = {**machine.describe(args.device), 'cpu_conv': args.cpu_conv, 'dtype': args.dtype,
                  'pytorch_mode': 'torch.compile' if args.torch_compile else 'eager'}
  rows = []
  for name in args.only:
    rows.append(measure(name, args))
    print(f'measured {name}', file=sys.stderr, flush=True)
  print_table(machine_info, rows)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({'machine': machine_info, 'workloads': rows}, indent=2) + '\n')
  print(f'written: {out}')


if __name__ == '__main__':
  np.set_printoptions(precision=3)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main()
