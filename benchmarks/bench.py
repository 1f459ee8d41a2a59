"""`make bench`: cnnrecon vs the same networks in PyTorch, in one process, on this machine.

    make bench                                  # every workload, PyTorch reference in the same run
    python benchmarks/bench.py --only dncnn17_train --repeats 3
    python benchmarks/bench.py --cpu-conv xla_default   # without cnnrecon's CPU convolution routing
    python benchmarks/bench.py --device gpu --dtype float32 bfloat16 --torch-compile --batch-size 128 \
        --warmup 10 --repeats 50                       # on a GPU (benchmarks/gpu_check.sh)

Workloads (the configs are the experiments' own, unchanged):
- dncnn17_train: DnCNN-17, 64 features, batch 32 of 40x40, Adam, BatchNorm in training mode.
- unet_train: `experiments/denoise_unet.py` (depth 3, 32 features, batch 32 of 64x64).
- demo_train: `experiments/denoise_dncnn.py:demo` (10 layers on half-resolution sub-images, batch 16).
- dncnn17_infer_b1 / _b8: DnCNN-17 inference on 512x512 grayscale, batch 1 and 8.
- data_pipeline: the grain training iterator (bundled samples, DnCNN-17 batches) against what
  the dncnn17_train step consumes.
- device_sampler: DnCNN-17 batches drawn on the device (`data.sampler=device`): images/s and
  `fraction_of_step` (sampling time / dncnn17_train step time).
- host_pipeline_1 / _2: the grain pipeline with 1 / 2 worker processes (`data.workers`), images/s.
- dncnn17_end_to_end: `cnnrecon train` of DnCNN-17 (its default sampler, logging, finiteness checks)
  for 60 steps: images/s after the compiling window, and `ratio_to_step` against the bare step.

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


def measure(name: str, dtype: str, args) -> dict:
  """Times one workload in one compute dtype on both sides (in turns) and returns its row.

  With `--torch-compile` the PyTorch side is timed twice, eager and
  `torch.compile`d, in the same turns.
  """
  if name == 'data_pipeline':
    return workloads.data_pipeline(args, median_ms)
  if name == 'device_sampler':
    return workloads.device_sampler(args, median_ms)
  if name.startswith('host_pipeline_'):
    return workloads.host_pipeline(args, int(name.rpartition('_')[2]))
  if name == 'dncnn17_end_to_end':
    return workloads.dncnn17_end_to_end(args, median_ms, dtype)
  dtype = 'float32' if name in workloads.FLOAT32_ONLY else dtype
  ours, flops = workloads.cnnrecon_call(name, dtype, args)
  reference = {'pytorch': workloads.torch_call(name, dtype, args, compiled=False)}
  if args.torch_compile and reference['pytorch'] is not None:
    reference['pytorch_compile'] = workloads.torch_call(name, dtype, args, compiled=True)
  reference = {side: call for side, call in reference.items() if call is not None}
  times = interleaved_median_ms([ours, *reference.values()], warmup=args.warmup, repeats=args.repeats)
  row = {'name': name, 'dtype': dtype, 'images': workloads.images_per_call(name, args), 'cnnrecon_ms': times[0],
         'gflop': flops / 1e9}
  for side, spent in zip(reference, times[1:]):
    row[f'{side}_ms'] = spent
    row['ratio' if side == 'pytorch' else 'ratio_compile'] = spent / row['cnnrecon_ms']
  row['cnnrecon_gflops'] = row['gflop'] / (row['cnnrecon_ms'] / 1000)
  row['cnnrecon_images_per_s'] = row['images'] / (row['cnnrecon_ms'] / 1000)
  return row


def _cell(row: dict, key: str, width: int, digits: int = 1) -> str:
  """`row[key]` formatted to `width`, or a dash where the row has no such value."""
  return f'{row[key]:{width}.{digits}f}' if key in row else f"{'-':>{width}}"


def print_table(machine_info: dict, rows: list[dict]) -> None:
  """The human-readable table: one line per workload and dtype, then the machine."""
  print(f"{'workload':<18} {'dtype':<8} {'cnnrecon ms':>12} {'PyTorch ms':>11} {'ratio':>6} {'compiled ms':>12} "
        f"{'ratio':>6} {'img/s':>8} {'GFLOP':>7} {'GFLOP/s':>9} {'% peak':>7}")
  for row in rows:
    if row['name'] == 'data_pipeline':
      print(f"{'data_pipeline':<18} {row['pipeline_images_per_s']:9.0f} img/s ({row['threads']} threads), "
            f"the dncnn17 step consumes "
            f"{row['step_images_per_s']:.0f} img/s: {row['headroom']:.1f}x headroom")
      continue
    if row['name'] in workloads.DATA_WORKLOADS:
      print(f"{row['name']:<18} {row.get('dtype', 'float32'):<8} " + ', '.join(
          f'{key} {value:.3g}' if isinstance(value, float) else f'{key} {value}'
          for key, value in row.items() if key not in ('name', 'dtype')))
      continue
    peak = machine_info['peak_gflops'].get(row['dtype'], float('nan'))
    print(f"{row['name']:<18} {row['dtype']:<8} {row['cnnrecon_ms']:12.1f} {_cell(row, 'pytorch_ms', 11)} "
          f"{_cell(row, 'ratio', 6, 2)} {_cell(row, 'pytorch_compile_ms', 12)} {_cell(row, 'ratio_compile', 6, 2)} "
          f"{row['cnnrecon_images_per_s']:8.0f} {row['gflop']:7.1f} {row['cnnrecon_gflops']:9.1f} "
          f"{100 * row['cnnrecon_gflops'] / peak:6.1f}%")
  print('ratio = PyTorch ms / cnnrecon ms (above 1 = cnnrecon faster); compiled = torch.compile(net)')
  print(f"machine: {machine_info['cpu']}, {machine_info['cores']} cores, {machine_info['vector']}; "
        f"peak {machine_info['peak_formula']}")
  print(f"versions: python {machine_info['python']}, jax {machine_info['jax']} (jaxlib {machine_info['jaxlib']}, "
        f"{machine_info['jax_devices']}, cpu_conv={machine_info['cpu_conv']}), torch {machine_info.get('torch')} "
        f"({machine_info.get('torch_threads')} threads); "
        f"XLA_FLAGS={machine_info['xla_flags']!r}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--only', nargs='*', default=list(workloads.NAMES), choices=workloads.NAMES)
  parser.add_argument('--device', default='cpu', choices=('cpu', 'gpu'))
  parser.add_argument('--dtype', nargs='+', default=['float32'], choices=('float32', 'bfloat16'),
                      help='compute dtypes of the networks, each measured (params stay float32)')
  parser.add_argument('--batch-size', type=int, default=None,
                      help='batch of the DnCNN-17 train step and pipeline (default 32; the paper uses 128)')
  parser.add_argument('--data-threads', type=int, default=None,
                      help='grain reader threads of the data_pipeline workload (default: the config\'s)')
  parser.add_argument('--cpu-conv', default='eigen', choices=('eigen', 'xla_default'))
  parser.add_argument('--torch-compile', action='store_true',
                      help='also time torch.compile(net) (the eager PyTorch column stays)')
  parser.add_argument('--warmup', type=int, default=2)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--out', default='runs/bench/results.json')
  args = parser.parse_args()
  if args.device == 'gpu' and jax.default_backend() != 'gpu':
    raise SystemExit('bench: --device gpu but jax sees no GPU (install jax[cuda12])')
  machine_info = {**machine.describe(args.device), 'cpu_conv': args.cpu_conv, 'dtypes': args.dtype,
                  'batch_size': args.batch_size}
  rows = []
  for name in args.only:
    for dtype in args.dtype[:1] if name in workloads.FLOAT32_ONLY else args.dtype:
      rows.append(measure(name, dtype, args))
      print(f'measured {name} ({dtype})', file=sys.stderr, flush=True)
  print_table(machine_info, rows)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps({'machine': machine_info, 'workloads': rows}, indent=2) + '\n')
  print(f'written: {out}')


if __name__ == '__main__':
  np.set_printoptions(precision=3)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  main()
