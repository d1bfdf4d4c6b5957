"""Atomic file writes: a reader, or a run killed mid-write, never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Callable, IO


def write_atomically(path, write: Callable[[IO], None], binary: bool = False
                     ) -> str:
  """Writes a file through ``write(f)`` into a temporary file, then renames it.

  The temporary file sits next to ``path`` (same file system, so the rename is
  atomic) and is removed if ``write`` fails. Missing parent folders are
  created.

  Args:
    path: destination (str or os.PathLike).
    write: called with the open temporary file.
    binary: open the file in binary mode.

  Returns:
    ``path`` as a string.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(
      dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    # mkstemp creates the file owner-only; outputs are meant to be readable.
    os.chmod(tmp_path, 0o644)
    with os.fdopen(fd, "wb" if binary else "w",
                   **({} if binary else {"encoding": "utf-8"})) as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)
    raise
  return path


def write_json_atomically(path, payload: Any) -> str:
  """Writes ``payload`` as indented, key-sorted JSON, atomically."""
  return write_atomically(
      path, lambda f: json.dump(payload, f, indent=2, sort_keys=True))
