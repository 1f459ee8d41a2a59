"""Tests for cnnrecon.data.images against PIL and scikit-image."""

import pathlib

import numpy as np
import PIL.Image
import pydicom
import pytest
from pydicom.data import get_testdata_file
import skimage.color

from cnnrecon.data import images
from cnnrecon.errors import CnnreconError

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (7, 9, 3), dtype=np.uint8)
GRAY = RNG.integers(0, 256, (6, 5), dtype=np.uint8)


def assert_one_line_error(excinfo, *fragments):
  message = str(excinfo.value)
  assert '\n' not in message
  for fragment in fragments:
    assert fragment in message


def test_read_rgb_png_exact_values(tmp_path):
  PIL.Image.fromarray(RGB).save(tmp_path / 'x.png')
  image = images.read_image(tmp_path / 'x.png', channels=3)
  assert image.dtype == np.float32 and image.shape == (7, 9, 3)
  np.testing.assert_allclose(image, RGB / 255.0, rtol=0, atol=1e-7)
  np.testing.assert_array_equal(np.round(image * 255), RGB)


def test_read_gray_as_rgb_replicates(tmp_path):
  PIL.Image.fromarray(GRAY).save(tmp_path / 'g.bmp')
  image = images.read_image(tmp_path / 'g.bmp', channels=3)
  assert image.shape == (6, 5, 3)
  for channel in range(3):
    np.testing.assert_allclose(image[..., channel], GRAY / 255.0, rtol=0, atol=1e-7)


def test_read_rgb_as_gray_matches_rgb2gray(tmp_path):
  PIL.Image.fromarray(RGB).save(tmp_path / 'x.png')
  image = images.read_image(tmp_path / 'x.png', channels=1)
  assert image.dtype == np.float32 and image.shape == (7, 9, 1)
  np.testing.assert_allclose(image[..., 0], skimage.color.rgb2gray(RGB), atol=1e-6)


@pytest.mark.parametrize('name', ['x16.tif', 'x16.png'])
def test_read_16_bit(tmp_path, name):
  pixels = (np.arange(12 * 10).reshape(12, 10) * 547).astype(np.uint16)
  PIL.Image.fromarray(pixels).save(tmp_path / name)
  image = images.read_image(tmp_path / name, channels=1)
  np.testing.assert_allclose(image[..., 0], pixels / 65535.0, rtol=0, atol=1e-7)


def test_read_rgba_drops_alpha(tmp_path):
  rgba = np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)])
  PIL.Image.fromarray(rgba).save(tmp_path / 'a.png')
  image = images.read_image(tmp_path / 'a.png', channels=3)
  np.testing.assert_array_equal(np.round(image * 255), RGB)


def test_read_missing_file_is_one_line_error(tmp_path):
  with pytest.raises(CnnreconError) as excinfo:
    images.read_image(tmp_path / 'missing.png', channels=3)
  assert_one_line_error(excinfo, 'missing.png', 'does not exist')


def test_read_text_file_named_png_is_one_line_error(tmp_path):
  (tmp_path / 'x.png').write_text('not an image\nat all\n')
  with pytest.raises(CnnreconError) as excinfo:
    images.read_image(tmp_path / 'x.png', channels=3)
  assert_one_line_error(excinfo, 'x.png', 'not a readable image')


def test_read_bad_channels():
  with pytest.raises(CnnreconError, match='channels must be 1'):
    images.read_image('whatever.png', channels=2)


def test_to_channels_uint8_gray_is_rounded_luminance():
  gray = images.to_channels(RGB, 1)
  assert gray.dtype == np.uint8 and gray.shape == (7, 9, 1)
  expected = np.round(skimage.color.rgb2gray(RGB) * 255)
  np.testing.assert_array_equal(gray[..., 0], expected)


def test_to_channels_keeps_float_dtype_and_replicates():
  gray = (GRAY / 255.0).astype(np.float32)
  rgb = images.to_channels(gray, 3)
  assert rgb.dtype == np.float32 and rgb.shape == (6, 5, 3)
  np.testing.assert_array_equal(rgb, np.stack([gray] * 3, axis=-1))
  np.testing.assert_array_equal(images.to_channels(gray[..., None], 1), gray[..., None])


def test_list_images_sorted_and_filtered(tmp_path):
  for name in ['b.PNG', 'a.jpg', 'c.tiff', 'notes.txt', '._a.png']:
    (tmp_path / name).write_bytes(b'')
  (tmp_path / 'sub.png').mkdir()
  assert [p.name for p in images.list_images(tmp_path)] == ['a.jpg', 'b.PNG', 'c.tiff']


def test_list_images_missing_and_empty_folders(tmp_path):
  with pytest.raises(CnnreconError) as excinfo:
    images.list_images(tmp_path / 'nope')
  assert_one_line_error(excinfo, 'nope', 'does not exist', 'png/jpg/bmp/tif')
  (tmp_path / 'readme.txt').write_text('hi')
  with pytest.raises(CnnreconError) as excinfo:
    images.list_images(tmp_path)
  assert_one_line_error(excinfo, 'no image files')


def test_write_image_rounds_clips_and_makes_folders(tmp_path):
  image = np.array([[[-0.5], [0.2]], [[0.5], [1.5]]], np.float32)
  path = tmp_path / 'deep' / 'er' / 'g.png'
  images.write_image(path, image)
  with PIL.Image.open(path) as saved:
    assert saved.format == 'PNG' and saved.mode == 'L'
    np.testing.assert_array_equal(np.asarray(saved), [[0, 51], [128, 255]])


def test_write_then_read_rgb_round_trips(tmp_path):
  image = RGB.astype(np.float32) / 255
  images.write_image(tmp_path / 'c.png', image)
  with PIL.Image.open(tmp_path / 'c.png') as saved:
    assert saved.mode == 'RGB'
    np.testing.assert_array_equal(np.asarray(saved), RGB)


def test_to_channels_bt601_y_is_matlabs_rgb2ycbcr_luma():
  """`data.gray='bt601_y'`: Y = 16 + 65.481 R + 128.553 G + 24.966 B (R, G, B in [0, 1]), MATLAB's rgb2ycbcr."""
  rgb = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
  expected = 16.0 + rgb.astype(np.float64) / 255.0 @ np.array([65.481, 128.553, 24.966])
  np.testing.assert_allclose(images.to_channels(rgb, 1, gray='bt601_y')[..., 0], np.round(expected), atol=0)
  as_float = images.to_channels(rgb.astype(np.float32) / 255.0, 1, gray='bt601_y')[..., 0]
  np.testing.assert_allclose(as_float, expected / 255.0, atol=1e-6)
  assert not np.allclose(images.to_channels(rgb, 1)[..., 0], np.round(expected))  # not rgb2gray's luminance
  with pytest.raises(CnnreconError, match="data.gray='y'"):
    images.to_channels(rgb, 1, gray='y')


def test_read_dicom_ct_slice_maps_hounsfield_units_linearly(tmp_path):
  """pydicom's shipped CT slice: stored values * slope + intercept (HU), air -1000 -> 0, +1000 -> 1."""
  path = get_testdata_file('CT_small.dcm')
  dataset = pydicom.dcmread(path)
  hounsfield = dataset.pixel_array * float(dataset.RescaleSlope) + float(dataset.RescaleIntercept)
  image = images.read_image(path, channels=1)
  assert image.dtype == np.float32 and image.shape == (128, 128, 1)
  np.testing.assert_allclose(image[..., 0], np.clip((hounsfield + 1000) / 2000, 0, 1), atol=1e-6)
  assert not images.holds_color(path)
  (tmp_path / 'slice.dcm').write_bytes(pathlib.Path(path).read_bytes())
  assert images.list_images(tmp_path) == [tmp_path / 'slice.dcm']


def test_read_broken_dicom_is_one_line_error(tmp_path):
  (tmp_path / 'x.dcm').write_text('not dicom')
  with pytest.raises(CnnreconError) as excinfo:
    images.read_image(tmp_path / 'x.dcm', channels=1)
  assert_one_line_error(excinfo, 'x.dcm', 'not a readable DICOM image', 'single-frame .dcm')
