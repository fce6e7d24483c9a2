"""The GPU benchmark script, run unchanged at tiny sizes on the CPU (its figures are measured on
an accelerator; here: every step runs and the RESULTS.md section is written, and rewritten in
place on a second report)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def bench_module(name: str):
    """A bench/ script imported as a module (bench/ on the path only while it imports)."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def test_gpu_script_runs_at_tiny_sizes_and_writes_its_section(tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nearlier sections stay\n")
    env = {**os.environ, "OUT": str(tmp_path / "gpu"), "RESULTS": str(results),
           "PY": sys.executable, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    p = subprocess.run(["bash", "bench/gpu.sh", "--tiny"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    text = results.read_text()
    assert text.startswith("# Benchmark results\n\nearlier sections stay\n")
    assert text.count("<!-- gpu:begin -->") == 1 and "Tiny sizes" in text
    for row in ("| DoorKey | 8 |"[:10], "| ColoredDoorKey |", "| DoorKey | 64 |",
                "first (empty cache)", "second (warm cache)", "Aims: raw stepping"):
        assert row in text, row
    # The report again: the section is replaced, not appended.
    subprocess.run([sys.executable, "bench/gpu_report.py", "--dir", str(tmp_path / "gpu"),
                    "--results", str(results), "--tiny"], cwd=ROOT, check=True,
                   capture_output=True)
    assert results.read_text().count("<!-- gpu:begin -->") == 1


def test_validation_choice_rule():
    """bench/validate.py's rule: the highest mean validation success; values within one
    standard error of it tie and the fewest steps to 0.9 (training curve) wins, then the
    default. Held-out figures are not among its inputs at all."""
    validate = bench_module("validate")

    def cell(success, steps):
        return {"validation_success": success, "steps_to_0.9_training": steps}

    # b is best by far: chosen whatever its steps
    rows = {"p": {"a": cell([0.5, 0.6], [1e5, 1e5]), "b": cell([0.9, 0.92], [None, 9e5])}}
    assert validate.choose(rows, ["a", "b"], "a")[0] == "b"
    # a and b tie within a standard error (0.05): the faster one (b) wins over the better mean
    rows = {"p": {"a": cell([0.95, 0.85], [5e5, 5e5]), "b": cell([0.90, 0.86], [2e5, 3e5])}}
    chosen, means = validate.choose(rows, ["a", "b"], "a")
    assert chosen == "b" and abs(means["a"]["stderr"] - 0.05) < 1e-9
    # a full tie (no seed reached 0.9 anywhere): the default
    rows = {"p": {"a": cell([0.5, 0.5], [None, None]), "b": cell([0.5, 0.5], [None, None])}}
    assert validate.choose(rows, ["a", "b"], "b")[0] == "b"
    # means pool presets: p favours a, q favours b more
    rows = {"p": {"a": cell([0.8, 0.8], [None] * 2), "b": cell([0.7, 0.7], [None] * 2)},
            "q": {"a": cell([0.2, 0.2], [None] * 2), "b": cell([0.5, 0.5], [None] * 2)}}
    assert validate.choose(rows, ["a", "b"], "a")[0] == "b"


def test_learning_figure_keeps_rows_whose_run_folder_is_elsewhere(tmp_path, monkeypatch):
    """bench/learning.py's figure of a task draws every row: from its run folder where there is
    one, else from the mean curve its JSON entry stores (a row measured on another machine),
    once per seed; a row with neither is left out rather than failing."""
    learning = bench_module("learning")
    drawn = {}
    monkeypatch.setattr(learning.curves, "plot_learning_curves",
                        lambda c, path, *a, **k: drawn.update(c))
    here = tmp_path / "run"
    here.mkdir()
    (here / "metrics.csv").write_text(
        "seed,update,env_steps,eval_success,eval_return\n0,1,100,0.0,0.0\n0,2,200,0.5,0.4\n")
    stored = {"run_dir": str(tmp_path / "gone"), "seeds": 4, "curve_steps": [100.0, 200.0],
              "curve_success_mean": [0.25, 0.75]}
    results = {"T": {"ppo": {"run_dir": str(here), "seeds": 1},
                     "oracle": stored, "uniform": {"run_dir": str(tmp_path / "gone"),
                                                   "seeds": 4}}}
    learning.plot_task(results, "T", tmp_path / "learning_x.json")
    assert set(drawn) == {learning.LABELS["ppo"], "oracle, fixed"}
    steps, succ = drawn["oracle, fixed"]
    assert succ.shape == (4, 2) and np.allclose(succ.mean(0), [0.25, 0.75])
    steps, succ = drawn[learning.LABELS["ppo"]]
    assert np.allclose(steps, [100, 200]) and np.allclose(succ[0], [0.0, 0.5])
