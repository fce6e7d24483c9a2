"""The README's Python snippet runs as written, and the rollout command gives its summary."""

from __future__ import annotations

import pathlib
import re

from jaxrl3m import rollout

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_snippet_runs(capsys):
    """The README's and the docs' Python snippets run as written (each page's in order, in one
    namespace)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has a Python snippet"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
    assert "You carry" in capsys.readouterr().out
    ran = 0
    for page in sorted((README.parent / "docs").glob("*.md")):
        namespace: dict = {}
        for code in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
            exec(compile(code, str(page), "exec"), namespace)
            ran += 1
    assert ran >= 6


def test_readme_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    assert "make test" in README.read_text() and "\nmake test\n" in ci


def test_rollout_summary(capsys):
    rollout.main(["--tasks", "LavaDoorKey", "--envs", "64", "--steps", "200"])
    out = capsys.readouterr().out
    assert "== LavaDoorKey" in out and "abstract states visited" in out
    m = re.search(r"(\d+) episodes, success ([\d.]+).*lava deaths (\d+)", out)
    assert m and int(m.group(1)) > 0 and int(m.group(3)) > 0
