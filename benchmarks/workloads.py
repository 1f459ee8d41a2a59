"""The benchmarked workloads, each as a zero-argument call that blocks until done."""

import functools
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from cnnrecon import compiler
from cnnrecon.config import base_config, load_config
from cnnrecon.models.registry import build_model
from cnnrecon.tasks import build_task
from cnnrecon.train.parallel import AXIS, make_data_parallel, per_process_batch_size
from cnnrecon.train.state import create_train_state, make_optimizer
from cnnrecon.train.step import train_step

NAMES = ('dncnn17_train', 'unet_train', 'demo_train', 'dncnn17_infer_b1', 'dncnn17_infer_b8', 'gatys_step',
         'data_pipeline', 'device_sampler', 'host_pipeline_1', 'host_pipeline_2', 'dncnn17_end_to_end')
# Measured once, whatever --dtype lists.
FLOAT32_ONLY = ('gatys_step', 'data_pipeline', 'device_sampler', 'host_pipeline_1', 'host_pipeline_2')
DATA_WORKLOADS = ('data_pipeline', 'device_sampler', 'host_pipeline_1', 'host_pipeline_2', 'dncnn17_end_to_end')
GATYS_SIDE = 256
EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / 'experiments'
INFERENCE_SIDE = 512


def inference_batch(name: str) -> int:
  """Batch size of an inference workload (`..._b1` or `..._b8`)."""
  return int(name.rpartition('_b')[2])


def workload_config(name: str, dtype: str = 'float32', batch_size: int | None = None):
  """The config a workload runs (the experiments' own settings; `batch_size` overrides DnCNN-17's 32)."""
  if name.startswith('dncnn17') or name == 'data_pipeline':  # dncnn17_end_to_end too
    config = base_config()
    config.model.update(name='dncnn', depth=17, features=64)
    config.data.update(batch_size=batch_size or 32, patch_size=40)
  elif name == 'unet_train':
    config = load_config(str(EXPERIMENTS / 'denoise_unet.py'), [])
  elif name == 'demo_train':
    config = load_config(str(EXPERIMENTS / 'denoise_dncnn.py') + ':demo', [])
  else:
    raise ValueError(name)
  config.model.dtype = dtype
  return config


def _train_step_call(config, args):
  """A cnnrecon train step exactly as `train.loop.train` compiles it, and its FLOPs."""
  model = build_model(config.model, channels=1, bn_axis_name=AXIS)
  data_parallel = make_data_parallel(config.parallel)
  step = data_parallel.compile_train_step(
      train_step, cpu_conv=args.cpu_conv, task=build_task(config))
  size = config.data.patch_size
  state = data_parallel.put_state(create_train_state(
      model, make_optimizer(config.optim, config.train.steps), seed=0, sample_shape=(1, size, size, 1)))
  rng = np.random.default_rng(0)
  local = per_process_batch_size(config.data.batch_size)
  batch = data_parallel.put_batch({'target': rng.random((local, size, size, 1), dtype=np.float32),
                                   'example_seed': np.arange(local, dtype=np.uint32)})
  # XLA counts one device's share of the shard_map program; pmap steps are not lowered here.
  # FLOPs come from the lowered program, not the compiled one: XLA's GPU compiler turns
  # convolutions into cuDNN custom calls that its cost analysis counts as ~0 (a DnCNN-17
  # inference on an H100 read 1.0 instead of 291 GFLOP); on CPU both counts are equal.
  per_device = step.lower(state, batch).cost_analysis()['flops'] if hasattr(step, 'lower') else 0.0
  flops = per_device * jax.device_count()
  holder = {'state': state}

  def call():
    holder['state'], metrics = step(holder['state'], batch)
    jax.block_until_ready(metrics)

  return call, flops


def _inference_call(config, batch: int, args):
  model = build_model(config.model, channels=1)
  variables = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), jnp.zeros((1, INFERENCE_SIDE, INFERENCE_SIDE, 1)))
  apply = compiler.jit(lambda v, x: model.apply(v, x, train=False), cpu_conv=args.cpu_conv)
  images = jnp.asarray(np.random.default_rng(0).random((batch, INFERENCE_SIDE, INFERENCE_SIDE, 1),
                                                       dtype=np.float32))
  flops = apply.lower(variables, images).cost_analysis()['flops']
  return (lambda: jax.block_until_ready(apply(variables, images))), flops


def _gatys_images():
  rng = np.random.default_rng(0)
  return (rng.random((GATYS_SIDE, GATYS_SIDE, 3), dtype=np.float32),
          rng.random((GATYS_SIDE, GATYS_SIDE, 3), dtype=np.float32))


def _gatys_call():
  """One Adam step of `cnnrecon.style.gatys` (VGG-16, random weights, 256x256) and its FLOPs."""
  from cnnrecon.style import gatys
  from cnnrecon.style.loss_network import load_loss_network
  settings = gatys.GatysSettings()
  network = load_loss_network('random', last_layer='relu5_1')
  content, style = _gatys_images()
  loss = gatys.make_loss(network, content, gatys.blended_grams(network, [style], [1.0], settings.style_layers),
                         settings)
  optimizer = optax.adam(settings.learning_rate)
  step = gatys._adam_step(loss, optimizer)  # pylint: disable=protected-access
  holder = {'image': jnp.asarray(content[None])}
  holder['state'] = optimizer.init(holder['image'])
  flops = step.lower(holder['image'], holder['state']).cost_analysis()['flops']

  def call():
    holder['image'], holder['state'], parts = step(holder['image'], holder['state'])
    jax.block_until_ready(parts)
  return call, flops, network.variables['params']


def images_per_call(name: str, args) -> int:
  """How many images one call of a workload processes."""
  if name.endswith('_train'):
    return workload_config(name, batch_size=args.batch_size).data.batch_size
  return 1 if name == 'gatys_step' else inference_batch(name)


def cnnrecon_call(name: str, dtype: str, args):
  """(call, flops) of a workload on the cnnrecon side."""
  if name == 'gatys_step':
    return _gatys_call()[:2]
  config = workload_config(name, dtype, args.batch_size)
  if name.endswith('_train'):
    return _train_step_call(config, args)
  return _inference_call(config, inference_batch(name), args)


def torch_call(name: str, dtype: str, args, *, compiled: bool):
  """The same workload in PyTorch, eager or `torch.compile`d (None when torch is not installed)."""
  try:
    import torch
  except ImportError:
    return None
  import torch_models
  torch.manual_seed(0)
  torch.set_num_threads(len(os.sched_getaffinity(0)))
  device = 'cuda' if args.device == 'gpu' else 'cpu'
  sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
  if name == 'gatys_step':
    return None if compiled else _torch_gatys_call(torch, torch_models, device, sync)
  config = workload_config(name, dtype, args.batch_size)
  net = torch_models.build(config.model, channels=1).to(device)
  if compiled:
    net = torch.compile(net)
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=dtype == 'bfloat16')
  if name.endswith('_train'):
    size, batch = config.data.patch_size, config.data.batch_size
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    clean = torch.rand(batch, 1, size, size, device=device)

    def step():
      noisy = clean + torch.randn_like(clean) * (25.0 / 255.0)
      with autocast:
        loss = torch.mean((net(noisy).float() - clean) ** 2)
      optimizer.zero_grad(set_to_none=True)
      loss.backward()
      optimizer.step()
      sync()
    return step
  net.eval()
  images = torch.rand(inference_batch(name), 1, INFERENCE_SIDE, INFERENCE_SIDE, device=device)

  def infer():
    with torch.no_grad(), autocast:
      net(images)
    sync()
  return infer


def _torch_gatys_call(torch, torch_models, device, sync):
  """The same Gatys Adam step in PyTorch, with the same VGG weights, layers and loss weights."""
  from cnnrecon.style import gatys
  settings = gatys.GatysSettings()
  _, _, params = _gatys_call()
  vgg = torch_models.VGGFeatures(params).to(device)
  content, style = (torch.from_numpy(image).permute(2, 0, 1)[None].to(device) for image in _gatys_images())
  with torch.no_grad():
    content_targets = vgg(content)
    style_grams = {layer: torch_models.gram(vgg(style)[layer]) for layer in settings.style_layers}
  image = content.clone().requires_grad_(True)
  optimizer = torch.optim.Adam([image], lr=settings.learning_rate)

  def step():
    features = vgg(image)
    content_loss = sum(torch.mean((features[l] - content_targets[l]) ** 2) for l in settings.content_layers)
    style_loss = sum(torch.sum((torch_models.gram(features[l]) - style_grams[l]) ** 2) for l in settings.style_layers)
    tv = (image[:, :, 1:] - image[:, :, :-1]).abs().sum() + (image[:, :, :, 1:] - image[:, :, :, :-1]).abs().sum()
    loss = settings.content_weight * content_loss + settings.style_weight * style_loss + settings.tv_weight * tv
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
      image.clamp_(0, 1)
    sync()
  return step


def data_pipeline(args, median_ms) -> dict:
  """Images/s of the grain training iterator vs images/s the dncnn17 train step consumes."""
  from cnnrecon.data.pipeline import train_iterator
  from cnnrecon.data.sources import load_source
  config = workload_config('data_pipeline', args.dtype[0], args.batch_size)
  threads = args.data_threads or config.data.num_threads
  batches = train_iterator(load_source('samples:train'), seed=0, patch_size=config.data.patch_size, channels=1,
                           batch_size=config.data.batch_size, num_threads=threads)
  next(batches)  # decode and cache the images first, as a training run does before its first step
  count = 50
  started = time.perf_counter()
  for _ in range(count):
    next(batches)
  pipeline = count * config.data.batch_size / (time.perf_counter() - started)
  step, _ = _train_step_call(config, args)
  step_ms = median_ms(step, warmup=args.warmup, repeats=args.repeats)
  consumed = config.data.batch_size / (step_ms / 1000)
  return {'name': 'data_pipeline', 'threads': threads, 'pipeline_images_per_s': pipeline,
          'step_images_per_s': consumed, 'headroom': pipeline / consumed}


def _samples_source():
  from cnnrecon.data.sources import load_source
  return load_source('samples:train')


def device_sampler(args, median_ms) -> dict:
  """Images/s of the device sampler (DnCNN-17 batches from the bundled samples) and its cost per train step."""
  from cnnrecon.train.batches import DeviceBatches
  config = workload_config('data_pipeline', 'float32', args.batch_size)
  batches = DeviceBatches(config, _samples_source(), make_data_parallel(config.parallel))
  sample_ms = median_ms(lambda: jax.block_until_ready(batches.next()), warmup=args.warmup, repeats=args.repeats)
  step, _ = _train_step_call(config, args)
  step_ms = median_ms(step, warmup=args.warmup, repeats=args.repeats)
  return {'name': 'device_sampler', 'images_per_s': config.data.batch_size / (sample_ms / 1000),
          'sample_ms': sample_ms, 'step_ms': step_ms, 'fraction_of_step': sample_ms / step_ms}


def host_pipeline(args, workers: int) -> dict:
  """Images/s of the grain pipeline (DnCNN-17 batches) with `workers` worker processes."""
  from cnnrecon.data.pipeline import train_iterator
  config = workload_config('data_pipeline', 'float32', args.batch_size)
  batches = train_iterator(_samples_source(), seed=0, patch_size=config.data.patch_size, channels=1,
                           batch_size=config.data.batch_size, num_threads=config.data.num_threads, workers=workers)
  for _ in range(2 * max(workers, 1)):  # the workers start, decode and cache the images first
    next(batches)
  count = 50
  started = time.perf_counter()
  for _ in range(count):
    next(batches)
  images_per_s = count * config.data.batch_size / (time.perf_counter() - started)
  if hasattr(batches, 'close'):  # the worker processes
    batches.close()
  return {'name': f'host_pipeline_{workers}', 'workers': workers, 'images_per_s': images_per_s}


END_TO_END_STEPS, END_TO_END_WINDOW = 60, 10


def dncnn17_end_to_end(args, median_ms, dtype: str) -> dict:
  """`cnnrecon train` of DnCNN-17 (its own sampler choice, logging and checks) against the bare train step.

  Images/s of the run are the median of its logged windows after the first (which compiles).
  """
  import tempfile
  from cnnrecon.io import read_jsonl
  from cnnrecon.train import loop
  config = workload_config('dncnn17_end_to_end', dtype, args.batch_size)
  config.compile.cpu_conv = args.cpu_conv
  config.data.num_threads = args.data_threads or config.data.num_threads
  config.train.update(steps=END_TO_END_STEPS, log_every=END_TO_END_WINDOW, eval_every=END_TO_END_STEPS,
                      checkpoint_every=END_TO_END_STEPS)
  config.data.eval_crop = 40
  with tempfile.TemporaryDirectory() as workdir:
    loop.train(config, workdir, progress=False)
    rates = [row['train/images_per_s'] for row in read_jsonl(pathlib.Path(workdir) / 'metrics.jsonl')
             if 'train/images_per_s' in row][1:]
    sampler = json.loads((pathlib.Path(workdir) / 'config.json').read_text())['data']['sampler']
  step, _ = _train_step_call(config, args)
  step_ms = median_ms(step, warmup=args.warmup, repeats=args.repeats)
  images_per_s = float(np.median(rates))
  step_images_per_s = config.data.batch_size / (step_ms / 1000)
  return {'name': 'dncnn17_end_to_end', 'dtype': dtype, 'sampler': sampler, 'images_per_s': images_per_s,
          'step_images_per_s': step_images_per_s, 'ratio_to_step': images_per_s / step_images_per_s}
