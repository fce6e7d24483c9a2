"""The English text of the auxiliary language loss: Python's own reference documentation.

LaMo co-trains on WikiText-103, which a fresh machine does not have offline. Every CPython ships
`pydoc_data.topics`, the text of the language reference's topics that `help()` shows (79 topics,
about 490,000 characters of English prose with some code, on Python 3.12): present offline,
versioned with the interpreter, English, and written by people. It is tokenized with the base
model's own tokenizer and cut into fixed-length rows; whole topics are held out (every
`heldout_every`-th in sorted order), so the held-out cross-entropy measures text the model never
trained on.
"""

from __future__ import annotations

import sys

import numpy as np


class CorpusError(ValueError):
    """The text corpus cannot give the rows asked for."""


def topics() -> dict[str, str]:
    """`{topic: text}` of Python's reference documentation (`pydoc_data.topics`)."""
    try:
        from pydoc_data.topics import topics as t
    except ImportError:  # pragma: no cover - every CPython has it
        raise CorpusError("this Python has no pydoc_data.topics (the text of the language "
                          "loss); set lm_coef=0") from None
    return dict(t)


def token_rows(tokenizer, length: int, heldout_every: int = 8
               ) -> tuple[np.ndarray, np.ndarray, dict]:
    """`(train i32[n, length], heldout i32[m, length], info)`: the corpus tokenized (one topic
    after another, each followed by the end-of-text separator if the tokenizer has none) and cut
    into rows of `length` tokens; topics `heldout_every`-th in sorted order are held out."""
    if length < 2:
        raise CorpusError(f"text rows need at least 2 tokens, got {length}")
    names = sorted(topics())
    text = topics()
    parts: dict[bool, list[int]] = {True: [], False: []}
    for i, name in enumerate(names):
        ids = tokenizer.encode(text[name]).ids
        parts[i % heldout_every == heldout_every - 1].extend(ids)
    out = []
    for held in (False, True):
        ids = np.asarray(parts[held], np.int32)
        n = len(ids) // length
        if n < 1:
            raise CorpusError(f"the corpus has {len(ids)} tokens, fewer than one row of {length}")
        out.append(ids[: n * length].reshape(n, length))
    info = {"corpus": "pydoc_data.topics", "python": sys.version.split()[0],
            "topics": len(names), "train_rows": len(out[0]), "heldout_rows": len(out[1]),
            "row_tokens": length}
    return out[0], out[1], info
