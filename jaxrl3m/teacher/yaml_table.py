"""The `table` backend: prior probabilities written by hand in YAML (e.g. published figures).

    source: "where the numbers come from"      # required: cite it
    model: vicuna-33b
    default: uniform                           # or "error": states no entry matches
    tables:
      DoorKey:
        - text: "the source's own state text"   # kept for the record
          when: {door: 1, carrying: 2}          # abstract-state factors (any not given is free)
          probs: {go to the door: 0.92, explore: 0.08}

Each abstract state takes the average of the `probs` of every entry whose `when` it satisfies;
each entry's `probs` are renormalised. Option names and factor names are checked. The factors are
the DoorKey family's abstraction (`jaxrl3m.envs.abstraction`): tasks with another abstraction
write their tables with `precompute_priors`' other backends.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import yaml

from .. import envs
from ..errors import did_you_mean
from ..envs.abstraction import NUM_ABSTRACT_STATES, AbstractState, decode
from .options import task_options

FACTORS = tuple(f.name for f in dataclasses.fields(AbstractState))


def load_yaml_table(path: str | Path, task: str) -> tuple[np.ndarray, dict]:
    """`(probs f32[S, K], metadata)` for `task` from a YAML table file."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"table file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ValueError(f"table file {str(path)!r} is not valid YAML: {e}") from None
    where = f"table file {str(path)!r}"
    if not isinstance(data, dict) or "tables" not in data or "source" not in data:
        raise ValueError(f"{where} needs top-level 'source' (a citation) and 'tables'")
    if task not in data["tables"]:
        raise ValueError(f"{where} has no table for {task!r} (it has {sorted(data['tables'])})")
    options = task_options(task)
    if envs.guidance(task).name != "doorkey":
        raise ValueError(f"{where}: the table backend's factors are the DoorKey family's "
                         f"abstraction; task {task!r} has {envs.guidance(task).name!r}")
    k = len(options)
    total = np.zeros((NUM_ABSTRACT_STATES, k))
    count = np.zeros(NUM_ABSTRACT_STATES)
    for n, entry in enumerate(data["tables"][task]):
        when, probs = entry.get("when", {}), entry.get("probs", {})
        for f in when:
            if f not in FACTORS:
                raise ValueError(f"{where}, {task} entry {n}: unknown factor {f!r}."
                                 f"{did_you_mean(f, FACTORS)} Factors: {', '.join(FACTORS)}")
        row = np.zeros(k)
        for name, p in probs.items():
            if name not in options:
                raise ValueError(f"{where}, {task} entry {n}: {name!r} is not an option of "
                                 f"{task}.{did_you_mean(name, options)} Options: "
                                 f"{', '.join(options)}")
            if not (isinstance(p, (int, float)) and p >= 0):
                raise ValueError(f"{where}, {task} entry {n}: probability of {name!r} must be a "
                                 f"number >= 0, got {p!r}")
            row[options.index(name)] = p
        if row.sum() <= 0:
            raise ValueError(f"{where}, {task} entry {n}: probabilities sum to 0")
        row /= row.sum()
        for i in range(NUM_ABSTRACT_STATES):
            f = decode(i)
            if all(_matches(getattr(f, key), want) for key, want in when.items()):
                total[i] += row
                count[i] += 1
    default = data.get("default", "uniform")
    missing = np.flatnonzero(count == 0)
    if missing.size and default == "error":
        raise ValueError(f"{where}: no entry matches abstract states {missing.tolist()} of {task}")
    probs = np.where(count[:, None] > 0, total / np.maximum(count, 1)[:, None], 1.0 / k)
    meta = {"model": data.get("model"), "source": data["source"], "table_file": Path(path).name,
            "unmatched_states": missing.tolist(), "temperature": None}
    return probs.astype(np.float32), meta


def _matches(value: int, want) -> bool:
    return value in want if isinstance(want, list) else value == want
