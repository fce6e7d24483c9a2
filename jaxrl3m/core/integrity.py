"""What keeps a run from being corrupted silently: checksums of files and folders, manifests of
checksums beside what they cover, and an OS lock on a run folder.

- `sha256_file(path)`, `sha256_tree(folder)`: content hashes (a folder's covers its files'
  relative paths and contents, in sorted order).
- `write_manifest(folder)` / `verify_manifest(folder)`: `MANIFEST` (JSON) lists the sha256 and
  size of every file under `folder`; verification names the first file that is missing, changed
  or unlisted-but-required. Checkpoints carry one (`jaxrl3m.core.checkpoint`).
- `RunLock(folder)`: an exclusive `flock` on `folder/.lock` held for a run's lifetime. The OS
  releases it when the process ends, however it ends (kill -9 leaves no stale lock); a second
  process is refused with the PID that holds it.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path

from ..errors import ConfigError
from .io import atomic_write_text

MANIFEST = "jaxrl3m_manifest.json"
"""The manifest's file name inside the folder it covers."""
_CHUNK = 1 << 20


class IntegrityError(ConfigError):
    """A file that does not hold what was recorded for it (bit rot, a partial copy, an edit)."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def sha256_tree(folder: str | os.PathLike) -> str:
    """One hash of every file under `folder` (relative paths and contents)."""
    folder = Path(folder)
    h = hashlib.sha256()
    for p in _files(folder):
        h.update(str(p.relative_to(folder)).encode() + b"\0" + sha256_file(p).encode() + b"\n")
    return h.hexdigest()


def write_manifest(folder: str | os.PathLike) -> Path:
    """Writes `folder/MANIFEST`: `{relative path: [sha256, size]}` of every file (atomically)."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): [sha256_file(p), p.stat().st_size]
             for p in _files(folder)}
    return atomic_write_text(folder / MANIFEST, json.dumps({"files": files}, indent=0) + "\n")


def read_manifest(folder: str | os.PathLike) -> dict[str, list] | None:
    """The manifest's `{path: [sha256, size]}`, or None when `folder` has none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        assert isinstance(files, dict)
        return files
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        raise IntegrityError(f"{path} is not a readable manifest (damaged)") from None


def verify_manifest(folder: str | os.PathLike) -> bool:
    """Checks every file the manifest lists (size, then sha256), and that no file was added.
    Returns False when there is no manifest (nothing to check against); raises IntegrityError
    naming the first file that differs."""
    folder = Path(folder)
    files = read_manifest(folder)
    if files is None:
        return False
    for rel, (digest, size) in files.items():
        p = folder / rel
        if not p.is_file():
            raise IntegrityError(f"{p} is missing (listed in {folder / MANIFEST})")
        if p.stat().st_size != size or sha256_file(p) != digest:
            raise IntegrityError(f"{p} differs from its recorded sha256 (bit rot, a partial "
                                 "copy or an edit)")
    extra = [str(p.relative_to(folder)) for p in _files(folder)
             if str(p.relative_to(folder)) not in files]
    if extra:
        raise IntegrityError(f"{folder} has files its manifest does not list: "
                             f"{', '.join(extra[:3])}")
    return True


def manifest_digest(folder: str | os.PathLike) -> str | None:
    """The sha256 of a folder's manifest file (a hash of its whole content), or None."""
    path = Path(folder) / MANIFEST
    return sha256_file(path) if path.is_file() else None


class RunLock:
    """An exclusive lock on a run folder for as long as this object is held (`release()` or the
    process's end frees it). Raises ConfigError when another process holds it."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        path = self.folder / ".lock"
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except PermissionError:
            raise ConfigError(f"run folder {str(self.folder)!r} is not writable (permission "
                              "denied): give a folder you can write to (runs_dir=..., or "
                              "chmod it)") from None
        except OSError as e:
            raise ConfigError(f"cannot lock run folder {str(self.folder)!r}: {e.strerror}") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise ConfigError(
                    f"run folder {str(self.folder)!r} is in use by process {holder} (a run or "
                    "--resume of it is going on); wait for it to end, or stop that process "
                    "first") from None
            raise
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.ftruncate(self.fd, 0)
            except OSError:
                pass
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
