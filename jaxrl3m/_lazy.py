"""Public names of a package, imported on first use (PEP 562), so that importing a package
stays cheap: `__getattr__ = lazy_exports(__name__, {"Teacher": "jaxrl3m.teacher.teacher"})`."""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """A module `__getattr__` that resolves `name` from `exports[name]`, a module (absolute, or
    relative to `package` when it starts with a dot), or `module:attribute` for another name,
    and keeps it in the package."""
    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = exports[name].partition(":")
        value = getattr(importlib.import_module(module, package), attr or name)
        setattr(sys.modules[package], name, value)
        return value
    return __getattr__
