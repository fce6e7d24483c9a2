"""Collects transfer studies into bench/transfer/ and prints one combined Markdown table.

    python bench/transfer_summary.py runs/transfer/LavaDoorKey-oracle runs/transfer/...

Copies each study's results.md, transfer.png and summary.json to bench/transfer/<study>.*, then
prints, per approach, steps to 0.9 success and held-out success for every study given (the
README's table). With no arguments it reads the copies already in bench/transfer/.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent / "transfer"


def cell(row: dict) -> str:
    ok = np.asarray(row["final_success"], float)
    held = f"{ok.mean():.2f}"
    if not row["learn"]:
        return f"alone: success {held}"
    v = np.asarray(row["steps_to_0.9"], float)
    hit = v[np.isfinite(v)]
    if not hit.size:
        return f"not reached (held-out {held})"
    text = f"{hit.mean() / 1e3:.0f}k ± {hit.std() / 1e3:.0f}k"
    if hit.size < v.size:
        text += f" ({hit.size}/{v.size})"
    return f"**{text}** ({held})" if row["approach"] in ("4", "5") else f"{text} ({held})"


def load(folder: Path = HERE) -> list[dict]:
    """The studies' summary.json copies in `folder`, oracle first within a target, each with
    its file's stem as `study`."""
    studies = sorted(folder.glob("*.json"),
                     key=lambda p: (p.stem.split("-")[0], "oracle" not in p.stem, p.stem))
    return [{**json.loads(p.read_text()), "study": p.stem} for p in studies]


def table(data: list[dict]) -> str:
    """Per approach, steps to 0.9 and held-out success for every study (the README's table);
    a study that ran some approaches only leaves the others' cells empty."""
    heads = [f"{d['target']}, {d['study'].removeprefix(d['target'] + '-')}" for d in data]
    labels = {}
    for d in data:
        for row in d["approaches"]:
            labels.setdefault(row["approach"], row["label"])
    lines = ["| approach | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for approach in sorted(labels):
        cells = [next((cell(r) for r in d["approaches"] if r["approach"] == approach), "")
                 for d in data]
        lines.append(f"| {labels[approach]} | " + " | ".join(cells) + " |")
    lines.append("| whole study (wall) | "
                 + " | ".join(f"{d['wall_s'] / 60:.1f} min" for d in data) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    HERE.mkdir(exist_ok=True)
    for study in map(Path, argv):
        for src, suffix in (("results.md", ".md"), ("transfer.png", ".png"),
                            ("summary.json", ".json")):
            shutil.copyfile(study / src, HERE / f"{study.name}{suffix}")
    print(table(load()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
