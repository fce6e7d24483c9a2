"""XLA's persistent compilation cache, turned on by `python -m jaxrl3m.train`.

A run compiles its programs (the training chunk, initialisation, evaluation) in seconds to tens
of seconds; the same command run again with the same shapes loads them from this cache instead.
The cache lives in `$JAXRL3M_COMPILE_CACHE` if set, else `$XDG_CACHE_HOME/jaxrl3m/xla` (by
default `~/.cache/jaxrl3m/xla`). Set `JAXRL3M_COMPILE_CACHE=off` to disable it; delete the folder
to clear it (`rm -rf ~/.cache/jaxrl3m/xla`: entries are keyed by program, JAX version and
hardware, so a stale entry is never used, only kept). Library users enable it with
`jaxrl3m.core.compile_cache.enable()` (or JAX's own `jax_compilation_cache_dir` option).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

ENV = "JAXRL3M_COMPILE_CACHE"
OFF = ("", "0", "off", "false", "none", "no")


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxrl3m" / "xla"


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Turns the persistent cache on (in `path`, else `$JAXRL3M_COMPILE_CACHE`, else
    `default_dir()`); returns the folder, or None when it is disabled or cannot be created
    (the run then compiles as usual)."""
    if path is None:
        value = os.environ.get(ENV)
        if value is not None and value.strip().lower() in OFF:
            return None
        path = value or default_dir()
    folder = Path(path).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(folder))
    # Every program counts: a run compiles a few large ones and many of a fraction of a second.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
