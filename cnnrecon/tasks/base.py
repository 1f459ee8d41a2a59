"""The `Task` interface: everything the shared code asks of a task, so that it never asks which task it runs.

A task is chosen by `config.task.name` (`cnnrecon.tasks.TASKS`). Its class
answers from a config alone (no weights or style images read):

- `check_config(config)`: one-line errors for its own options and for the
  model and data settings it needs (e.g. patch sides the net can take);
- `from_config(config)`: the task, with the loss it builds itself;
- `inference_model(config, variables, step)`: the trained model a workdir or a
  params export holds, ready to call (`cnnrecon.inference`);
- `evaluate(model, images, request)` and `final_report(model, images, run)`:
  how a data set is scored and reported (`Results`); `cnnrecon eval` and the
  end of training write what they return;
- `restorer(model)`, `read_observation(path, channels)`, `write_estimate`:
  what an observation is for a user of `cnnrecon restore`;
- `export_signature(model)`: the function an export holds and its inputs;
- `best_checkpoint`: the validation metric that picks the best checkpoint;
- `trains_on`: 'patches' (random crops) or 'images' (whole images of one size).

Its instances do the training work, on device, inside the jitted steps:
`init_frozen`, `forward_operator`, `prepare`, `sample_model_input`, `compute_loss`,
`eval_metrics`, `no_model_estimate`, `describe`, and carry `labels` and
`convention`. Reconstruction tasks implement all of it in
`tasks/reconstruction.py`; style tasks in `cnnrecon.style.tasks`.
"""

import abc
import dataclasses
from typing import Any, Callable, ClassVar, Sequence

import jax
import ml_collections
import numpy as np

from cnnrecon.data.images import read_image, write_image

Example = dict[str, Any]
Image = tuple[str, np.ndarray]  # (name, clean HWC float image in [0, 1])


@dataclasses.dataclass(frozen=True)
class Labels:
  """Display names of a task's images.

  Attributes:
    observed: what the model is given, for users ('noisy', 'masked', 'content').
    estimate: what it returns ('denoised', 'stylized').
    target: what the estimate is compared with.
    initial_estimate: the row of tables that scores the model's input, the
      task's estimate without a model ('noisy' for denoising, where it is the
      observation itself; 'bicubic' for super-resolution).
  """

  observed: str
  estimate: str
  target: str = 'clean'
  initial_estimate: str | None = None

  @property
  def no_model(self) -> str:
    """The name of the estimate without a model (the initial estimate)."""
    return self.initial_estimate or self.observed


@dataclasses.dataclass(frozen=True)
class MetricConvention:
  """How estimates are scored: on which channel, after removing which border.

  Attributes:
    y_channel: score the luma Y (ITU-R BT.601, as MATLAB's rgb2ycbcr) of RGB
      images instead of all channels (the super-resolution convention).
    crop: pixels removed from each side before scoring (SR: the scale factor).
    quantize: round estimates to 8 bits before scoring, as a saved 8-bit image
      would be (the JPEG deblocking convention, MATLAB's `im2uint8`).
    luma_target: the task's targets already are the Y of RGB images (a gray
      model restoring their luma); only `describe` reads it.
  """

  y_channel: bool = False
  crop: int = 0
  quantize: bool = False
  luma_target: bool = False

  def describe(self) -> str:
    """The convention in words, for every table."""
    channels = 'Y channel (BT.601) of RGB images' if self.y_channel or self.luma_target else 'all channels'
    border = f'{self.crop}-pixel border removed' if self.crop else 'full image'
    rounded = ', estimates rounded to 8 bits' if self.quantize else ''
    return f'PSNR (data range 1) and SSIM (11x11 Gaussian window, sigma 1.5) on {channels}, {border}{rounded}'


@dataclasses.dataclass(frozen=True)
class BestCheckpoint:
  """The validation metric (a key of `eval_metrics`) that picks the best checkpoint, and its direction."""

  metric: str = 'psnr'
  higher_is_better: bool = True

  def score(self, metrics: dict[str, float]) -> float:
    """The checkpoint's score, higher is better: the metric, negated when lower is better."""
    value = metrics[self.metric]
    return value if self.higher_is_better else -value


@dataclasses.dataclass(frozen=True)
class EvaluationRequest:
  """What `cnnrecon eval` asks of a task.

  Attributes:
    data: the data set's name, for titles.
    seeds: observation seeds (tasks without random observations accept only the default).
    with_baselines: score the task's classical baselines too.
    config: the config to evaluate under when it differs from the trained one (e.g. another
      noise level, `cnnrecon eval --sigma`); None for the model's own.
  """

  data: str = ''
  seeds: Sequence[int] = (0,)
  with_baselines: bool = True
  config: ml_collections.ConfigDict | None = None


@dataclasses.dataclass
class Results:
  """What a task's evaluation of a data set found, for the evaluation layer to write and print.

  Attributes:
    files: `{file name: text}` of the result tables (results.md, results.csv,
      summary.json), written into the results folder.
    summary: the per-method (or per-style) averages `cnnrecon eval` returns.
    terminal: the table printed by `cnnrecon eval`.
    results_lines: the Markdown table of report.md.
    convention: how the table was scored, stated under it.
    grid_columns: image columns of grid.png (each [N, H, W, C] in [0, 1]), or empty.
    grid_titles: their titles.
    model_row, task_row: how report.md's configuration table names the model and task.
  """

  files: dict[str, str]
  summary: dict
  terminal: str = ''
  results_lines: list[str] = dataclasses.field(default_factory=list)
  convention: str = ''
  grid_columns: list[np.ndarray] = dataclasses.field(default_factory=list)
  grid_titles: list[str] = dataclasses.field(default_factory=list)
  model_row: str = ''
  task_row: str = ''


@dataclasses.dataclass(frozen=True)
class Input:
  """One argument of an exported function.

  Attributes:
    name: its name in the manifest.
    kind: 'image' (NHWC float32 in [0, 1] with `channels` channels; its height
      and width are the symbolic `<prefix>h`, `<prefix>w`), 'vector' (`length`
      values per batch element), 'mix' (one weight per trained style, `length`
      of them, per batch element) or 'scalar'.
    channels: an image's channels.
    length: a vector's or mix's length.
    prefix: the prefix of an image's side names.
    value_range: the range of its values, for the manifest.
  """

  name: str
  kind: str
  channels: int = 0
  length: int = 0
  prefix: str = ''
  value_range: tuple[float, float] | None = None


@dataclasses.dataclass(frozen=True)
class Signature:
  """An inference function and everything an export's manifest says about it.

  Attributes:
    function: `(*inputs) -> output` in jax; the weights are constants in it.
    inputs: its arguments, in order.
    multiple: image sides must be multiples of this (2^poolings, strides).
    min_side: and at least this many pixels.
    task: the task's name and options (sigma, mask, styles, ...).
    output: what the function returns, in words.
    model: the in-memory model the function was built from.
    step: the checkpoint's step.
  """

  function: Callable
  inputs: tuple[Input, ...]
  multiple: int
  min_side: int
  task: dict
  output: str
  model: Any
  step: int

  @property
  def config(self) -> ml_collections.ConfigDict:
    """The trained run's config."""
    return self.model.config


def task_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The options of the task `config.task.name` names (its sub-dict; empty if it has none)."""
  options = config.task.get(config.task.get('name'))
  return options.to_dict() if isinstance(options, ml_collections.ConfigDict) else dict(options or {})


def task_record(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The task's name and options in one dict, as export manifests record them (`Signature.task`)."""
  return {'name': config.task.name, **task_options(config)}


class Task(abc.ABC):
  """The interface every task implements (see the module docstring)."""

  name: ClassVar[str] = ''  # set by `cnnrecon.tasks.register_task`
  best_checkpoint: ClassVar[BestCheckpoint] = BestCheckpoint()
  trains_on: ClassVar[str] = 'patches'
  labels: Labels

  # ------------------------------------------------------------------ from a config (no weights read)

  @classmethod
  @abc.abstractmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'Task':
    """The task `config` describes, with the loss it trains on.

    Raises:
      CnnreconError: a bad option.
    """

  @classmethod
  def check_config(cls, config: ml_collections.ConfigDict) -> None:
    """One-line errors for the task's options and the settings it needs; by default, building it checks them."""
    cls.from_config(config)

  @classmethod
  @abc.abstractmethod
  def inference_model(cls, config: ml_collections.ConfigDict, variables: dict, step: int) -> Any:
    """The trained model of a checkpoint or params export, ready to call."""

  @classmethod
  @abc.abstractmethod
  def evaluate(cls, model: Any, images: Sequence[Image], request: EvaluationRequest) -> Results:
    """`cnnrecon eval`: scores `model` on `images` (see `EvaluationRequest`)."""

  @classmethod
  @abc.abstractmethod
  def final_report(cls, model: Any, images: Sequence[Image]) -> Results:
    """The report written at the end of training, on the validation images."""

  @classmethod
  @abc.abstractmethod
  def export_signature(cls, model: Any) -> Signature:
    """The inference function an export of `model` holds, and its inputs."""

  @classmethod
  @abc.abstractmethod
  def restorer(cls, model: Any) -> Callable[[np.ndarray], np.ndarray]:
    """`estimate(observation)` for `cnnrecon restore`, one observation at a time.

    Raises:
      CnnreconError: the task has no observations to restore (it says which command to use).
    """

  @classmethod
  def evaluation_channels(cls, config: ml_collections.ConfigDict) -> int:
    """The channels evaluation images are loaded with: the model's (`data.channels`) by default.

    A task may ask for more, e.g. RGB images for a gray model that restores their luma.
    """
    return config.data.channels

  @classmethod
  def read_observation(cls, path: str, channels: int) -> np.ndarray:
    """An observation file as the restorer takes it (an image file by default)."""
    return read_image(path, channels=channels)

  @classmethod
  def write_estimate(cls, path, estimate: np.ndarray) -> None:
    """Writes an estimate as a PNG, clipped to [0, 1]."""
    write_image(path, np.clip(estimate, 0.0, 1.0))

  @classmethod
  def estimate_suffix(cls) -> str:
    """The file suffix `write_estimate` writes."""
    return '.png'

  # ------------------------------------------------------------------ training (inside the jitted steps)

  def init_frozen(self) -> dict:
    """Variables the loss needs and the optimizer never touches (none by default)."""
    return {}

  def forward_operator(self) -> Any:
    """The forward operator, handed to models that ask for it (`build_model(..., operator=)`); None if none."""
    return None

  @abc.abstractmethod
  def prepare(self, keys: jax.Array, clean: jax.Array, frozen: Any = None) -> Example:
    """A batch of clean images [B, H, W, C] -> `{'observed', 'model_input', 'target', ...}`, one key per example."""

  @abc.abstractmethod
  def sample_model_input(self, image_shape: tuple[int, ...]) -> Any:
    """What the model's params are initialised on, for training images of `image_shape`."""

  @abc.abstractmethod
  def compute_loss(self, estimate: jax.Array, example: Example, frozen: Any = None) -> jax.Array:
    """The training loss of the model's estimate."""

  @abc.abstractmethod
  def eval_metrics(self, estimate: jax.Array, example: Example) -> dict[str, jax.Array]:
    """Validation metrics of a batch beside the loss (batch means), e.g. `{'psnr', 'initial_estimate_psnr'}`."""

  @abc.abstractmethod
  def no_model_estimate(self, example: Example) -> jax.Array:
    """The image that tables and grids show as the estimate without a model (the target's shape)."""

  @abc.abstractmethod
  def describe(self) -> str:
    """The task in a few words, for tables and reports."""
