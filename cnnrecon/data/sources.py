"""Data sources named by a spec string, for the grain pipeline.

Spec grammar:
  `samples`, `samples:SPLIT`   scikit-image sample images (splits train|validation)
  `tfds:NAME`, `tfds:NAME:SPLIT`   any TFDS catalog dataset (needs TensorFlow to prepare)
  `phantoms:KIND[:SPLIT][:size=N]...`   CT phantoms drawn on the fly (`cnnrecon.data.phantoms`)
  anything else                a folder of png/jpg/bmp/tif images (one split: all of them)
The split defaults to 'train'. Write `./samples` for a folder called "samples".

Each source is built once into a TFDS data directory as array_record and read
with `as_data_source`; later calls find it prepared and only open the files.
"""

import dataclasses
import os
import pathlib

import numpy as np
import skimage.util
import tensorflow_datasets as tfds

from cnnrecon.data import folder as folder_lib
from cnnrecon.data import images
from cnnrecon.data import phantoms
from cnnrecon.data import samples
from cnnrecon.errors import CnnreconError

SAMPLES = 'samples'
TFDS_PREFIX = 'tfds:'
DEFAULT_SPLIT = 'train'

# Decoded records of the bundled samples by (data dir, version, split, index), kept for the life of the
# process: 11 MB decoded, never changed once built, and read again by every run in the process (a sweep's
# runs, a notebook's, a test session's), where decoding their PNGs was a sixth of a warm smoke run
# (0.47 of 2.85 s). Other sources are the user's data, possibly gigabytes: those are decoded on read.
_DECODED_SAMPLES: dict[tuple, dict[str, object]] = {}


@dataclasses.dataclass(frozen=True)
class SourceSpec:
  """A parsed spec.

  Attributes:
    kind: 'samples', 'folder', 'tfds' or 'phantoms'.
    target: the folder path, TFDS dataset name or the whole phantoms spec ('' for samples).
    split: the split to read.
  """
  kind: str
  target: str
  split: str


class ImageRecords:
  """Random access to {'image': uint8 HxWx3, 'name': str} over TFDS records."""

  def __init__(self, records, *, description: str, image_key: str = 'image',
               name_key: str | None = 'name', keep_decoded: tuple | None = None):
    """Wraps a TFDS data source.

    Args:
      records: what `builder.as_data_source(split)` returns.
      description: short human description (see `describe_source`).
      image_key: the image feature of each record.
      name_key: the text feature naming each record; None names records by
        index.
      keep_decoded: a key naming these records for the process-wide cache of
        decoded images (the bundled samples'); None decodes on every read.
    """
    self._records = records
    self.description = description
    self._image_key = image_key
    self._name_key = name_key
    self._keep_decoded = keep_decoded

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict[str, object]:
    if self._keep_decoded is None:
      return self._decode(index)
    key = (*self._keep_decoded, index)
    if key not in _DECODED_SAMPLES:
      decoded = self._decode(index)
      decoded['image'].flags.writeable = False  # shared by every later read: nobody may change it in place
      _DECODED_SAMPLES[key] = decoded
    return dict(_DECODED_SAMPLES[key])

  def _decode(self, index: int) -> dict[str, object]:
    record = self._records[index]
    pixels = np.asarray(record[self._image_key])
    if pixels.dtype != np.uint8:
      pixels = skimage.util.img_as_ubyte(pixels)
    if self._name_key is None:
      name = f'{index:06d}'
    else:
      name = record[self._name_key]
      name = name.decode() if isinstance(name, bytes) else str(name)
    return {'image': images.to_channels(pixels, 3), 'name': name}

  def __repr__(self) -> str:
    return f'ImageRecords({self.description}, {len(self)} images)'


def default_data_dir() -> str:
  """Returns $CNNRECON_DATA_DIR, or ~/.cache/cnnrecon/tfds when it is unset."""
  return os.environ.get('CNNRECON_DATA_DIR') or str(
      pathlib.Path('~/.cache/cnnrecon/tfds').expanduser())


def parse_spec(spec: str) -> SourceSpec:
  """Parses a source spec (grammar in the module docstring).

  Args:
    spec: e.g. 'samples', 'samples:validation', 'tfds:mnist:test', '~/imgs'.

  Returns:
    The parsed spec.
  """
  if not spec:
    raise CnnreconError("empty data source: pass 'samples', a folder of images or tfds:NAME")
  if spec == SAMPLES or spec.startswith(SAMPLES + ':'):
    return SourceSpec('samples', '', spec[len(SAMPLES) + 1:] or DEFAULT_SPLIT)
  if spec.startswith(TFDS_PREFIX):
    name, _, split = spec[len(TFDS_PREFIX):].partition(':')
    if not name:
      raise CnnreconError(f'data source {spec!r} names no dataset: '
                          'write tfds:NAME or tfds:NAME:SPLIT')
    return SourceSpec('tfds', name, split or DEFAULT_SPLIT)
  if spec.startswith(phantoms.PREFIX):
    return SourceSpec('phantoms', spec, phantoms.parse(spec).split)
  return SourceSpec('folder', str(pathlib.Path(spec).expanduser().resolve()), DEFAULT_SPLIT)


def describe_source(spec: str) -> str:
  """Returns a short human description of a spec, for reports.

  Args:
    spec: a data source spec.

  Returns:
    e.g. "scikit-image samples (validation split)".
  """
  parsed = parse_spec(spec)
  if parsed.kind == 'samples':
    return f'scikit-image samples ({parsed.split} split)'
  if parsed.kind == 'tfds':
    return f'TFDS {parsed.target} ({parsed.split} split)'
  if parsed.kind == 'phantoms':
    return phantoms.describe(phantoms.parse(spec))
  return f'image folder {parsed.target}'


def _check_split(builder, spec: str, split: str) -> None:
  splits = sorted(builder.info.splits.keys())
  if split not in splits:
    raise CnnreconError(f'data source {spec!r} has no split {split!r}: '
                        f'use one of {", ".join(splits)}')


def _prepared(builder, spec: str, split: str):
  """Prepares `builder` (a no-op once done) and returns `split`'s records."""
  builder.download_and_prepare()
  _check_split(builder, spec, split)
  return builder.as_data_source(split)


def _catalog_builder(name: str, data_dir: str):
  """Returns the array_record builder of TFDS catalog dataset `name`."""
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import  # noqa: F401
  except ImportError:
    raise CnnreconError(f"tfds:{name} needs TensorFlow: pip install 'cnnrecon[tf]' "
                        'or pass a folder of images') from None
  try:
    return tfds.builder(name, data_dir=data_dir, file_format='array_record')
  except tfds.core.DatasetNotFoundError:
    raise CnnreconError(f'tfds:{name} is not a TFDS dataset: pick a name from '
                        'https://www.tensorflow.org/datasets/catalog') from None


def _image_key(builder, spec: str) -> str:
  """Picks the image feature: 'image' when it exists, else the first Image."""
  features = builder.info.features
  keys = [key for key, feature in features.items()
          if isinstance(feature, tfds.features.Image)]
  if not keys:
    raise CnnreconError(f'data source {spec!r} has no image feature: pick a TFDS image dataset')
  return 'image' if 'image' in keys else keys[0]


def _load_catalog(spec: str, parsed: SourceSpec, data_dir: str) -> ImageRecords:
  builder = _catalog_builder(parsed.target, data_dir)
  records = _prepared(builder, spec, parsed.split)
  text_keys = [key for key, feature in builder.info.features.items()
               if isinstance(feature, tfds.features.Text)]
  name_key = 'file_name' if 'file_name' in text_keys else None
  return ImageRecords(records, description=describe_source(spec),
                      image_key=_image_key(builder, spec), name_key=name_key)


def load_source(spec: str, *, data_dir: str | None = None) -> ImageRecords:
  """Opens a data source, building it into `data_dir` the first time.

  Args:
    spec: 'samples[:SPLIT]', a folder path, 'tfds:NAME[:SPLIT]' or 'phantoms:...'.
    data_dir: TFDS data directory; defaults to `default_data_dir()`.

  Returns:
    A grain-compatible random-access source: `len(source)` and
    `source[i] == {'image': uint8 HxWx3 array, 'name': str}` (HxWx1 for the gray phantoms).

  Raises:
    CnnreconError: unknown split, missing/empty folder, unreadable image, or
      a TFDS catalog dataset without TensorFlow installed.
  """
  parsed = parse_spec(spec)
  data_dir = data_dir or default_data_dir()
  if parsed.kind == 'tfds':
    return _load_catalog(spec, parsed, data_dir)
  if parsed.kind == 'phantoms':
    return phantoms.load(spec)
  if parsed.kind == 'samples':
    builder = samples.SkimageSamples(data_dir=data_dir, file_format='array_record')
    keep_decoded = (str(pathlib.Path(data_dir).resolve()), str(builder.version), parsed.split)
  else:
    builder = folder_lib.image_folder_builder(parsed.target, data_dir=data_dir)
    keep_decoded = None  # the user's images: decoded on every read
  records = _prepared(builder, spec, parsed.split)
  return ImageRecords(records, description=describe_source(spec), keep_decoded=keep_decoded)
