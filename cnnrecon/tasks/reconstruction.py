"""Reconstruction tasks: recover a clean image from its observation through a forward operator.

`ReconstructionTask` implements the whole `Task` interface for any operator of
`cnnrecon.ops`: the model sees the operator's initial estimate of the
observation (or the observation itself, for models that say so with
`TAKES = 'observation'`, and tasks whose observation carries more than an
image, such as an inpainting mask); tables score the model, the initial estimate (the "no model"
row) and the task's classical baselines with PSNR / SSIM under its
`MetricConvention`; an export maps observations to estimates. A new
reconstruction task is a subclass with a `from_options` classmethod (its
config options as keyword arguments) and a registration in `cnnrecon.tasks`.
"""

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from cnnrecon import metrics as metrics_lib
from cnnrecon.data.pipeline import center_crop
from cnnrecon.errors import CnnreconError
from cnnrecon.losses import Loss, get_loss
from cnnrecon.metrics import SSIM_WINDOW
from cnnrecon.models.registry import build_model, model_takes, side_multiple
from cnnrecon.models.trained import TrainedModel
from cnnrecon.ops.base import ForwardOperator, observe_batch
from cnnrecon.registry import call_with_options
from cnnrecon.tasks import scoring, tables
from cnnrecon.tasks.baselines import Baseline
from cnnrecon.tasks.base import (EvaluationRequest, Example, Image, Input, Labels, MetricConvention, Results,
                                 Signature, Task, task_options, task_record)


@dataclasses.dataclass(frozen=True)
class ReconstructionTask(Task):
  """Recover a clean image from its observation through `operator`.

  Attributes:
    operator: the forward operator that makes observations.
    loss: `loss(estimate, target) -> scalar` (from `config.train.loss`).
    labels: display names ('noisy' | 'denoised' | 'clean').
    baselines: classical methods scored beside the model, by name.
    convention: how evaluation scores estimates.
    takes: what the model is given: 'initial_estimate' (an image the size of
      the clean one) or 'observation' (`cnnrecon.models.registry.model_takes`).
  """

  operator: ForwardOperator
  loss: Loss
  labels: Labels
  baselines: Mapping[str, Baseline] = dataclasses.field(default_factory=dict)
  convention: MetricConvention = MetricConvention()
  takes: str = 'initial_estimate'

  # ------------------------------------------------------------------ from a config

  @classmethod
  def from_options(cls, *, loss: Loss, **options) -> 'ReconstructionTask':
    """The task from its options (`config.task.<name>`, as keyword arguments) and the pixel loss."""
    raise NotImplementedError(f'{cls.__name__} must define from_options(*, loss, <its options>)')

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict, *, loss: Loss | None = None) -> 'ReconstructionTask':
    """The task `config.task` describes, trained on the pixel loss `config.train.loss` (or `loss`)."""
    loss = loss if loss is not None else get_loss(config.train.loss)
    task = call_with_options(cls.from_options, task_options(config), section=f'task.{config.task.name}', loss=loss)
    return dataclasses.replace(task, takes=model_takes(config.model))

  @classmethod
  def inference_model(cls, config: ml_collections.ConfigDict, variables: dict, step: int) -> TrainedModel:
    """The trained model; it maps model inputs to estimates, and observations to estimates (`restore`)."""
    task = cls.from_config(config)
    return TrainedModel(config=config, variables=variables, step=step, operator=task.operator,
                        to_model_input=task.observation_to_model_input)

  @classmethod
  def check_evaluation(cls, trained: ml_collections.ConfigDict, evaluated: ml_collections.ConfigDict) -> None:
    """Refuses evaluating a model trained on `trained` under `evaluated` when it cannot run there.

    A model that takes the observation itself (`takes == 'observation'`, e.g. EDSR's low-resolution
    input) runs only on its own task's observations.

    Raises:
      CnnreconError: one line naming what differs and what to do.
    """
    if evaluated.task.name != trained.task.name and model_takes(trained.model) == 'observation':
      raise CnnreconError(f'{trained.model.name} takes the {trained.task.name} observation itself, so it cannot be '
                          f'evaluated on task {evaluated.task.name!r}: leave --task out')

  @classmethod
  def restorer(cls, model) -> Callable[[np.ndarray], np.ndarray]:
    """`estimate(observation)`: the model on the initial estimate of one observation (`model.restore`).

    `model` is a `TrainedModel` or an export (`cnnrecon.inference.ExportedModel`, which holds the
    initial estimate inside).
    """
    return model.restore

  @classmethod
  def observation_input(cls, config: ml_collections.ConfigDict) -> Input:
    """The observation as an exported function takes it: an image like the clean one by default."""
    return Input('observed', 'image', channels=config.data.channels, value_range=(0.0, 1.0))

  @classmethod
  def export_signature(cls, model: TrainedModel) -> Signature:
    """Observations -> estimates: the task's model input (e.g. its initial estimate), then the model."""
    config = model.config
    network = build_model(config.model, channels=config.data.channels, operator=model.operator)
    to_model_input = jax.vmap(cls.from_config(config).observation_to_model_input)
    variables = model.variables

    def restore(observed):
      return network.apply(variables, to_model_input(observed), train=False)

    multiple = side_multiple(config.model)
    return Signature(function=restore, inputs=(cls.observation_input(config),), multiple=multiple,
                     min_side=multiple, task=task_record(config),
                     output='the estimate of the clean image (not clipped; clip to [0, 1] to save it)',
                     model=model, step=model.step)

  @classmethod
  def evaluate(cls, model: TrainedModel, images: Sequence[Image], request: EvaluationRequest) -> Results:
    """PSNR / SSIM of the model, the initial estimate and the baselines, per image, averaged over seeds."""
    config = request.config or model.config
    task = cls.from_config(config)
    task.check_scorable(images, request.data, min_side=side_multiple(config.model))
    scored = [scoring.score_images(model, images, task=task, seed=seed, with_baselines=request.with_baselines)
              for seed in request.seeds]
    rows_per_seed = [rows for rows, _ in scored]
    rows = scoring.mean_over_seeds(rows_per_seed)
    seeds = list(request.seeds)
    spread = '\n\n' + _seed_lines(rows_per_seed, seeds) if len(seeds) > 1 else ''
    title = (f'{config.model.name} (step {model.step}) on {request.data}, {task.describe()}, '
             f'seed{"s" if len(seeds) > 1 else ""} {",".join(map(str, seeds))}')
    columns, titles = _grid(task, scored[0][1][:config.report.grid_examples])
    return Results(files=tables.table_files(rows, title=title, notes=task.protocol() + spread),
                   summary=scoring.summarize(rows),
                   terminal='\n'.join([title, tables.format_table(rows)] + ([spread.strip()] if spread else [])),
                   grid_columns=columns, grid_titles=titles)

  @classmethod
  def final_report(cls, model: TrainedModel, images: Sequence[Image]) -> Results:
    """The training report: tables on the validation images (`report.crop`), a grid of the first ones."""
    config = model.config
    task = cls.from_config(config)
    crop = config.report.get('crop', 0)  # configs saved before the key scored whole images
    scored_on = f'{config.data.eval} (central {crop} px squares)' if crop else config.data.eval
    if crop:
      images = [(name, center_crop(image, min(crop, *image.shape[:2]))) for name, image in images]
    rows, triplets = scoring.score_images(model, images, task=task, seed=config.seed,
                                          with_baselines=config.report.baselines)
    columns, titles = _grid(task, triplets[:config.report.grid_examples])
    labels, summary = task.labels, scoring.summarize(rows)
    return Results(
        files=tables.table_files(rows, title=f'{config.model.name} on {scored_on}, {task.describe()}',
                                 notes=task.protocol()),
        summary=summary, results_lines=tables.gains_table(summary, labels.no_model),
        convention=task.convention.describe(),
        grid_columns=columns, grid_titles=titles,
        model_row=f'{config.model.name} (depth {config.model.depth}, {config.model.features} features)',
        task_row=f'{config.task.name}: {task.describe()}')

  # ------------------------------------------------------------------ training

  def prepare(self, keys: jax.Array, clean: jax.Array, frozen: Any = None) -> Example:
    """Observes a batch of clean images [B, H, W, C] in [0, 1], one typed key per example.

    Returns:
      `{'observed', 'initial_estimate', 'model_input', 'target'}`: the
      operator's initial estimate of every observation (the clean image's
      shape) and what the model is given (`model_input`).
    """
    del frozen
    observed = observe_batch(self.operator, keys, clean)
    initial_estimate = jax.vmap(self.operator.initial_estimate)(observed)
    return {'observed': observed, 'initial_estimate': initial_estimate,
            'model_input': jax.vmap(self.model_input)(observed, initial_estimate), 'target': clean}

  def model_input(self, observed: jax.Array, initial_estimate: jax.Array) -> jax.Array:
    """What the model is given for one observation: per `takes`, the initial estimate or the observation."""
    return observed if self.takes == 'observation' else initial_estimate

  def observation_to_model_input(self, observed: jax.Array) -> jax.Array:
    """One observation -> the model's input (`cnnrecon restore`, exports)."""
    return self.model_input(observed, self.operator.initial_estimate(observed))

  def sample_model_input(self, image_shape: tuple[int, ...]) -> jax.Array:
    """What the model is initialised on: zeros shaped like the model input of clean images of `image_shape`."""
    keys = jax.random.split(jax.random.key(0), image_shape[0])
    shape = jax.eval_shape(lambda: self.prepare(keys, jnp.zeros(image_shape, jnp.float32))['model_input'])
    return jnp.zeros(shape.shape, jnp.float32)

  def no_model_estimate(self, example: Example) -> jax.Array:
    """The estimate without a model: the operator's initial estimate."""
    return example['initial_estimate']

  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """The pixel loss of the model's estimate against the clean image."""
    del frozen
    return self.loss(estimate, example['target'])

  def eval_metrics(self, estimate: jax.Array, example: Example) -> dict[str, jax.Array]:
    """PSNR of the (clipped) estimate and of the initial estimate (not clipped), batch means."""
    target = example['target']
    return {'psnr': jnp.mean(metrics_lib.psnr(jnp.clip(estimate, 0.0, 1.0), target)),
            'initial_estimate_psnr': jnp.mean(metrics_lib.psnr(self.no_model_estimate(example), target))}

  def describe(self) -> str:
    """The operator's description, for tables and reports."""
    return self.operator.describe()

  def forward_operator(self) -> ForwardOperator:
    """The operator, for models that apply it (e.g. unrolled networks)."""
    return self.operator

  # ------------------------------------------------------------------ evaluation helpers

  def scored_initial_estimate(self, initial_estimate: np.ndarray) -> np.ndarray:
    """The initial estimate as its table row scores it: as is (an observation's noise is not clipped)."""
    return initial_estimate

  def evaluation_image(self, clean: np.ndarray) -> np.ndarray:
    """The clean image as scored: the whole image by default (SR crops it to a multiple of its scale)."""
    return clean

  def protocol(self) -> str:
    """The evaluation protocol in one paragraph, for every table."""
    return (f'Protocol: images in [0, 1]; {self.describe()} drawn per image from `fold_in(key(seed), index)`; '
            f'the {self.labels.observed} input is not clipped; estimates are clipped to [0, 1]; '
            f'{self.convention.describe()}.')

  def check_scorable(self, images: Sequence[Image], spec: str, *, min_side: int = 1) -> None:
    """SSIM's 11x11 window needs images of at least 11x11 after the border crop (`min_side`: the model's)."""
    del min_side  # fully convolutional models pad their input to their multiple
    smallest = min(images, key=lambda item: min(item[1].shape[:2]))
    side = min(smallest[1].shape[:2]) - 2 * self.convention.crop
    if side < SSIM_WINDOW:
      raise CnnreconError(f'{spec}: image {smallest[0]} is {smallest[1].shape[0]}x{smallest[1].shape[1]} px, smaller '
                          f'than the {SSIM_WINDOW}x{SSIM_WINDOW} window SSIM needs: evaluate on larger images')


def _seed_lines(rows_per_seed: Sequence[dict], seeds: Sequence[int]) -> str:
  spread = scoring.summarize_seeds(rows_per_seed)
  lines = [f'Averages over seeds {", ".join(map(str, seeds))} (mean ± sample std of the per-seed averages):', '',
           '| method | PSNR (dB) | SSIM |', '|---|---:|---:|']
  lines += [f"| {method} | {values['psnr_mean']:.2f} ± {values['psnr_std']:.2f} | "
            f"{values['ssim_mean']:.4f} ± {values['ssim_std']:.4f} |" for method, values in spread.items()]
  return '\n'.join(lines)


def _grid(task: ReconstructionTask, triplets: Sequence[tuple]) -> tuple[list[np.ndarray], list[str]]:
  """grid.png's columns (no-model image | estimate | target, centre-cropped to the smallest side) and titles."""
  crop = min(min(target.shape[0], target.shape[1]) for _, _, target in triplets)
  columns = [np.stack([center_crop(triplet[i], crop) for triplet in triplets]) for i in range(3)]
  return columns, [task.labels.no_model, task.labels.estimate, task.labels.target]
