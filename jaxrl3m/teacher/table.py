"""Prior tables `P_L(k | c(s))`: one row per abstract state, one column per option.

A table is one JSON file in `llm_cache/` (small, diffable, written atomically):

    {"format": "jaxrl3m-prior-table", "format_version": 1,
     "metadata": {"task": ..., "abstraction": ..., "abstraction_version": ...,
                  "options": [...], "states": [...],
                  "backend": ..., "model": ..., "model_sha256": ..., "prompt_sha256": ...,
                  "temperature": ..., "date": ..., ...},
     "probs": [[...], ...],      # f32[S, K]: S abstract states of the task, rows sum to 1
     "scores": [[...], ...]}     # the backend's raw scores (log-probabilities), or null

`load_table(path, task)` checks everything against the task and its guidance's abstraction (name,
version, texts; `jaxrl3m.envs.guidance`; tables written before the name was recorded have none)
and fails
with a message naming the mismatch and the fix; `PriorTable.device_array()` is the one array that
goes to the accelerator.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..core.io import atomic_write_text
from .. import envs
from .options import past_policy_option, task_options

FORMAT = "jaxrl3m-prior-table"
FORMAT_VERSION = 1
REQUIRED_METADATA = ("task", "abstraction_version", "options", "states", "backend")


class TableError(ValueError):
    """A prior table that cannot be used for the task: the message says what and how to fix it."""


@dataclasses.dataclass(frozen=True)
class PriorTable:
    probs: np.ndarray  # f32[S, K]: S abstract states of the task's guidance
    metadata: dict[str, Any]
    scores: np.ndarray | None = None  # f32[S, K]: raw backend scores

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def options(self) -> tuple[str, ...]:
        return tuple(self.metadata["options"])

    @property
    def past_policies(self) -> tuple[str, ...]:
        """Source tasks whose policies are options after the skills (see `table_options`)."""
        return tuple(self.metadata.get("past_policies", ()))

    def device_array(self):
        """The probabilities as one device array (pass it to jitted functions as an argument)."""
        import jax.numpy as jnp
        return jnp.asarray(self.probs, jnp.float32)


def table_options(task: str, past_policies: tuple[str, ...] = ()) -> tuple[str, ...]:
    """A table's columns: the task's skills, then one option per past policy (a policy learned
    on an earlier task, "follow the policy that solved DoorKey")."""
    return tuple(task_options(task)) + tuple(past_policy_option(t) for t in past_policies)


def make_table(task: str, probs: np.ndarray, backend: str, scores: np.ndarray | None = None,
               past_policies: tuple[str, ...] = (), **metadata: Any) -> PriorTable:
    """A validated table for `task` with the standard metadata filled in."""
    guide = envs.guidance(task)
    meta = dict(task=task, abstraction=guide.name, abstraction_version=guide.version,
                options=list(table_options(task, past_policies)), states=guide.texts(),
                backend=backend)
    if past_policies:
        meta["past_policies"] = list(past_policies)
    meta.update(metadata)
    table = PriorTable(probs=np.asarray(probs, np.float32), metadata=meta,
                       scores=None if scores is None else np.asarray(scores, np.float32))
    validate(table, task, source="the new table")
    return table


def validate(table: PriorTable, task: str | None = None, source: str = "table") -> None:
    """Raises `TableError` naming the first problem found."""
    fix = ("recompute it with `python -m jaxrl3m.precompute_priors --task TASK ...` "
           "(see README, 'LLM teacher')")
    meta = table.metadata
    missing = [k for k in REQUIRED_METADATA if k not in meta]
    if missing:
        raise TableError(f"{source}: metadata lacks {missing}; {fix}")
    if task is not None and meta["task"] != task:
        raise TableError(f"{source} was computed for task {meta['task']!r}, not {task!r}; use the "
                         f"table of {task!r} (llm_cache/{task}-*.json) or {fix}")
    try:
        guide = envs.guidance(meta["task"])
    except ValueError as e:
        raise TableError(f"{source} was computed for task {meta['task']!r}, which cannot have a "
                         f"prior table here: {e}") from None
    if meta.get("abstraction", guide.name) != guide.name:
        raise TableError(f"{source} uses abstraction {meta['abstraction']!r}, task "
                         f"{meta['task']!r} has {guide.name!r}; {fix}")
    if meta["abstraction_version"] != guide.version:
        raise TableError(f"{source} uses abstraction version {meta['abstraction_version']}, "
                         f"task {meta['task']!r} has version {guide.version}; {fix}")
    expected_options = list(table_options(meta["task"], tuple(meta.get("past_policies", ()))))
    if list(meta["options"]) != expected_options:
        raise TableError(f"{source} has options {list(meta['options'])}, task {meta['task']!r} "
                         f"has {expected_options}; {fix}")
    states = guide.texts()
    if list(meta["states"]) != states:
        bad = next(i for i in range(min(len(states), len(meta["states"])) + 1)
                   if i >= len(meta["states"]) or i >= len(states) or meta["states"][i] != states[i])
        raise TableError(f"{source}: the text of abstract state {bad} differs from `describe("
                         f"{bad})` (the abstraction changed since it was computed); {fix}")
    shape = (guide.num_states, len(expected_options))
    for name, arr in (("probs", table.probs), ("scores", table.scores)):
        if arr is None and name == "scores":
            continue
        if arr.shape != shape:
            raise TableError(f"{source}: {name} has shape {arr.shape}, expected {shape} "
                             f"({guide.num_states} abstract states x {shape[1]} options of "
                             f"{meta['task']!r}); {fix}")
    p = table.probs
    if not np.all(np.isfinite(p)):
        rows = sorted(set(np.argwhere(~np.isfinite(p))[:, 0].tolist()))
        raise TableError(f"{source}: probs has non-finite values in rows {rows}; {fix}")
    if np.any(p < 0):
        rows = sorted(set(np.argwhere(p < 0)[:, 0].tolist()))
        raise TableError(f"{source}: probs has negative values in rows {rows}; {fix}")
    sums = p.sum(axis=1)
    bad_rows = np.flatnonzero(np.abs(sums - 1.0) > 1e-4)
    if bad_rows.size:
        raise TableError(f"{source}: rows {bad_rows.tolist()} of probs sum to "
                         f"{sums[bad_rows].round(4).tolist()}, not 1; {fix}")


def _to_json(table: PriorTable) -> dict[str, Any]:
    def rows(a):
        return None if a is None else [[float(x) if math.isfinite(x) else None for x in r]
                                       for r in np.asarray(a, np.float64)]
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": table.metadata,
            "probs": rows(table.probs), "scores": rows(table.scores)}


def save_table(table: PriorTable, path: str | os.PathLike) -> Path:
    """Validates and writes the table atomically; returns the path."""
    validate(table, source="the table to save")
    atomic_write_text(path, json.dumps(_to_json(table), indent=1) + "\n")
    return Path(path)


def load_table(path: str | os.PathLike, task: str | None = None) -> PriorTable:
    """Reads and validates a table; with `task`, also checks that it was made for that task.

    Raises:
      TableError: a missing, corrupt or mismatching file (the message names the problem and fix).
    """
    path = Path(path)
    if not path.exists():
        avail = sorted(p.name for p in path.parent.glob("*.json")) if path.parent.exists() else []
        raise TableError(f"prior table {str(path)!r} does not exist. "
                         + (f"Tables in {str(path.parent)!r}: {', '.join(avail)}. " if avail else "")
                         + "Make one with `python -m jaxrl3m.precompute_priors --task TASK "
                         "--backend oracle --out PATH`.")
    if path.is_dir():
        raise TableError(f"prior table {str(path)!r} is a folder; give a table file in it "
                         "(llm_cache/<task>-<model>.json)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TableError(f"prior table {str(path)!r} is not valid JSON ({e}); it is corrupt: "
                         "restore it from git or recompute it with `python -m "
                         "jaxrl3m.precompute_priors`") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise TableError(f"{str(path)!r} is not a jaxrl3m prior table (no \"format\": \"{FORMAT}\")")
    if data.get("format_version") != FORMAT_VERSION:
        raise TableError(f"{str(path)!r} has table format version {data.get('format_version')}, "
                         f"this library reads version {FORMAT_VERSION}; recompute it")
    try:
        probs = np.asarray(data["probs"], np.float64)
        scores = None if data.get("scores") is None else np.asarray(
            [[np.nan if x is None else x for x in r] for r in data["scores"]], np.float64)
    except (KeyError, ValueError, TypeError) as e:
        raise TableError(f"{str(path)!r}: probs/scores are not a rectangular array of numbers "
                         f"({e}); the file is corrupt: recompute it") from None
    table = PriorTable(probs=probs.astype(np.float32), metadata=data.get("metadata", {}),
                       scores=None if scores is None else scores.astype(np.float32))
    validate(table, task, source=f"prior table {str(path)!r}")
    return table
