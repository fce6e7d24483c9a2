"""What the benchmarks share: the checkout's root on `sys.path` (so that a checkout, or a git
worktree of another revision, benchmarks its own `jaxrl3m`, installed or not), the machine's
description for result files, and atomic JSON output. Every script in bench/ starts with
`from benchlib import ROOT` (run as `python bench/<script>.py`, bench/ is on the path)."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def hardware() -> dict[str, Any]:
    """The machine and JAX's devices, for a result file."""
    import jax
    return {"platform": platform.platform(), "processor": platform.processor() or
            platform.machine(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()]}


def write_json(path: str | Path, obj: Any) -> Path:
    """`obj` as JSON at `path`, written atomically (jaxrl3m.core.io)."""
    from jaxrl3m.core.io import atomic_write_json
    return atomic_write_json(path, obj)
