"""`cnnrecon export` loses nothing (issue 18): `--overwrite` replaces only a previous export, a dead export's
staging folders are cleaned up without touching a live one's, and a malformed manifest is one line.

Every refusal is checked the same way: one `cnnrecon: error:` line, exit 2, and every file, folder and link
that existed before keeps its bytes.
"""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from cnnrecon import cli
from cnnrecon.errors import CnnreconError
from cnnrecon.export import load
from cnnrecon.export import writer
from cnnrecon.export.writer import export_workdir
from cnnrecon.inference import load_export
from conftest import REPO, fails_with_one_line


@pytest.fixture(scope='module')
def exported(dncnn_smoke_run, tmp_path_factory):
  """One StableHLO export of the shared DnCNN smoke run; tests copy it before changing it."""
  return export_workdir(dncnn_smoke_run, tmp_path_factory.mktemp('export') / 'dncnn')


@pytest.fixture
def parent(dncnn_smoke_run, tmp_path):
  """`tmp_path/P`: a private copy of the trained workdir as `P/wd`, beside an unrelated file `P/notes.txt`."""
  folder = tmp_path / 'P'
  shutil.copytree(dncnn_smoke_run, folder / 'wd')
  (folder / 'notes.txt').write_text('not an export\n')
  return folder


def _tree(root: pathlib.Path) -> dict[str, str]:
  """Every entry under `root` (hidden ones too): a file's sha256, 'folder', or a link's target."""
  entries = {}
  for folder, folders, files in os.walk(root):
    for name in folders + files:
      path = pathlib.Path(folder, name)
      relative = str(path.relative_to(root))
      if path.is_symlink():
        entries[relative] = f'link -> {os.readlink(path)}'
      elif path.is_dir():
        entries[relative] = 'folder'
      else:
        entries[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
  return entries


def _refused(capsys, root: pathlib.Path, argv: list, *fragments) -> str:
  """Runs the CLI; asserts one line, exit 2 and that nothing under `root` changed."""
  before = _tree(root)
  err = fails_with_one_line(capsys, argv, *fragments)
  assert 'Traceback' not in err
  assert _tree(root) == before
  return err


def _resum(export: pathlib.Path) -> None:
  """Rewrites the manifest's payload sums and SHA256SUMS to match the files, as a careful tamperer would."""
  manifest_path = export / 'manifest.json'
  try:
    manifest = json.loads(manifest_path.read_text())
  except ValueError:
    manifest = None
  names = sorted(path.name for path in export.iterdir() if path.name not in ('manifest.json', 'SHA256SUMS'))
  digest = {name: hashlib.sha256((export / name).read_bytes()).hexdigest() for name in names}
  if isinstance(manifest, dict) and isinstance(manifest.get('payload'), dict):
    manifest['payload'] = {name: digest.get(name, '0' * 64) for name in manifest['payload']}
    manifest_path.write_text(json.dumps(manifest, indent=1) + '\n')
  sums = {'manifest.json': hashlib.sha256(manifest_path.read_bytes()).hexdigest(), **digest}
  (export / 'SHA256SUMS').write_text(''.join(f'{value}  {name}\n' for name, value in sums.items()))


# (workdir, --out, --overwrite?, what the line says); paths relative to tmp_path, S is a symlink to P and
# L a symlink to P/wd.
WORKDIR_CASES = {
    'out is the workdir': ('P/wd', 'P/wd', True, 'is the workdir'),
    'out is the workdir, no --overwrite': ('P/wd', 'P/wd', False, 'is the workdir'),
    'out is the workdir by ..': ('P/wd', 'P/wd/checkpoints/..', True, 'is the workdir'),
    'out is the checkpoints': ('P/wd', 'P/wd/checkpoints', True, 'lies inside the workdir'),
    'out is the eval folder': ('P/wd', 'P/wd/eval', True, 'lies inside the workdir'),
    'out is a new folder in the workdir': ('P/wd', 'P/wd/export', False, 'lies inside the workdir'),
    'out is a new step folder': ('P/wd', 'P/wd/checkpoints/999', False, 'lies inside the workdir'),
    'out holds the workdir': ('P/wd', 'P', True, 'holds the workdir'),
    'out holds the workdir, no --overwrite': ('P/wd', 'P', False, 'holds the workdir'),
    'out is the workdir through a linked parent': ('P/wd', 'S/wd', True, 'is the workdir'),
    'out is a link to the workdir': ('P/wd', 'L', True, 'is the workdir'),
    'out is the checkpoints through a link': ('P/wd', 'L/checkpoints', True, 'lies inside the workdir'),
    'workdir through a link, out its parent': ('S/wd', 'P', True, 'holds the workdir'),
    'workdir by a link, out the real one': ('L', 'P/wd', True, 'is the workdir'),
    'out is another run': ('P/wd', 'other', True, 'is the workdir of a training run'),
    'out is a new folder in another run': ('P/wd', 'other/checkpoints/7', False, 'lies inside the workdir'),
}


@pytest.mark.parametrize('case', WORKDIR_CASES)
def test_overwrite_never_touches_the_workdir_its_folders_or_its_parent(case, parent, tmp_path, capsys):
  workdir, out, overwrite, fragment = WORKDIR_CASES[case]
  (tmp_path / 'S').symlink_to(parent)
  (tmp_path / 'L').symlink_to(parent / 'wd')
  (tmp_path / 'other' / 'checkpoints').mkdir(parents=True)  # another training run
  (tmp_path / 'other' / 'metrics.jsonl').write_text('{"step": 1}\n')
  _refused(capsys, tmp_path, ['export', '--workdir', tmp_path / workdir, '--out', tmp_path / out]
           + ['--overwrite'] * overwrite, fragment, 'e.g. --out exports/wd')


@pytest.mark.parametrize('extra', ['a file', 'a link', 'no manifest'])
def test_overwrite_refuses_a_folder_that_holds_more_than_an_export(extra, exported, parent, tmp_path, capsys):
  out = shutil.copytree(exported, tmp_path / 'out')
  if extra == 'a file':
    (out / 'notes.txt').write_text('mine\n')
    fragment = 'it also holds notes.txt'
  elif extra == 'a link':
    (out / 'data').symlink_to(parent)
    fragment = 'it also holds data'
  else:
    (out / 'manifest.json').unlink()
    fragment = 'it has no manifest.json'
  _refused(capsys, tmp_path, ['export', '--workdir', parent / 'wd', '--out', out, '--overwrite'],
           'is not a previous export', fragment, 'pick a new or empty directory')


def test_overwrite_refuses_a_symlinked_out(exported, parent, tmp_path, capsys):
  out = shutil.copytree(exported, tmp_path / 'real')
  (tmp_path / 'out').symlink_to(out)
  _refused(capsys, tmp_path, ['export', '--workdir', parent / 'wd', '--out', tmp_path / 'out', '--overwrite'],
           'is a symbolic link', 'give the folder itself')


def test_overwrite_replaces_a_broken_previous_export_in_a_workdir_folder(exported, parent, capsys):
  # A previous export in `wd/exports/` whose manifest is damaged: --overwrite is how its error says to fix it.
  out = shutil.copytree(exported, parent / 'wd' / 'exports' / 'dncnn')
  (out / 'manifest.json').write_text('{"format": "stablehlo",\n')
  _resum(out)
  before = _tree(parent)
  assert cli.main(['export', '--workdir', str(parent / 'wd'), '--out', str(out), '--overwrite']) == 0
  assert 'Traceback' not in capsys.readouterr().err
  assert load(out).manifest['format'] == 'stablehlo'
  after = _tree(parent)
  replaced = {name for name in before.keys() | after.keys() if name.startswith('wd/exports/dncnn/')}
  assert {name: value for name, value in after.items() if name not in replaced} == \
      {name: value for name, value in before.items() if name not in replaced}
  assert sorted(path.name for path in out.parent.iterdir()) == ['dncnn']  # no staging or .old left


def _dead_pid() -> int:
  child = subprocess.Popen(['true'])
  child.wait()
  return child.pid


def test_a_rerun_removes_only_dead_exports_staging_folders(exported, parent, tmp_path, capsys):
  out = shutil.copytree(exported, tmp_path / 'out')
  host, dead = writer._host(), _dead_pid()  # pylint: disable=protected-access  # the name the writer uses
  live = subprocess.Popen(['sleep', '60'])
  try:
    stale = [tmp_path / f'.out.export-{dead}-{host}.k2x_9abc', tmp_path / f'.out.export-{dead}-{host}.old']
    kept = [tmp_path / f'.out.export-{live.pid}-{host}.abcdefgh',  # a live export's
            tmp_path / f'.out.export-{dead}-otherhost.abcdefgh',  # another machine's, on a shared disk
            tmp_path / f'.other.export-{dead}-{host}.abcdefgh',  # another --out's
            tmp_path / '.out.abcdefgh',  # no PID to tell whether its export is alive
            tmp_path / 'P' / f'.out.export-{dead}-{host}.abcdefgh']  # not beside --out
    for folder in stale + kept:
      folder.mkdir()
      (folder / 'model.stablehlo').write_bytes(b'partial')
    stray = tmp_path / f'.out.export-{dead}-{host}.zzzzzzzz'
    stray.write_text('a file, not a staging folder\n')
    before = {path: _tree(path) for path in kept}
    assert cli.main(['export', '--workdir', str(parent / 'wd'), '--out', str(out), '--overwrite']) == 0
  finally:
    live.kill()
    live.wait()
  assert 'Traceback' not in capsys.readouterr().err
  assert not any(path.exists() for path in stale)
  assert {path: _tree(path) for path in kept} == before and stray.read_text().startswith('a file')
  assert load(out).manifest['source']['workdir'] == str((parent / 'wd').absolute())


def test_an_export_killed_between_its_renames_gets_the_previous_export_back(exported, parent, tmp_path, capsys):
  # SIGKILL right after the previous export was moved aside, before the new one was renamed into place.
  out = shutil.copytree(exported, tmp_path / 'out')
  previous = _tree(out)
  code = f'''
import os, pathlib, signal
from cnnrecon.export import writer
rename = pathlib.Path.rename
def rename_then_die(self, target):
  if pathlib.Path(target).name == 'out':
    os.kill(os.getpid(), signal.SIGKILL)
  return rename(self, target)
pathlib.Path.rename = rename_then_die
writer.export_workdir({str(parent / 'wd')!r}, {str(out)!r}, overwrite=True)
'''
  killed = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
  assert killed.returncode == -9, killed.stderr[-2000:]
  assert not out.exists()
  litter = sorted(path.name for path in tmp_path.iterdir() if path.name.startswith('.out.'))
  assert len(litter) == 2 and sum(name.endswith('.old') for name in litter) == 1, litter  # new, and previous
  # The rerun puts the previous export back, deletes the dead staging folder, and (no --overwrite) refuses.
  fails_with_one_line(capsys, ['export', '--workdir', parent / 'wd', '--out', out], 'exists and is not empty')
  assert _tree(out) == previous
  assert not any(path.name.startswith('.out.') for path in tmp_path.iterdir())


def _manifest_edit(change):
  def edit(export):
    manifest = json.loads((export / 'manifest.json').read_text())
    change(manifest)
    (export / 'manifest.json').write_text(json.dumps(manifest))
  return edit


def _garbage_model(export):
  (export / 'model.stablehlo').write_bytes(b'not a model at all' * 8)


# How the export is damaged (its sums recomputed to match), and what the one line says.
MALFORMED = {
    'manifest is not JSON': (lambda export: (export / 'manifest.json').write_text('{"format": "stablehlo",\n'),
                             'manifest.json is not valid JSON'),
    'manifest is a list': (lambda export: (export / 'manifest.json').write_text('[1, 2]\n'),
                           'not a JSON object'),
    'format whose files are missing': (_manifest_edit(lambda manifest: manifest.update(format='params')),
                                       "names format 'params', but its payload lacks params.safetensors, config.json"),
    'unknown format': (_manifest_edit(lambda manifest: manifest.update(format='onnx')),
                       "names format 'onnx', which is none of"),
    'no payload': (_manifest_edit(lambda manifest: manifest.pop('payload')), "has no 'payload'"),
    'step is a word': (_manifest_edit(lambda manifest: manifest['source'].update(step='best')),
                       """has 'source.step' = "best", not an integer"""),
    'input without a kind': (_manifest_edit(lambda manifest: manifest.update(inputs=[{'name': 'x'}])),
                             'without a name and a kind'),
    'newer manifest': (_manifest_edit(lambda manifest: manifest.update(manifest_version=99)),
                       'newer than this cnnrecon reads'),
    'model bytes are not a model': (_garbage_model, 'model.stablehlo is not a serialized jax.export model'),
}


@pytest.mark.parametrize('case', MALFORMED)
def test_a_malformed_export_is_one_line_from_the_cli_and_the_api(case, exported, tmp_path, capsys):
  damage, fragment = MALFORMED[case]
  export = shutil.copytree(exported, tmp_path / 'export')
  damage(export)
  _resum(export)
  from PIL import Image
  Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / 'noisy.png')
  hint = f're-export it with `cnnrecon export --workdir RUN --out {export} --overwrite`'
  _refused(capsys, tmp_path, ['denoise', tmp_path / 'noisy.png', '--exported', export, '--out', tmp_path / 'out'],
           fragment, hint)
  for loader in (load, load_export):  # `cnnrecon.export.load` and `cnnrecon.inference.load_export`
    with pytest.raises(CnnreconError, match='re-export it') as error:
      loader(export)
    assert fragment in str(error.value) and '\n' not in str(error.value)


def test_stylize_with_a_malformed_export_is_one_line(exported, tmp_path, capsys):
  export = shutil.copytree(exported, tmp_path / 'export')
  (export / 'manifest.json').write_text('not json\n')
  _resum(export)
  from PIL import Image
  Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / 'content.png')
  _refused(capsys, tmp_path, ['stylize', tmp_path / 'content.png', '--method', 'fast', '--exported', export,
                              '--out', tmp_path / 'out'], 'manifest.json is not valid JSON', 're-export it')
