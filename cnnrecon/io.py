"""Small file helpers at the bottom of the data flow: atomic writes, JSON lines, SHA-256 of a file."""

import hashlib
import json
import os
import pathlib
import uuid

from cnnrecon.errors import CnnreconError


def write_file_atomic(path: str | os.PathLike, content: str | bytes) -> pathlib.Path:
  """Writes via a temporary file and `os.replace`: never a half-written file.

  Args:
    path: destination; its parent folder is created if needed.
    content: text (written as UTF-8) or bytes.

  Returns:
    The destination as a `pathlib.Path`.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  data = content.encode('utf-8') if isinstance(content, str) else content
  # Same folder so os.replace is a rename; plain open (not mkstemp) so the
  # file gets the usual umask permissions instead of 0600.
  tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex}.tmp')
  try:
    with open(tmp, 'xb') as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException as error:
    tmp.unlink(missing_ok=True)
    _name_the_file(error, path)
    raise
  return path


def _name_the_file(error: BaseException, path: pathlib.Path) -> None:
  """A write that fails (e.g. a full disk) raises an OSError without a file name: give it `path`."""
  if isinstance(error, OSError) and error.filename is None:
    error.filename = str(path)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
  """Parses a JSON-lines file (one object per line; blank lines skipped).

  Raises:
    CnnreconError: the file is missing or a line is not valid JSON.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise CnnreconError(f'{path} not found: train first, or pass the workdir that holds it')
  records = []
  for number, line in enumerate(path.read_text().splitlines(), start=1):
    if line.strip():
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as error:
        raise CnnreconError(f'{path}:{number} is not valid JSON ({error.msg}); fix or delete that line') from error
  return records


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
  """Appends one JSON object as a line."""
  try:
    with pathlib.Path(path).open('a') as stream:
      stream.write(json.dumps(record) + '\n')
  except OSError as error:
    _name_the_file(error, pathlib.Path(path))
    raise


def write_jsonl_atomic(path: str | os.PathLike, records: list[dict]) -> pathlib.Path:
  """Replaces a JSON-lines file with `records`, atomically."""
  return write_file_atomic(path, ''.join(json.dumps(record) + '\n' for record in records))


def sha256_of(path: str | os.PathLike) -> str:
  """The file's SHA-256 (hex), read in 1 MiB chunks."""
  digest = hashlib.sha256()
  with open(path, 'rb') as stream:
    for chunk in iter(lambda: stream.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()
