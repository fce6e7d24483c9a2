"""The library's error for bad input and its "did you mean" hint: the lowest layer, which every
package may import (`jaxrl3m.core.config` re-exports both)."""

from __future__ import annotations

import difflib


class ConfigError(ValueError):
    """A configuration that cannot work; the message names the key and the fix."""


def did_you_mean(name: str, valid) -> str:
    """`" Did you mean 'x'?"` for the closest of `valid`, or ``""``."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
