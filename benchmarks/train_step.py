"""DnCNN train step: cnnrecon (jax.jit) vs the same network in PyTorch, on this machine.

    make bench                         # DnCNN-17, 64 features, batch 32 of 40x40, Adam
    python benchmarks/train_step.py --depth 10 --batch 16

Both sides run the same work per step: add Gaussian noise (sigma 25/255),
forward, MSE on the clean image, backward, Adam update, with BatchNorm in
training mode. Times are medians of steady-state steps after warm-up (and,
for cnnrecon, after compilation). The ratio (cnnrecon time / PyTorch time) is
the figure to track: absolute times depend on the machine.
"""

import argparse
import json
import os
import statistics
import time

import jax
import numpy as np


def _median_seconds(step, repeats: int) -> float:
  times = []
  for _ in range(repeats):
    started = time.perf_counter()
    step()
    times.append(time.perf_counter() - started)
  return statistics.median(times)


def time_cnnrecon(args) -> float:
  """Median seconds per cnnrecon train step (shard_map data parallelism, state donated)."""
  from cnnrecon.config import base_config
  from cnnrecon.losses import mse
  from cnnrecon.models.registry import build_model
  from cnnrecon.ops.degrade import make_degradation
  from cnnrecon.train.parallel import AXIS, DataParallel
  from cnnrecon.train.state import create_train_state, make_optimizer
  from cnnrecon.train.step import train_step

  config = base_config()
  config.model.depth, config.model.features = args.depth, args.features
  model = build_model(config.model, channels=1, bn_axis_name=AXIS)
  data_parallel = DataParallel('shard_map')
  step = data_parallel.compile_train_step(train_step, cpu_conv=args.cpu_conv, degrade=make_degradation(config.degradation), loss_fn=mse)
  state = data_parallel.put_state(create_train_state(model, make_optimizer(config.optim, 1000), seed=0,
                                                     sample_shape=(1, args.patch, args.patch, 1)))
  rng = np.random.default_rng(0)
  batch = data_parallel.put_batch({
      'target': rng.random((args.batch, args.patch, args.patch, 1), dtype=np.float32),
      'noise_seed': np.arange(args.batch, dtype=np.uint32)})
  holder = {'state': state}

  def run():
    holder['state'], metrics = step(holder['state'], batch)
    jax.block_until_ready(metrics)

  for _ in range(args.warmup):
    run()
  return _median_seconds(run, args.repeats)


def time_torch(args) -> float:
  """Median seconds per PyTorch train step of the same DnCNN."""
  import torch
  from torch import nn
  torch.manual_seed(0)
  torch.set_num_threads(os.cpu_count())
  layers = [nn.Conv2d(1, args.features, 3, padding=1), nn.ReLU(inplace=True)]
  for _ in range(args.depth - 2):
    layers += [nn.Conv2d(args.features, args.features, 3, padding=1, bias=False),
               nn.BatchNorm2d(args.features), nn.ReLU(inplace=True)]
  layers.append(nn.Conv2d(args.features, 1, 3, padding=1))
  net = nn.Sequential(*layers)
  optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
  clean = torch.rand(args.batch, 1, args.patch, args.patch)

  def run():
    noisy = clean + torch.randn_like(clean) * (25.0 / 255.0)
    loss = torch.mean((noisy - net(noisy) - clean) ** 2)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()

  for _ in range(args.warmup):
    run()
  return _median_seconds(run, args.repeats)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--depth', type=int, default=17)
  parser.add_argument('--features', type=int, default=64)
  parser.add_argument('--batch', type=int, default=32)
  parser.add_argument('--patch', type=int, default=40)
  parser.add_argument('--warmup', type=int, default=3)
  parser.add_argument('--repeats', type=int, default=10)
  parser.add_argument('--cpu-conv', default='eigen')
  parser.add_argument('--out', default='runs/bench/train_step.json')
  args = parser.parse_args()
  jax_seconds = time_cnnrecon(args)
  torch_seconds = time_torch(args)
  result = {'network': f'DnCNN-{args.depth}, {args.features} features', 'batch': args.batch,
            'patch': args.patch, 'cpu_count': os.cpu_count(), 'jax': jax.__version__,
            'cnnrecon_ms_per_step': 1000 * jax_seconds, 'pytorch_ms_per_step': 1000 * torch_seconds,
            'ratio_cnnrecon_over_pytorch': jax_seconds / torch_seconds}
  print(f"{result['network']}, batch {args.batch} of {args.patch}x{args.patch}, Adam, {jax.devices()[0].platform}:")
  print(f"  cnnrecon (jax {jax.__version__}): {result['cnnrecon_ms_per_step']:8.1f} ms/step")
  print(f"  PyTorch:               {result['pytorch_ms_per_step']:8.1f} ms/step")
  print(f"  ratio cnnrecon / PyTorch: {result['ratio_cnnrecon_over_pytorch']:.2f}  (below 1 = cnnrecon faster)")
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, 'w') as stream:
    json.dump(result, stream, indent=2)


if __name__ == '__main__':
  main()
