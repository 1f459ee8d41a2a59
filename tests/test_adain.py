"""AdaIN arbitrary-style transfer: the op, the decoder, training through the spine, `stylize --method adain`."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data

from cnnrecon import cli
from cnnrecon.style import losses
from cnnrecon.evaluation import train_and_evaluate
from cnnrecon.export import load
from cnnrecon.export.writer import export_workdir
from cnnrecon.models.adain import AdaINDecoder
from cnnrecon.style.adain import load_adain_net
from cnnrecon.train import checkpoint, loop
from conftest import REPO, fails_with_one_line, smoke_config

OLD_GAUSSIAN_WORKDIR = REPO / 'tests' / 'data' / 'workdir_before_issue7'  # a DnCNN trained for task gaussian


def test_adain_op_matches_the_numpy_closed_form():
  rng = np.random.default_rng(0)
  content = rng.normal(2.0, 3.0, (2, 5, 4, 6)).astype(np.float32)
  style = rng.normal(-1.0, 0.5, (2, 3, 7, 6)).astype(np.float32)
  eps = 1e-5
  c_mean, c_std = content.mean((1, 2), keepdims=True), np.sqrt(content.var((1, 2), keepdims=True) + eps)
  s_mean, s_std = style.mean((1, 2), keepdims=True), np.sqrt(style.var((1, 2), keepdims=True) + eps)
  want = s_std * (content - c_mean) / c_std + s_mean
  got = np.asarray(losses.adain(jnp.asarray(content), jnp.asarray(style), eps=eps))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got.mean((1, 2)), style.mean((1, 2)), atol=1e-5)  # the style's statistics


def test_decoder_upsamples_eight_times_to_rgb_in_unit_range():
  decoder = AdaINDecoder(features=4)
  # Random params of the right shapes: a jitted init would spend seconds compiling its random draws.
  shapes = jax.eval_shape(decoder.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 2, 2, 512), jnp.float32))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(lambda leaf: rng.normal(0, 0.05, leaf.shape).astype(np.float32), shapes)
  assert variables['params']['ReflectConv_0']['Conv_0']['kernel'].shape == (3, 3, 512, 16)  # 512 -> 4 x features
  apply = jax.jit(decoder.apply)
  for shape in [(1, 2, 2, 512), (2, 3, 5, 512)]:
    images = apply(variables, jax.random.normal(jax.random.key(1), shape))
    assert images.shape == (shape[0], 8 * shape[1], 8 * shape[2], 3)
    assert float(images.min()) >= 0 and float(images.max()) <= 1


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """The smoke run (6 steps, random VGG), trained and reported through `train_and_evaluate`."""
  workdir = tmp_path_factory.mktemp('adain')
  summary = train_and_evaluate(smoke_config('style_adain'), workdir, progress=False)
  assert summary['step'] == 6
  return workdir


@pytest.fixture
def pictures(tmp_path):
  from PIL import Image
  folder = tmp_path / 'pictures'
  folder.mkdir()
  Image.fromarray(data.astronaut()[::8, ::8]).save(folder / 'content.png')
  Image.fromarray(data.coffee()[::10, ::10]).save(folder / 'unseen_style.png')
  return folder


def test_training_reports_training_and_unseen_styles(trained):
  rows = json.loads((trained / 'eval' / 'summary.json').read_text())
  assert [name for name, row in rows.items() if not row['seen']] == ['woman_with_hat_matisse']
  assert all(np.isfinite(row['content']) and np.isfinite(row['style']) for row in rows.values())
  report = (trained / 'report.md').read_text()
  assert '| woman_with_hat_matisse | no (unseen) |' in report and (trained / 'grid.png').is_file()


def test_same_seed_gives_identical_params(trained, tmp_path):
  loop.train(smoke_config('style_adain'), tmp_path, stop_at=3, progress=False)
  params = [jax.tree.leaves(checkpoint.load_variables(workdir, step=3)[2]['params']) for workdir in (trained, tmp_path)]
  for a, b in zip(*params):
    np.testing.assert_array_equal(a, b)


def test_stylize_cli_with_unseen_styles_writes_three_files(trained, pictures, tmp_path):
  from cnnrecon import cli
  argv = ['stylize', pictures / 'content.png', '--method', 'adain', '--workdir', trained, '--style',
          pictures / 'unseen_style.png', '--style', 'woman_with_hat_matisse', '--style-weights', '0.6,0.4',
          '--size', '60', '--alpha', '0.8', '--preserve-color', '--out', tmp_path / 'out']
  assert cli.main([str(arg) for arg in argv]) == 0
  assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == [
      'content.png', 'content_losses.json', 'content_side_by_side.png']
  scores = json.loads((tmp_path / 'out' / 'content_losses.json').read_text())
  assert scores['alpha'] == 0.8 and scores['style_weights'] == [0.6, 0.4]
  assert all(np.isfinite(scores[key]) for key in ('content', 'style', 'seconds'))


def test_alpha_zero_decodes_the_content_features_alone(trained):
  net = load_adain_net(trained)
  content, style = data.astronaut()[::16, ::16] / 255.0, data.coffee()[::16, ::16] / 255.0
  assert content.shape[:2] == (32, 32)  # a multiple of 8: no padding, so the closed form below is exact
  alone = np.asarray(net.decode(net.encode(content)[net.loss.content_layer]))[0]
  np.testing.assert_allclose(net(content, [style], [1.0], alpha=0.0), alone, atol=1e-6)
  assert np.abs(net(content, [style], [1.0], alpha=1.0) - alone).max() > 1e-3


def test_stylize_adain_errors_are_one_line(trained, pictures, tmp_path, capsys):
  gaussian = tmp_path / 'gaussian'
  shutil.copytree(OLD_GAUSSIAN_WORKDIR, gaussian)
  base = ['stylize', pictures / 'content.png', '--method', 'adain', '--style', pictures / 'unseen_style.png',
          '--size', '32', '--out', tmp_path / 'out']
  fails_with_one_line(capsys, base + ['--workdir', trained, '--alpha', '1.5'], '--alpha 1.5')
  fails_with_one_line(capsys, base + ['--workdir', trained, '--alpha', '-0.1'], 'between 0')
  fails_with_one_line(capsys, base + ['--workdir', gaussian], "task 'gaussian'", 'experiments/style_adain.py')
  fails_with_one_line(capsys, base, '--method adain needs --workdir')
  no_style = base[:4] + ['--workdir', trained, '--out', tmp_path / 'out']
  fails_with_one_line(capsys, no_style, 'needs at least one --style')
  assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())


def test_adain_config_mistakes_are_one_line(tmp_path, capsys):
  base = ['train', '--config', 'experiments/style_adain.py:smoke', '--workdir', tmp_path / 'w']
  fails_with_one_line(capsys, base + ['--config.model.name=dncnn'], 'model.name=adain_decoder')
  fails_with_one_line(capsys, base + ['--config.data.patch_size=36'], 'multiple of 8')
  fails_with_one_line(capsys, base + ['--config.task.adain.styles=("no_such_painting",)'], 'not found')
  fails_with_one_line(capsys, base + ['--config.task.adain.content_layer=relu3_1'], 'block-4 layer')


def test_eval_of_an_adain_workdir_lists_training_and_unseen_styles(trained, pictures, tmp_path):
  import csv
  from cnnrecon import cli
  out = tmp_path / 'eval'
  assert cli.main(['eval', '--workdir', str(trained), '--data', str(pictures), '--out', str(out)]) == 0
  rows = list(csv.DictReader((out / 'results.csv').open()))
  unseen = {row['style_image'] for row in rows if row['seen'] == 'False'}
  assert unseen == {'woman_with_hat_matisse'}
  assert {row['image'] for row in rows} == {'content.png', 'unseen_style.png'}
  assert all(float(row['style_loss']) > 0 and float(row['content_loss']) >= 0 for row in rows)
  assert '| woman_with_hat_matisse | no (unseen) |' in (out / 'results.md').read_text()


def test_comparison_with_gatys_scores_both_on_gram_and_mean_std_losses(trained, tmp_path):
  from cnnrecon.style.adain import load_adain_net
  from cnnrecon.style.compare import describe_figures, write_adain_vs_gatys
  net = load_adain_net(trained)
  content = data.astronaut()[::16, ::16].astype(np.float32) / 255.0  # 32 x 32
  style = data.coffee()[::12, ::12][:32, :32].astype(np.float32) / 255.0
  figures = write_adain_vs_gatys(net, [content], style, tmp_path, steps=3)
  assert (tmp_path / 'adain_vs_gatys.png').is_file()
  # loss_terms scores any image as the training loss does: on the decoder's own output it is score()'s term.
  own = net.loss_terms(net(content, [style], [1.0]), content, [style], [1.0])
  assert own['style'] == pytest.approx(figures['adain']['style_mean_std'], rel=1e-5)
  assert figures['gatys']['style_mean_std'] > 0 and figures['gatys']['seconds'] > figures['adain']['seconds']
  assert "on AdaIN's mean/std style loss" in describe_figures(figures, 1, 32, method='adain')


def test_exported_net_equals_the_trained_one_and_runs_from_the_cli(trained, pictures, tmp_path, capsys):
  net = load_adain_net(trained)
  exported = load(export_workdir(trained, tmp_path / 'hlo'))
  assert [item['name'] for item in exported.manifest['inputs']] == ['content', 'style', 'alpha']
  rng = np.random.default_rng(0)
  content, style = rng.random((32, 48, 3), np.float32), rng.random((40, 24, 3), np.float32)
  got = exported(content[None], style[None], np.float32(0.6))[0]
  np.testing.assert_allclose(got, net(content, [style], [1.0], 0.6), atol=1e-6)
  argv = ['stylize', pictures / 'content.png', '--method', 'adain', '--exported', tmp_path / 'hlo', '--style',
          pictures / 'unseen_style.png', '--out', tmp_path / 'out']
  assert cli.main([str(arg) for arg in argv]) == 0
  assert (tmp_path / 'out' / 'content.png').is_file()
  fails_with_one_line(capsys, argv[:-1] + [tmp_path / 'out2', '--style', pictures / 'content.png'],
                      'an exported AdaIN net takes one --style image, not 2')


def test_adain_workdir_refusals_are_one_line_and_change_nothing(trained, pictures, tmp_path, capsys):
  content, style = pictures / 'content.png', pictures / 'unseen_style.png'
  fails_with_one_line(capsys, ['denoise', content, '--workdir', trained, '--out', tmp_path / 'd'],
                      'this is a style net (adain)', 'style workdir',
                      '`cnnrecon stylize CONTENT --method adain --workdir RUN --out OUT`')
  assert not (tmp_path / 'd').exists()
  base = ['stylize', content, '--method', 'adain', '--style', style, '--workdir', trained]
  # The export's rule: sides padded to a multiple of 8 of at least 16 px (8 px is too small, 9 pads to 16).
  fails_with_one_line(capsys, [*base, '--size', '8', '--out', tmp_path / 's'], '--size 8 makes', 'at least 9 px',
                      'multiple of 8, at least 16 px', 'pass --size')
  assert not (tmp_path / 's').exists()
  # A hard link from the output folder to the content (or the style) is the input itself.
  out = tmp_path / 'out'
  out.mkdir()
  os.link(content, out / 'content.png')
  before = {path: path.read_bytes() for path in [content, style]}
  fails_with_one_line(capsys, [*base, '--size', '32', '--out', out, '--overwrite'],
                      f'writing {out / "content.png"} would replace the input {content}', 'hard or symbolic link')
  (out / 'content.png').unlink()
  os.link(style, out / 'content_side_by_side.png')
  fails_with_one_line(capsys, [*base, '--size', '32', '--out', out, '--overwrite'],
                      f'writing {out / "content_side_by_side.png"} would replace {style}, which this command reads too')
  assert {path: path.read_bytes() for path in [content, style]} == before
