"""What the benchmarks share: the checkout's root on `sys.path`, so that a checkout, or a git
worktree of another revision, benchmarks its own `jaxrl3m`, installed or not. Every script in
bench/ starts with `from benchlib import ROOT` (run as `python bench/<script>.py`, bench/ is on
the path)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
