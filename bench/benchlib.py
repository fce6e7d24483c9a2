"""What the benchmarks share: the checkout's root on `sys.path` (a checkout, or a git worktree of
another revision, benchmarks its own `jaxrl3m`, installed or not), one argument parser, one
description of the hardware, and one way to write results (atomic JSON, a Markdown table beside
it). Every script in bench/ starts with `from benchlib import ROOT` (run as
`python bench/<script>.py`, bench/ is on the path).

    p = benchlib.parser(__doc__, "scaling.json")   # --out bench/scaling.json (alias --json)
    ...
    benchlib.save(args.out, {"results": rows}, markdown=table)  # + "hardware", + scaling.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parser(doc: str | None, out: str | None = None, **kwargs: Any) -> argparse.ArgumentParser:
    """An ArgumentParser whose help is the script's docstring (layout kept), with `--out`
    (default `bench/<out>`; `--json` is the same option, the older scripts' name) when the
    script writes a results file."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter,
                                **kwargs)
    if out is not None:
        p.add_argument("--out", "--json", dest="out", default=str(ROOT / "bench" / out),
                       help="results JSON (default: %(default)s); a Markdown table, where the "
                            "script makes one, goes beside it as .md")
    return p


def hardware() -> dict[str, Any]:
    """The machine a measurement ran on: CPU model, cores, platform, JAX and its devices."""
    import jax
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
            "jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
            "device_kind": ", ".join(sorted({d.device_kind for d in jax.devices()}))}


def describe(hw: dict[str, Any] | str) -> str:
    """One line for a results file's `hardware` (older files hold a string: returned as is)."""
    if isinstance(hw, str):
        return hw
    if "cpu" not in hw:  # the older files' keys: platform, devices, cpu_count
        return (f"{hw.get('platform', 'unknown platform')}; {hw.get('cpu_count', '?')} cores; "
                + ", ".join(hw.get("devices", [])))
    return f"{hw['cpu']}; {hw['cores']} cores; JAX {hw['jax']} on {hw['device_kind']}"


def save(path: str | os.PathLike, results: dict[str, Any], markdown: str | None = None) -> Path:
    """Writes `results` (with `hardware` added unless it has one) as JSON at `path`, and
    `markdown` beside it as `.md`, each atomically (a temporary file, then a rename)."""
    from jaxrl3m.core.io import atomic_write_text
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    results = results if "hardware" in results else {"hardware": hardware(), **results}
    atomic_write_text(path, json.dumps(results, indent=1) + "\n")
    if markdown is not None:
        atomic_write_text(path.with_suffix(".md"), markdown.rstrip("\n") + "\n")
    return path


def merged(path: str | os.PathLike, fresh: bool = False) -> dict[str, Any]:
    """`{"hardware": ..., "results": [...]}` holding the rows already in `path` when they were
    measured on this hardware and `fresh` is false (rows measured elsewhere are never mixed in):
    a script that measures row by row adds its rows with `put` and saves after each."""
    hw = hardware()
    path = Path(path)
    if path.exists() and not fresh:
        old = json.loads(path.read_text())
        if old.get("hardware") == hw:
            return {**old, "hardware": hw, "results": list(old.get("results", []))}
    return {"hardware": hw, "results": []}


def put(out: dict[str, Any], row: dict[str, Any], *key: str) -> None:
    """Adds `row` to `out["results"]`, replacing the row with the same values of `key`."""
    out["results"] = [r for r in out["results"]
                      if tuple(r.get(k) for k in key) != tuple(row[k] for k in key)] + [row]


# ---------------------------------------------------------------------------------------------
# Timing the driver's chunk (train_throughput, revisions, window_throughput)
# ---------------------------------------------------------------------------------------------
def compiled_chunk(algo: Any, seeds: int, updates: int, inputs: Any, vmap: Any = None
                   ) -> tuple[Any, Any, float]:
    """`(chunk, state, compile seconds)`: the driver's jitted chunk of `updates` updates for
    `seeds` seeds vmapped as the driver vmaps them (`jaxrl3m.core.parallel.vmap_seeds`; `vmap`
    for revisions from before it), compiled and run once on `inputs`."""
    import time

    import jax
    if vmap is None:
        from jaxrl3m.core.parallel import vmap_seeds as vmap
    state = jax.jit(vmap(algo.init))(jax.random.split(jax.random.key(0), seeds))
    chunk = jax.jit(vmap(lambda s, i: algo.update(s, i, updates), in_axes=(0, None)))
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(chunk(state, inputs))
    return chunk, state, time.perf_counter() - t0


def alternate(chunks: dict[Any, tuple[Any, Any]], inputs: Any, repeats: int
              ) -> dict[Any, list[float]]:
    """`chunks`: name -> `(chunk, state)`, a chunk mapping `(state, inputs)` to
    `(state, metrics)`. Runs every chunk `repeats` times, alternating between them so that a
    slow spell of the machine hits all alike; returns each one's wall seconds per run."""
    import time

    import jax
    states = {k: state for k, (_, state) in chunks.items()}
    times: dict[Any, list[float]] = {k: [] for k in chunks}
    for _ in range(repeats):
        for k, (chunk, _) in chunks.items():
            t0 = time.perf_counter()
            states[k], _ = jax.block_until_ready(chunk(states[k], inputs))
            times[k].append(time.perf_counter() - t0)
    return times
