"""The GPU benchmark script, run unchanged at tiny sizes on the CPU (its figures are measured on
an accelerator; here: every step runs and the RESULTS.md section is written, and rewritten in
place on a second report)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
