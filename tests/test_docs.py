"""The documentation site builds strictly (broken links and missing references fail), its API
pages carry the docstrings, and the README stays a front door."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_site_builds_strictly_with_the_api_reference(tmp_path):
    site = tmp_path / "site"
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    api = (site / "api" / "index.html").read_text()
    assert "Builds a task by name" in api  # jaxrl3m.envs.make's docstring, by mkdocstrings
    assert "What a run guarantees" in (site / "guarantees" / "index.html").read_text()
    assert "Benchmark results" in (site / "results" / "index.html").read_text()


def test_the_readme_is_short_and_its_doc_links_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 200
    links = re.findall(r"\]\(((?:docs|bench)/[^)#]+)\)", text)
    assert len(links) >= 10
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_the_walkthrough_runs_on_its_tiny_budgets(capsys):
    import runpy
    runpy.run_path(str(ROOT / "docs" / "walkthrough.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "held-out success per seed:" in out and "inputs.json" in out
    assert re.search(r"episode\.gif: \d+ frames, success in \d+ steps", out)


def test_results_tables_are_what_the_benchmark_json_makes(tmp_path, capsys):
    import importlib.util
    import json
    spec = importlib.util.spec_from_file_location("tables", ROOT / "bench" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    assert tables.main(["--check"]) == 0
    made = tables.tables()
    shown = "".join(path.read_text() for path in tables.FILES)
    missing = [name for name, t in made.items()
               if f"<!-- table:{name} -->\n{t}\n<!-- /table:{name} -->" not in shown]
    assert not missing, missing
    results = (ROOT / "docs" / "results.md").read_text()
    assert {"learning-ppo", "posterior", "transfer", "lamo", "offline-DoorKey"} <= set(
        re.findall(r"<!-- table:([\w-]+) -->", results))
    # A re-measured figure changes the table (and --check would then fail on the old README).
    readme = (ROOT / "README.md").read_text()
    peers = json.loads((ROOT / "bench" / "peers.json").read_text())
    peers["results"]["doorkey"]["ours"]["wall_s"] = 10.0
    assert tables.fill(readme, {"peers": tables.peers_table(peers)}) != readme
    learning = json.loads((ROOT / "bench" / "learning.json").read_text())
    learning["DoorKey"]["oracle"]["eval_success_mean"] = 0.5
    assert "0.500 ±" in tables._bench("learning").markdown_table(learning)
    # A table placed nowhere, or a marker naming no table, is an error rather than a silent gap.
    page = tmp_path / "page.md"
    page.write_text(shown.replace("<!-- table:lamo -->", "").replace("<!-- /table:lamo -->", ""))
    tables.FILES = (page,)
    assert tables.main(["--check"]) == 1
    assert "tables placed nowhere" in capsys.readouterr().err
    page.write_text(shown + "<!-- table:nonesuch -->\n<!-- /table:nonesuch -->\n")
    assert tables.main(["--check"]) == 1
    assert "no table of that name: nonesuch" in capsys.readouterr().err
