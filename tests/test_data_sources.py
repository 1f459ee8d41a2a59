"""TFDS builders (scikit-image samples, image folders) and load_source, TF-free."""

import os
import pickle
import sys

import numpy as np
import PIL.Image
import pytest
import skimage.data

from cnnrecon.data import folder as folder_lib
from cnnrecon.data import samples
from cnnrecon.data import sources
from cnnrecon.errors import CnnreconError

RNG = np.random.default_rng(1)


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds'))


@pytest.fixture(scope='module')
def sample_splits(data_dir):
  return {split: sources.load_source(f'samples:{split}', data_dir=data_dir)
          for split in ('train', 'validation')}


def all_names(source):
  return [source[i]['name'] for i in range(len(source))]


def test_samples_splits_are_fixed_and_disjoint(sample_splits):
  train, validation = sample_splits['train'], sample_splits['validation']
  assert all_names(train) == list(samples.TRAIN_IMAGES)
  assert all_names(validation) == list(samples.VALIDATION_IMAGES)
  assert len(train) == 16 and len(validation) == 4
  assert not set(all_names(train)) & set(all_names(validation))


@pytest.mark.parametrize('split', ['train', 'validation'])
def test_samples_are_uint8_rgb_and_small(sample_splits, split):
  source = sample_splits[split]
  for i in range(len(source)):
    image = source[i]['image']
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert max(image.shape[:2]) <= samples.MAX_SIDE


def test_samples_hold_scikit_image_pixels(sample_splits):
  validation = sample_splits['validation']
  camera = validation[samples.VALIDATION_IMAGES.index('camera')]['image']
  np.testing.assert_array_equal(camera, np.stack([skimage.data.camera()] * 3, axis=-1))
  astronaut = validation[samples.VALIDATION_IMAGES.index('astronaut')]['image']
  np.testing.assert_array_equal(astronaut, skimage.data.astronaut())


def test_samples_are_decoded_once_per_process_and_read_only(sample_splits, data_dir):
  again = sources.load_source('samples:validation', data_dir=data_dir)  # a second run in this process
  index = samples.VALIDATION_IMAGES.index('camera')
  first, second = sample_splits['validation'][index], again[index]
  assert second['image'] is first['image'] and second is not first  # the decoded pixels, not the dict
  np.testing.assert_array_equal(first['image'], np.stack([skimage.data.camera()] * 3, axis=-1))
  with pytest.raises(ValueError, match='read-only'):
    first['image'][0, 0, 0] = 0  # a caller cannot change what later runs read
  train = sources.load_source('samples:train', data_dir=data_dir)
  assert train[index]['name'] == samples.TRAIN_IMAGES[index]  # keyed by split: no mix-up across splits


def test_samples_default_split_is_train(sample_splits, data_dir):
  assert all_names(sources.load_source('samples', data_dir=data_dir)) == all_names(
      sample_splits['train'])


def test_samples_reload_reuses_prepared_data(sample_splits, data_dir, monkeypatch):
  del sample_splits  # Built by the fixture.
  def fail(*args):
    raise AssertionError('rebuilt')
  monkeypatch.setattr(samples.SkimageSamples, '_generate_examples', fail)
  # `fail` proves nothing is regenerated; no wall-clock bound (flaky under load).
  source = sources.load_source('samples:validation', data_dir=data_dir)
  assert len(source) == 4


def test_unknown_split_lists_splits(sample_splits, data_dir):
  del sample_splits
  with pytest.raises(CnnreconError, match='use one of train, validation'):
    sources.load_source('samples:test', data_dir=data_dir)


def test_source_pickles_for_grain_workers(sample_splits):
  source = pickle.loads(pickle.dumps(sample_splits['validation']))
  np.testing.assert_array_equal(source[1]['image'], sample_splits['validation'][1]['image'])


def make_folder(path):
  """Writes gray and RGB PNG/BMP/TIFF images of several sizes; returns RGB copies."""
  gray = RNG.integers(0, 256, (11, 13), dtype=np.uint8)
  rgb = RNG.integers(0, 256, (9, 7, 3), dtype=np.uint8)
  gray16 = RNG.integers(0, 65536, (5, 6), dtype=np.uint16)
  path.mkdir()
  PIL.Image.fromarray(rgb).save(path / 'a_rgb.png')
  PIL.Image.fromarray(gray).save(path / 'b_gray.bmp')
  PIL.Image.fromarray(rgb[:4]).save(path / 'c_rgb.tif')
  PIL.Image.fromarray(gray[:3, :8]).save(path / 'd_gray.png')
  PIL.Image.fromarray(gray16).save(path / 'e_gray16.tif')
  (path / 'notes.txt').write_text('ignored')
  gray16_as_8 = np.round(gray16 / 65535 * 255).astype(np.uint8)
  return {
      'a_rgb.png': rgb,
      'b_gray.bmp': np.stack([gray] * 3, axis=-1),
      'c_rgb.tif': rgb[:4],
      'd_gray.png': np.stack([gray[:3, :8]] * 3, axis=-1),
      'e_gray16.tif': np.stack([gray16_as_8] * 3, axis=-1),
  }


def test_folder_source_has_exact_pixels(tmp_path, data_dir):
  expected = make_folder(tmp_path / 'imgs')
  source = sources.load_source(str(tmp_path / 'imgs'), data_dir=data_dir)
  assert all_names(source) == sorted(expected)
  for i in range(len(source)):
    example = source[i]
    np.testing.assert_array_equal(example['image'], expected[example['name']])


def test_folder_changes_are_picked_up(tmp_path, data_dir):
  expected = make_folder(tmp_path / 'imgs')
  assert len(sources.load_source(str(tmp_path / 'imgs'), data_dir=data_dir)) == 5
  new = RNG.integers(0, 256, (4, 4, 3), dtype=np.uint8)
  PIL.Image.fromarray(new).save(tmp_path / 'imgs' / 'a_rgb.png')
  # A distinct mtime even on file systems with coarse timestamps.
  os.utime(tmp_path / 'imgs' / 'a_rgb.png', ns=(1, 1))
  PIL.Image.fromarray(new).save(tmp_path / 'imgs' / 'f_new.png')
  source = sources.load_source(str(tmp_path / 'imgs'), data_dir=data_dir)
  assert all_names(source) == sorted([*expected, 'f_new.png'])
  np.testing.assert_array_equal(source[0]['image'], new)


def test_folder_fingerprint_is_stable(tmp_path):
  make_folder(tmp_path / 'imgs')
  first = folder_lib.folder_config(tmp_path / 'imgs')
  assert folder_lib.folder_config(tmp_path / 'imgs').name == first.name
  assert first.folder == str((tmp_path / 'imgs').resolve())


@pytest.mark.parametrize('make', ['missing', 'empty'])
def test_missing_or_empty_folder_fails_before_tfds(tmp_path, data_dir, make, monkeypatch):
  if make == 'empty':
    (tmp_path / 'imgs').mkdir()
    (tmp_path / 'imgs' / 'readme.md').write_text('no images')
  monkeypatch.setattr(folder_lib, 'ImageFolderImages', None)  # Never reached.
  with pytest.raises(CnnreconError) as excinfo:
    sources.load_source(str(tmp_path / 'imgs'), data_dir=data_dir)
  assert 'imgs' in str(excinfo.value) and '\n' not in str(excinfo.value)


def test_fake_image_is_named(tmp_path, data_dir):
  make_folder(tmp_path / 'imgs')
  (tmp_path / 'imgs' / 'fake.png').write_text('not a png')
  with pytest.raises(CnnreconError, match='fake.png is not a readable image'):
    sources.load_source(str(tmp_path / 'imgs'), data_dir=data_dir)


def test_tfds_catalog_without_tensorflow(data_dir, monkeypatch):
  monkeypatch.setitem(sys.modules, 'tensorflow', None)  # Makes `import tensorflow` fail.
  message = r"tfds:mnist needs TensorFlow: pip install 'cnnrecon\[tf\]'"
  with pytest.raises(CnnreconError, match=message):
    sources.load_source('tfds:mnist:test', data_dir=data_dir)


@pytest.mark.parametrize('spec, expected', [
    ('samples', sources.SourceSpec('samples', '', 'train')),
    ('samples:validation', sources.SourceSpec('samples', '', 'validation')),
    ('tfds:mnist', sources.SourceSpec('tfds', 'mnist', 'train')),
    ('tfds:div2k/bicubic_x2:validation',
     sources.SourceSpec('tfds', 'div2k/bicubic_x2', 'validation')),
    ('/data/imgs', sources.SourceSpec('folder', '/data/imgs', 'train')),
])
def test_parse_spec(spec, expected):
  assert sources.parse_spec(spec) == expected


def test_describe_source():
  assert sources.describe_source('samples:validation') == 'scikit-image samples (validation split)'
  assert sources.describe_source('/data/imgs') == 'image folder /data/imgs'


def test_default_data_dir(monkeypatch):
  monkeypatch.setenv('CNNRECON_DATA_DIR', '/somewhere')
  assert sources.default_data_dir() == '/somewhere'
  monkeypatch.delenv('CNNRECON_DATA_DIR')
  assert sources.default_data_dir().endswith(os.path.join('.cache', 'cnnrecon', 'tfds'))
