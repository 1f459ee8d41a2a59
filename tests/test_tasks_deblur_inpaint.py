"""The deblur and inpaint_regions tasks: smoke runs with their baseline rows, the mask channel, the region
masks (purity, jit / vmap, coverage), restoring an RGBA PNG, the baseline rules and one-line errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.util
from PIL import Image

from conftest import REPO, fails_with_one_line, smoke_config, trained_smoke_run
from cnnrecon import cli
from cnnrecon.ops import Blur, RegionMask, observe_batch, random_boxes_mask
from cnnrecon.ops.masks import fill_holes
from cnnrecon.tasks import build_task
from cnnrecon.tasks.deblur import kernel_variance, richardson_lucy_iterations, wiener_balance
from cnnrecon.tasks.inpaint_regions import RegionInpainting

REGIONS_SMOKE = str(REPO / 'experiments' / 'inpaint_unet.py') + ':regions_smoke'
DEBLUR_SMOKE = str(REPO / 'experiments' / 'deblur_unet.py') + ':smoke'


@pytest.fixture(scope='module')
def regions_run(tmp_path_factory):
  """The finished `inpaint_unet.py:regions_smoke` run (gray images, 1 + 1 input channels), shared with test_spine."""
  return trained_smoke_run(tmp_path_factory, 'inpaint_unet', 'regions_smoke')


@pytest.fixture(scope='module')
def deblur_run(tmp_path_factory):
  """The finished `deblur_unet.py:smoke` run, shared with test_spine."""
  return trained_smoke_run(tmp_path_factory, 'deblur_unet')


@pytest.fixture
def small_images(tmp_path):
  """Two 48x64 gray crops: evaluations on them compile for one small size."""
  folder = tmp_path / 'small_images'
  folder.mkdir()
  for index, image in enumerate((skimage.data.camera()[100:148, 200:264], skimage.data.coins()[80:128, 100:164])):
    Image.fromarray(image).save(folder / f'{index}.png')
  return folder


@pytest.mark.parametrize('run, observed, baselines', [
    ('deblur_run', 'blurred', {'wiener', 'richardson_lucy'}),
    ('regions_run', 'masked', {'biharmonic'}),
])
def test_smoke_runs_report_the_model_beside_their_baselines(request, run, observed, baselines):
  workdir = request.getfixturevalue(run)
  summary = json.loads((workdir / 'eval' / 'summary.json').read_text())
  assert set(summary) == {'model', observed, 'baselines'} and set(summary['baselines']) == baselines
  assert all(np.isfinite(row['psnr']) for row in [summary['model'], *summary['baselines'].values()])
  report = (workdir / 'report.md').read_text()
  assert all(f'| {name} |' in report for name in [observed, *baselines, 'model'])
  # The baselines really restore: better than their input on the held-out images.
  assert min(row['psnr'] for row in summary['baselines'].values()) > summary[observed]['psnr'] + 1
  assert (workdir / 'grid.png').is_file()


def test_the_mask_channel_reaches_the_model(regions_run):
  from cnnrecon.evaluation import load_trained
  model = load_trained(regions_run)
  task = build_task(model.config)
  example = jax.jit(task.prepare)(jax.random.split(jax.random.key(0), 2), jnp.full((2, 32, 40, 1), 0.5))
  assert example['observed'].shape == example['model_input'].shape == (2, 32, 40, 2)
  assert example['initial_estimate'].shape == (2, 32, 40, 1)
  mask = example['model_input'][..., -1]
  assert 0 < float(jnp.mean(mask)) < 1 and set(np.unique(mask)) == {0.0, 1.0}
  np.testing.assert_array_equal(np.asarray(example['initial_estimate'][..., 0]), 0.5 * np.asarray(mask))  # holes 0
  # The net sees the holes filled from their surroundings (a flat image stays flat), then the mask.
  np.testing.assert_allclose(np.asarray(example['model_input'][..., 0]), 0.5, atol=1e-6)
  assert task.sample_model_input((4, 32, 32, 1)).shape == (4, 32, 32, 2)
  assert model.variables['params']['ConvBlock_0']['Conv_0']['kernel'].shape[2] == 2  # image + mask in
  assert model(np.asarray(example['model_input'])).shape == (2, 32, 40, 1)  # the image's channels out
  assert task.sample_model_input((1, 16, 16, 3)).shape == (1, 16, 16, 4)  # RGB: 3 + 1
  assert RegionInpainting.observation_input(model.config).channels == 2


def test_an_observation_does_not_depend_on_its_batch_under_jit_and_vmap():
  operator = RegionMask(kind='both')  # boxes and strokes
  keys = jax.random.split(jax.random.key(1), 4)
  images = jax.random.uniform(jax.random.key(7), (4, 40, 48, 1))
  batch = jax.jit(lambda k, x: observe_batch(operator, k, x))(keys, images)  # jit of vmap
  assert batch.shape == (4, 40, 48, 2) and batch.dtype == jnp.float32
  for index in (0, 2):
    alone = operator.apply(keys[index], images[index])  # eager, one example
    np.testing.assert_array_equal(np.asarray(batch[index]), np.asarray(alone))
  np.testing.assert_array_equal(np.asarray(operator.apply(keys[0], images[0])), np.asarray(batch[0]))  # again
  assert not np.array_equal(batch[0, ..., -1], batch[1, ..., -1])  # each example draws its own holes
  np.testing.assert_array_equal(np.asarray(batch[..., :1]), np.asarray(images * batch[..., 1:]))


def test_one_box_is_one_rectangle_of_an_allowed_size():
  one_box = jax.jit(lambda key: random_boxes_mask(key, 40, 50, count=1, min_size=5, max_size=12))
  for seed in range(5):
    holes = np.asarray(one_box(jax.random.key(seed)))[..., 0] == 0
    rows, cols = np.nonzero(holes)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert holes.sum() == height * width and 5 <= height <= 12 and 5 <= width <= 12


def test_the_masks_cover_a_sensible_fraction_at_every_size():
  operators = {kind: RegionMask(kind=kind) for kind in ('boxes', 'strokes', 'both')}

  @jax.jit
  def masks_of(keys_64, keys_192):  # one program for every kind and size (compiling dominates this test)
    masks = {(kind, 64): jax.vmap(lambda key, op=op: op.mask(key, 64, 64))(keys_64) for kind, op in operators.items()}
    return {**masks, ('both', 192): jax.vmap(lambda key: operators['both'].mask(key, 192, 192))(keys_192)}

  fractions = {}
  for name, masks in masks_of(jax.random.split(jax.random.key(3), 32), jax.random.split(jax.random.key(4), 4)).items():
    masks = np.asarray(masks)
    assert set(np.unique(masks)) == {0.0, 1.0}
    per_example = 1 - masks.mean(axis=(1, 2, 3))
    assert per_example.min() > 0 and per_example.max() < 0.5, (name, per_example)  # never intact nor mostly gone
    fractions[name] = per_example.mean()
  assert 0.03 < fractions['boxes', 64] < 0.12 and 0.03 < fractions['strokes', 64] < 0.14, fractions
  assert 0.07 < fractions['both', 64] < 0.25, fractions
  assert abs(fractions['both', 64] - fractions['both', 192]) < 0.03, fractions  # counts per 64x64 px: size-free


def test_the_hole_fill_keeps_known_pixels_and_nearly_reproduces_harmonic_images():
  """The biharmonic fill reproduces constant and linear images exactly (scikit-image's does to 2e-5 here); the
  model's input fill (normalized convolution, then CG steps towards it) gets within 0.01."""
  rows, cols = np.mgrid[0:48, 0:64].astype(np.float32)
  ramp = np.stack([0.2 + 0.5 * cols / 63 + 0.2 * rows / 47, 0.9 - 0.6 * rows / 47], axis=-1)
  mask = np.ones((48, 64, 1), np.float32)
  mask[10:30, 20:44] = 0
  fill = jax.jit(fill_holes)
  filled = np.asarray(fill(jnp.asarray(ramp * mask + (1 - mask) * 7.0), jnp.asarray(mask)))  # hole values ignored
  np.testing.assert_array_equal(filled * mask, ramp * mask)
  assert np.abs(filled - ramp).max() < 0.01
  mask[40:, :6] = 0  # a hole at the corner too: the image's border is no hole (the fill is flat across it)
  constant = np.asarray(fill(jnp.full((48, 64, 2), 0.3) * mask, jnp.asarray(mask)))
  np.testing.assert_allclose(constant, 0.3, atol=1e-6)
  batched = jax.vmap(fill)(jnp.stack([ramp, ramp[::-1]]), jnp.stack([mask, mask]))
  np.testing.assert_allclose(np.asarray(batched[0]), np.asarray(fill(jnp.asarray(ramp), jnp.asarray(mask))), atol=1e-5)
  assert np.isfinite(float(jax.grad(lambda image: jnp.sum(fill(image, jnp.asarray(mask)) ** 2))(jnp.asarray(ramp)).sum()))


def test_the_hole_fill_converges_to_scikit_images_biharmonic_inpainting_on_a_whole_image():
  """On a 192x256 photo with the regions recipe's holes the fill runs its CG steps to convergence and lands
  on scikit-image's `inpaint_biharmonic` (a fixed 100 steps stopped about 0.4 dB short on 512x512 images)."""
  from skimage.metrics import peak_signal_noise_ratio
  from skimage.restoration import inpaint_biharmonic
  from cnnrecon.config import load_config
  clean = skimage.util.img_as_float32(skimage.data.camera()[96:288, 128:384])[..., None]
  task = build_task(load_config(REGIONS_SMOKE))
  observed = np.asarray(observe_batch(task.operator, jax.random.key(3)[None], jnp.asarray(clean[None]))[0])
  image, mask = observed[..., :1], observed[..., 1:]
  reference = inpaint_biharmonic(image[..., 0].astype(np.float64), mask[..., 0] < 0.5)[..., None]
  filled = np.asarray(jax.jit(fill_holes)(jnp.asarray(image), jnp.asarray(mask)))
  psnr = lambda estimate: peak_signal_noise_ratio(clean, np.clip(estimate, 0, 1), data_range=1.0)
  assert 0.05 < 1 - mask.mean() < 0.3
  assert abs(psnr(filled) - psnr(reference)) < 0.05, (psnr(filled), psnr(reference))
  holes = mask[..., 0] < 0.5
  assert np.abs(filled - reference)[holes].mean() < 0.01  # pixel for pixel, not only on average


@pytest.mark.parametrize('sigma', [1.0, 8.0])
def test_the_fills_blur_is_scipys_gaussian_filter_with_zeros_outside(sigma):
  """The banded-matrix blur equals `scipy.ndimage.gaussian_filter` (constant 0 outside, 3-sigma radius),
  also where the kernel is wider than the image."""
  from scipy.ndimage import gaussian_filter
  from cnnrecon.ops.masks import _gaussian_blur
  image = np.random.default_rng(0).random((40, 23, 2), dtype=np.float32)
  reference = gaussian_filter(image.astype(np.float64), sigma=(sigma, sigma, 0), mode='constant', truncate=3.0)
  np.testing.assert_allclose(np.asarray(_gaussian_blur(jnp.asarray(image), sigma)), reference, atol=1e-6)


def test_restore_reads_the_alpha_channel_as_the_mask(regions_run, tmp_path, capsys):
  camera = skimage.data.camera()[200:264, 200:264]
  alpha = np.full(camera.shape, 255, np.uint8)
  alpha[20:36, 10:30] = 0
  rgba = np.dstack([camera, camera, camera, alpha])
  Image.fromarray(rgba, 'RGBA').save(tmp_path / 'rgba.png')
  Image.fromarray(np.dstack([camera, alpha]), 'LA').save(tmp_path / 'gray_alpha.png')
  observation = RegionInpainting.read_observation(tmp_path / 'gray_alpha.png', 1)
  assert observation.shape == (64, 64, 2)
  np.testing.assert_array_equal(observation[..., 1], (alpha > 0).astype(np.float32))
  assert observation[25, 15, 0] == 0 and observation[0, 0, 0] == pytest.approx(camera[0, 0] / 255)
  out = tmp_path / 'out'
  assert cli.main(['denoise', str(tmp_path / 'rgba.png'), str(tmp_path / 'gray_alpha.png'),
                   '--workdir', str(regions_run), '--out', str(out)]) == 0
  restored = [np.asarray(Image.open(out / name)) for name in ('rgba.png', 'gray_alpha.png')]
  assert all(image.shape == (64, 64) for image in restored)
  np.testing.assert_array_equal(restored[0], restored[1])  # the same gray observation either way
  capsys.readouterr()
  Image.fromarray(camera).save(tmp_path / 'no_alpha.png')
  fails_with_one_line(capsys, ['denoise', tmp_path / 'no_alpha.png', '--workdir', regions_run,
                               '--out', tmp_path / 'out2'], 'no_alpha.png has no alpha channel', 'alpha 0')
  assert not (tmp_path / 'out2').exists()


def test_eval_changes_the_kernel_and_a_region_model_refuses_other_tasks(deblur_run, regions_run, small_images,
                                                                        tmp_path, capsys):
  assert cli.main(['eval', '--workdir', str(deblur_run), '--kernel', 'motion', '--no-baselines',
                   '--data', str(small_images), '--out', str(tmp_path / 'motion')]) == 0
  assert 'motion blur length=15' in (tmp_path / 'motion' / 'results.md').read_text()
  capsys.readouterr()
  fails_with_one_line(capsys, ['eval', '--workdir', regions_run, '--task', 'deblur'],
                      'takes the image plus its mask channel', 'leave --task out')


def test_the_deconvolution_rules():
  assert wiener_balance(Blur(sigma=2.0)) == pytest.approx(400 * (2 / 255) ** 2)
  assert wiener_balance(Blur(sigma=0.0)) == wiener_balance(Blur(sigma=0.5)) > 0  # noise-free: the floor
  assert wiener_balance(Blur(kernel='motion', sigma=2.0)) == pytest.approx(0.4 + 400 * (2 / 255) ** 2)
  assert kernel_variance(Blur(kernel_sigma=1.6).kernel_array) == pytest.approx(1.6 ** 2, rel=1e-3)
  assert richardson_lucy_iterations(Blur(kernel_sigma=1.6, sigma=2.0)) == 16
  assert richardson_lucy_iterations(Blur(kernel_sigma=1.6, sigma=0.0)) == 108
  assert richardson_lucy_iterations(Blur(kernel='motion', sigma=2.0)) == 3
  task = build_task(smoke_config('deblur_unet'))
  assert task.labels.observed == 'blurred' and task.labels.estimate == 'deblurred'
  assert task.operator.boundary == 'symmetric' and task.operator.sigma == 2.0


@pytest.mark.parametrize('array, fragment', [
    (np.ones(5), 'not a non-empty 2-D one'),
    (np.array([[0.5, -0.1], [0.3, 0.3]]), 'negative entries'),
    (np.zeros((3, 3)), 'sums to 0'),
])
def test_a_bad_kernel_file_is_one_line(tmp_path, capsys, array, fragment):
  np.save(tmp_path / 'kernel.npy', array)
  fails_with_one_line(capsys, ['train', '--config', DEBLUR_SMOKE, '--workdir', tmp_path / 'w', '--no-progress',
                               f'--config.task.deblur.kernel={tmp_path / "kernel.npy"}'],
                      'task.deblur.kernel', fragment, '2-D non-negative array that sums to > 0')
  assert not (tmp_path / 'w').exists()


@pytest.mark.parametrize('override, fragments', [
    ('kind=circles', ('task.inpaint_regions.kind=', 'boxes, strokes, both')),
    ('box_min=0', ('task.inpaint_regions.box_min=0', 'positive integer')),
    ('stroke_max_width=-2.0', ('task.inpaint_regions.stroke_max_width=-2', '> 0')),
    ('box_max=4', ('box_min=8 is larger than box_max=4',)),
])
def test_bad_region_options_are_one_line(tmp_path, capsys, override, fragments):
  fails_with_one_line(capsys, ['train', '--config', REGIONS_SMOKE, '--workdir', tmp_path / 'w', '--no-progress',
                               f'--config.task.inpaint_regions.{override}'], *fragments)
  assert not (tmp_path / 'w').exists()
