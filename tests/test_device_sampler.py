"""The device sampler (`cnnrecon.data.device_sampler`): patches equal numpy crops of their own image, the
dihedral transforms equal the host pipeline's, draws are uniform and a pure function of (seed, index)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from cnnrecon.data import device_sampler
from cnnrecon.data.images import to_channels
from cnnrecon.data.pipeline import dihedral, pad_to

RNG = np.random.default_rng(0)


def _source(shapes):
  return [{'image': RNG.integers(0, 256, shape, dtype=np.uint8), 'name': str(i)} for i, shape in enumerate(shapes)]


def _sampler(packed, *, seed=0, patch_size=8, augment=True):
  arrays = [jnp.asarray(a) for a in (packed.pixels, packed.starts, packed.heights, packed.widths)]
  return jax.jit(lambda indices: device_sampler.sample_patches(
      *arrays, indices, seed=seed, patch_size=patch_size, channels=packed.channels, augment=augment))


@pytest.mark.parametrize('transform', range(8))
def test_gathered_coordinates_equal_the_host_pipelines_dihedral(transform):
  patch = np.arange(5 * 5).reshape(5, 5)
  rows, cols = np.meshgrid(np.arange(5), np.arange(5), indexing='ij')
  source_rows, source_cols = device_sampler.dihedral_coordinates(jnp.asarray(rows), jnp.asarray(cols),
                                                                 jnp.asarray(transform), 5)
  np.testing.assert_array_equal(patch[np.asarray(source_rows), np.asarray(source_cols)],
                                dihedral(patch[..., None], transform)[..., 0])


@pytest.mark.parametrize('channels', [1, 3])
def test_every_patch_is_a_crop_of_its_own_image(channels):
  """Images of different sizes (one smaller than the patch: mirror-padded as the host pads it)."""
  source = _source([(37, 20, 3), (9, 61, 3), (6, 12, 3), (300, 257, 3)])
  packed = device_sampler.pack_images(source, channels=channels, patch_size=8)
  indices = jnp.arange(64)
  batch = jax.device_get(_sampler(packed)(indices))
  draws = jax.device_get(jax.vmap(lambda index: device_sampler.example_draws(
      0, index, heights=jnp.asarray(packed.heights), widths=jnp.asarray(packed.widths), patch_size=8))(indices))
  for i in range(64):
    image = to_channels(pad_to(source[draws['image'][i]]['image'], 8), channels)
    top, left = draws['top'][i], draws['left'][i]
    assert 0 <= top <= image.shape[0] - 8 and 0 <= left <= image.shape[1] - 8
    expected = dihedral(image[top:top + 8, left:left + 8], int(draws['transform'][i]))
    np.testing.assert_array_equal(np.round(batch['target'][i] * 255), expected)  # XLA's /255 may differ by an ulp
  assert batch['target'].shape == (64, 8, 8, channels) and batch['example_seed'].dtype == np.uint32


def test_patches_never_leave_their_image():
  """Each image holds only its own index: any pixel of a neighbour would show."""
  shapes = [(9 + 7 * i, 8 + 13 * (i % 3), 1) for i in range(12)]
  source = [{'image': np.full(shape, i, np.uint8)} for i, shape in enumerate(shapes)]
  packed = device_sampler.pack_images(source, channels=1, patch_size=8)
  indices = jnp.arange(2000)
  targets = np.asarray(_sampler(packed)(indices)['target']) * 255
  chosen = np.asarray(jax.vmap(lambda index: device_sampler.example_draws(
      0, index, heights=jnp.asarray(packed.heights), widths=jnp.asarray(packed.widths), patch_size=8)['image'])(indices))
  np.testing.assert_array_equal(np.round(targets), np.broadcast_to(chosen[:, None, None, None], targets.shape))


def test_the_stream_is_a_pure_function_of_seed_and_index():
  packed = device_sampler.pack_images(_source([(20, 30, 3), (40, 16, 3), (16, 16, 3)]), channels=3, patch_size=16)
  sample = _sampler(packed, patch_size=16)
  whole = jax.device_get(sample(jnp.arange(12)))
  halves = [jax.device_get(sample(jnp.arange(6) + start)) for start in (0, 6)]
  for name in ('target', 'example_seed'):
    np.testing.assert_array_equal(whole[name], np.concatenate([half[name] for half in halves]))
  other_seed = jax.device_get(_sampler(packed, seed=1, patch_size=16)(jnp.arange(12)))
  assert not np.array_equal(other_seed['example_seed'], whole['example_seed'])


def test_each_image_once_per_epoch_and_uniform_positions_and_transforms():
  """Chi-square tests with a fixed seed: corners over one image's 13 x 13 positions, the 8 transforms."""
  heights = jnp.full((5,), 20)
  draws = jax.device_get(jax.jit(jax.vmap(lambda index: device_sampler.example_draws(
      3, index, heights=heights, widths=heights, patch_size=8)))(jnp.arange(20_000)))
  epochs = draws['image'].reshape(-1, 5)
  assert all(sorted(epoch) == list(range(5)) for epoch in epochs)
  assert not all(np.array_equal(epochs[0], epoch) for epoch in epochs[1:10])  # reshuffled every epoch
  positions = np.bincount(draws['top'] * 13 + draws['left'], minlength=169)
  transforms = np.bincount(draws['transform'], minlength=8)
  assert positions.size == 169 and transforms.size == 8
  assert stats.chisquare(positions).pvalue > 0.01 and stats.chisquare(transforms).pvalue > 0.01
  assert stats.kstest(draws['example_seed'] / 2**31, 'uniform').pvalue > 0.01


def test_auto_picks_the_device_when_the_images_fit_and_a_resume_keeps_its_sampler():
  from cnnrecon.data.sources import load_source
  from cnnrecon.train.batches import resolve_sampler
  from conftest import smoke_config
  source = load_source('samples:train')
  packed = device_sampler.pack_images(source, channels=1, patch_size=24)
  assert device_sampler.packed_size(source, channels=1, patch_size=24) == packed.nbytes
  fits = smoke_config()
  assert fits.data.sampler == 'auto' and resolve_sampler(fits, None, source) == 'device'
  mebibytes = packed.nbytes // 2**20  # 2.8 MiB of bundled gray images
  assert resolve_sampler(smoke_config(data__device_memory_mb=mebibytes), None, source) == 'host'
  assert resolve_sampler(smoke_config(data__device_memory_mb=mebibytes + 1), None, source) == 'device'
  assert resolve_sampler(smoke_config(data__cache=False), None, source) == 'host'
  assert resolve_sampler(smoke_config(data__sampler='host'), None, source) == 'host'
  # A resumed run keeps what it used; runs saved before samplers existed used the host pipeline.
  assert resolve_sampler(fits, {'data': {'sampler': 'device'}}, source) == 'device'
  assert resolve_sampler(fits, {'data': {}}, source) == 'host'


def test_a_run_saved_before_samplers_differs_only_from_a_device_run():
  from cnnrecon.config import differing_keys
  from conftest import smoke_config
  old = smoke_config().to_dict()
  del old['data']['sampler'], old['data']['device_memory_mb'], old['data']['workers']
  assert differing_keys(old, smoke_config(data__sampler='host').to_dict()) == []
  assert differing_keys(old, smoke_config(data__sampler='device').to_dict()) == ['data.sampler']


@pytest.mark.parametrize('override, fragment', [
    ('--config.data.sampler=gpu', "data.sampler='gpu': use auto, device, host"),
    ('--config.data.device_memory_mb=0', 'data.device_memory_mb=0 must be a positive number of MiB'),
    ('--config.data.workers=-1', 'data.workers=-1 must be 0'),
])
def test_bad_sampler_options_are_one_line(tmp_path, capsys, override, fragment):
  from conftest import REPO, fails_with_one_line
  fails_with_one_line(capsys, ['train', '--config', str(REPO / 'experiments' / 'denoise_dncnn.py') + ':smoke',
                               override, '--workdir', tmp_path / 'run'], fragment)
  assert not (tmp_path / 'run').exists()


def test_host_pipeline_workers_give_the_same_batches_and_resume():
  from cnnrecon.data.pipeline import train_iterator
  from cnnrecon.data.sources import load_source
  source = load_source('samples:train')
  make = lambda workers: train_iterator(source, seed=0, patch_size=16, channels=1, batch_size=4, workers=workers)
  threads, processes = make(0), make(2)
  try:
    for _ in range(3):
      np.testing.assert_array_equal(next(threads)['target'], next(processes)['target'])
    state = processes.get_state()
    following = next(processes)
    resumed = make(2)
    resumed.set_state(state)
    np.testing.assert_array_equal(next(resumed)['target'], following['target'])
    np.testing.assert_array_equal(next(threads)['target'], following['target'])
  finally:
    for iterator in (processes, locals().get('resumed')):
      if iterator is not None:
        iterator.close()
