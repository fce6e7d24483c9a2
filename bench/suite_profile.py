"""Where the test suite's time goes: a pytest plugin and its report.

The suite compiles far more than it computes, so the plugin records JAX's compile events
(`jax.monitoring`: tracing, lowering to MLIR, XLA's backend compilation, persistent-cache hits)
per test and per compiled program, in every pytest worker:

    make test PYTEST_ARGS="-q -n 2 --dist loadfile -p suite_profile" \\
        PYTHONPATH=bench SUITE_PROFILE=/tmp/suite.jsonl
    python bench/suite_profile.py /tmp/suite.jsonl [--top 40]

The report gives the seconds per test file (wall, backend compilation, tracing, lowering, cache
savings), per pytest worker, and the programs that compiled most often or longest (by the
function name JAX records), which is where a shared configuration saves the most. Subprocesses
started by tests (the multi-device and multi-process tests, the bench scripts) are counted in
their test's wall time only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import time

BACKEND = "/jax/core/compile/backend_compile_duration"
TRACE = "/jax/core/compile/jaxpr_trace_duration"
LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
SAVED = "/jax/compilation_cache/compile_time_saved_sec"
KINDS = {BACKEND: "backend", TRACE: "trace", LOWER: "lower", SAVED: "saved"}

# ------------------------------------------------------------------------------------------
# The plugin (loaded with `-p suite_profile`, bench/ on PYTHONPATH)
# ------------------------------------------------------------------------------------------
_current = {"test": "<collection>", "t0": 0.0, "events": []}


def _listener(event, duration, **kwargs):
    kind = KINDS.get(event)
    if kind is not None:
        _current["events"].append((kind, kwargs.get("fun_name", "?"), round(duration, 4)))


def pytest_configure(config):
    import jax.monitoring
    jax.monitoring.register_event_duration_secs_listener(_listener)


def pytest_runtest_setup(item):
    _current.update(test=item.nodeid, t0=time.perf_counter(), events=[])


def pytest_runtest_logfinish(nodeid, location):
    if _current["test"] != nodeid:  # xdist's controller hears of every worker's tests
        return
    row = {"test": nodeid, "worker": os.environ.get("PYTEST_XDIST_WORKER", "main"),
           "wall": round(time.perf_counter() - _current["t0"], 3),
           "start": round(time.time() - (time.perf_counter() - _current["t0"]), 3),
           "events": _current["events"]}
    with open(os.environ.get("SUITE_PROFILE", "suite_profile.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    _current.update(test="<between tests>", events=[])


# ------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------
def report(path: str, top: int = 30) -> str:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    files = collections.defaultdict(lambda: collections.Counter())
    workers = collections.Counter()
    programs = collections.defaultdict(lambda: [0, 0.0, set()])
    for r in rows:
        f = r["test"].split("::")[0]
        files[f]["wall"] += r["wall"]
        workers[r["worker"]] += r["wall"]
        for kind, name, seconds in r["events"]:
            files[f][kind] += seconds
            if kind == "backend":
                p = programs[name]
                p[0] += 1
                p[1] += seconds
                p[2].add(os.path.basename(f))
    out = ["| file | wall | backend | trace | lower | cache saved |", "|---|---|---|---|---|---|"]
    total = collections.Counter()
    for f, c in sorted(files.items(), key=lambda kv: -kv[1]["wall"]):
        out.append(f"| {f} | {c['wall']:.1f} | {c['backend']:.1f} | {c['trace']:.1f} | "
                   f"{c['lower']:.1f} | {c['saved']:.1f} |")
        total.update(c)
    out.append(f"| **all** | {total['wall']:.1f} | {total['backend']:.1f} | {total['trace']:.1f}"
               f" | {total['lower']:.1f} | {total['saved']:.1f} |")
    out.append("")
    out.append("per worker: " + ", ".join(f"{w} {s:.1f} s" for w, s in sorted(workers.items())))
    out.append("")
    out.append("| program | backend compilations | seconds | files |")
    out.append("|---|---|---|---|")
    for name, (n, s, fs) in sorted(programs.items(), key=lambda kv: -kv[1][1])[:top]:
        out.append(f"| {name} | {n} | {s:.1f} | {', '.join(sorted(fs))} |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("profile", help="the JSON lines the plugin wrote ($SUITE_PROFILE)")
    p.add_argument("--top", type=int, default=30, help="programs listed (default 30)")
    a = p.parse_args(argv)
    print(report(a.profile, a.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
