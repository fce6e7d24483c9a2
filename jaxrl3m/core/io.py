"""Atomic file writes: readers see the old file or the new one, never a part."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes `text` to `path` (parent folders created) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> None:
    """Refuses an output file that cannot be written (a folder, an unwritable folder), before
    any work is done for it; ConfigError names `flag`."""
    from ..errors import ConfigError
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{flag} {str(path)!r} is a folder; give a file name in it")
    parent = out.parent
    if parent.exists() and not os.access(parent, os.W_OK):
        raise ConfigError(f"{flag} {str(path)!r}: the folder {str(parent)!r} is not writable")


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """`data` as indented JSON, written atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2) + "\n")
