"""Lose nothing, part 2 (issue 18): outputs by file identity, a style workdir given to denoise, the divergence
line, the gray-conversion notice and stylize's output names; each refusal is one line, and what existed keeps
its bytes. (The style nets' size rule and their denoise refusal are tested with their trained nets, in
test_fast_style.py and test_adain.py.)"""

import hashlib
import os
import pathlib
import shutil
import types

import ml_collections
import numpy as np
import pytest
from PIL import Image

from cnnrecon import cli, safety
from cnnrecon.errors import CnnreconError
from cnnrecon.tasks import TASKS
from conftest import fails_with_one_line

SMOKE = ['--config', 'experiments/denoise_dncnn.py:smoke', '--no-progress']


def _hashes(*folders: pathlib.Path) -> dict[str, str]:
  """sha256 of every file under `folders` (the workdir lock excepted), by path."""
  return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for folder in folders
          for path in sorted(pathlib.Path(folder).rglob('*')) if path.is_file() and path.name != '.cnnrecon.lock'}


def _png(path: pathlib.Path, *, color: bool = False, seed: int = 0) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  shape = (32, 32, 3) if color else (32, 32)
  Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(path)
  return path


# -------------------------------------------------------------------- item 1: outputs never replace inputs

@pytest.mark.parametrize('link', [os.link, os.symlink], ids=['hard link', 'symbolic link'])
def test_denoise_refuses_an_output_that_is_its_input_by_another_name(link, dncnn_smoke_run, tmp_path, capsys):
  image = _png(tmp_path / 'in' / 'x.png')
  (tmp_path / 'out').mkdir()
  link(image, tmp_path / 'out' / 'x.png')
  before = _hashes(tmp_path, dncnn_smoke_run)
  fails_with_one_line(capsys, ['denoise', image, '--workdir', dncnn_smoke_run, '--out', tmp_path / 'out',
                               '--overwrite'], f'writing {tmp_path / "out" / "x.png"} would replace the input {image}',
                      'hard or symbolic link', '--out')
  assert _hashes(tmp_path, dncnn_smoke_run) == before


def test_stylize_refuses_an_output_hard_linked_to_its_content_or_style(tmp_path, capsys):
  # Gatys' stylize checks its outputs before loading anything, so no trained net is needed here.
  content, style = _png(tmp_path / 'in' / 'c.png', color=True), _png(tmp_path / 'in' / 's.png', color=True, seed=1)
  out = tmp_path / 'out'
  out.mkdir()
  os.link(content, out / 'c.png')
  before = _hashes(tmp_path)
  fails_with_one_line(capsys, ['stylize', content, '--style', style, '--out', out, '--overwrite'],
                      f'writing {out / "c.png"} would replace the input {content}', 'hard or symbolic link')
  (out / 'c.png').unlink()
  os.link(style, out / 'c_side_by_side.png')
  before = _hashes(tmp_path)
  fails_with_one_line(capsys, ['stylize', content, '--style', style, '--out', out, '--overwrite'],
                      f'writing {out / "c_side_by_side.png"} would replace {style}, which this command reads too')
  assert _hashes(tmp_path) == before


def test_output_paths_compares_files_by_device_and_inode(tmp_path):
  image = _png(tmp_path / 'in' / 'x.png')
  (tmp_path / 'out').mkdir()
  os.link(image, tmp_path / 'out' / 'x.png')
  with pytest.raises(CnnreconError, match='would replace the input'):
    safety.output_paths([image], tmp_path / 'out', overwrite=True)
  # A same-named file that is another file is only an existing output.
  _png(tmp_path / 'other' / 'x.png')
  with pytest.raises(CnnreconError, match='already exists'):
    safety.output_paths([image], tmp_path / 'other')
  assert safety.output_paths([image], tmp_path / 'other', overwrite=True) == [tmp_path / 'other' / 'x.png']


def test_an_overwritten_output_that_was_a_hard_link_leaves_the_other_name_intact(dncnn_smoke_run, tmp_path):
  image, keep = _png(tmp_path / 'in' / 'x.png'), _png(tmp_path / 'keep' / 'x.png', seed=5)
  (tmp_path / 'out').mkdir()
  os.link(keep, tmp_path / 'out' / 'x.png')  # not an input: --overwrite may replace it, but not through the link
  before = _hashes(tmp_path / 'keep', tmp_path / 'in')
  assert cli.main(['denoise', str(image), '--workdir', str(dncnn_smoke_run), '--out', str(tmp_path / 'out'),
                   '--overwrite']) == 0
  assert _hashes(tmp_path / 'keep', tmp_path / 'in') == before
  assert (tmp_path / 'out' / 'x.png').stat().st_ino != keep.stat().st_ino


# -------------------------------------------------------------------- item 2: a style net given to denoise

@pytest.mark.parametrize('task, method', [('fast_style', 'fast'), ('adain', 'adain')])
def test_a_style_net_refuses_to_restore_naming_the_stylize_command(task, method):
  # The task interface answers for a workdir's net and an export alike (the CLI runs are in the style tests).
  model = types.SimpleNamespace(config=ml_collections.ConfigDict({'task': {'name': task}}))
  with pytest.raises(CnnreconError) as caught:
    TASKS.get(task).restorer(model)
  message = str(caught.value)
  assert len(message.splitlines()) == 1
  assert f'style net ({task})' in message and 'style workdir' in message
  assert f'`cnnrecon stylize CONTENT --method {method} --workdir RUN --out OUT`' in message


# -------------------------------------------------------------------- item 3: the divergence line

def test_divergence_names_the_latest_and_the_best_checkpoint_and_how_to_resume_each(dncnn_smoke_run, tmp_path,
                                                                                     capsys):
  workdir = tmp_path / 'run'
  shutil.copytree(dncnn_smoke_run, workdir)  # 6 steps; validated at 3 and 6
  before = _hashes(workdir / 'checkpoints')
  # At lr 1e6 step 7 still has a finite loss, so its checkpoint is saved (and scored terribly); step 8 diverges.
  err = fails_with_one_line(capsys, ['train', *SMOKE, '--workdir', workdir, '--force', '--config.train.steps=20',
                                     '--config.optim.learning_rate=1e6', '--config.train.checkpoint_every=1',
                                     '--config.train.eval_every=1', '--config.train.log_every=1'],
                            'training diverged at step 8', 'nothing non-finite was saved',
                            'a plain rerun resumes from the latest checkpoint, step 7',
                            'the best by validation score is step 6 (validation psnr',
                            '--from-step 6 to resume from the best', status=3)
  assert 'last good' not in err
  after = _hashes(workdir / 'checkpoints')
  assert {path: digest for path, digest in after.items() if '/checkpoints/6/' in path} == {
      path: digest for path, digest in before.items() if '/checkpoints/6/' in path}


# -------------------------------------------------------------------- item 4: gray conversion said once

def test_denoise_says_once_how_many_color_images_became_gray(dncnn_smoke_run, tmp_path, capsys):
  images = [_png(tmp_path / 'in' / 'a.png', color=True), _png(tmp_path / 'in' / 'b.png'),
            _png(tmp_path / 'in' / 'c.png', color=True, seed=2)]
  before = _hashes(tmp_path / 'in')
  assert cli.main(['denoise', *map(str, images), '--workdir', str(dncnn_smoke_run), '--out', str(tmp_path / 'o')]) == 0
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith('cnnrecon: note: 2 of 3 input images'), err
  assert 'converted to gray' in err[0] and str(images[0]) in err[0] and str(images[1]) not in err[0]
  assert _hashes(tmp_path / 'in') == before
  assert cli.main(['denoise', str(images[1]), '--workdir', str(dncnn_smoke_run), '--out', str(tmp_path / 'g')]) == 0
  assert capsys.readouterr().err == ''


# -------------------------------------------------------------------- item 6: stylize names the output

def test_stylize_names_the_output_it_would_write_and_the_input_it_would_replace(tmp_path, capsys):
  content = _png(tmp_path / 'in' / 'photo.png', color=True)
  out = tmp_path / 'out'
  style = _png(out / 'photo.png', color=True, seed=3)  # the style image lies where the result would go
  before = _hashes(tmp_path)
  err = fails_with_one_line(capsys, ['stylize', content, '--style', style, '--out', out],
                            f'writing {out / "photo.png"} would replace {style}, which this command reads too')
  assert f'the input {content}' not in err
  assert _hashes(tmp_path) == before


def test_stylize_refuses_two_results_with_one_name(tmp_path, capsys):
  contents = [_png(tmp_path / 'in' / 'c.png', color=True), _png(tmp_path / 'in' / 'c_side_by_side.png', color=True)]
  fails_with_one_line(capsys, ['stylize', *contents, '--style', 'starry_night', '--out', tmp_path / 'out'],
                      f'two results would be written to {tmp_path / "out" / "c_side_by_side.png"}')
  assert not (tmp_path / 'out').exists() or not any((tmp_path / 'out').iterdir())
