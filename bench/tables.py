"""Results tables made from the benchmarks' JSON, never typed: `python bench/tables.py`.

Each table is written between `<!-- table:NAME -->` and `<!-- /table:NAME -->` in the files that
show it (README.md and the docs); a re-run of a benchmark followed by this script updates them.
`--check` changes nothing and exits 1 when a committed table differs from what the committed
JSON makes (the test suite runs it).

    python bench/tables.py            # rewrite the tables in README.md and docs/
    python bench/tables.py --check    # are they what the JSON says?
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILES = (ROOT / "README.md",)


def _m(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e5 else f"{x / 1e3:.1f}k"


def peers_table(data: dict) -> str:
    """Our PPO against rejax's and NAVIX's, end to end and training steps/s (bench/peers.json)."""
    names = {"doorkey": "DoorKey, {seeds} seeds of PPO, {steps:,} steps",
             "navix-8x8": "NAVIX DoorKey-8x8, NAVIX's rejax config, {seeds} seeds, {steps:,} steps"}
    rows = ["| | jaxrl3m | rejax | NAVIX's PPO | ratio (rejax / NAVIX) |", "|---|---|---|---|---|"]
    for key, label in names.items():
        r, st = data["results"][key], data["settings"][key]
        label = label.format(seeds=st["seeds"], steps=st["steps"])
        ours, rej, nav = r["ours"], r["rejax"], r["navix"]
        rows.append(f"| {label}, end to end | {ours['wall_s']:.1f} s | {rej['wall_s']:.1f} s | "
                    f"{nav['wall_s']:.1f} s | {rej['wall_s'] / ours['wall_s']:.2f}x / "
                    f"{nav['wall_s'] / ours['wall_s']:.2f}x |")
        rows.append(f"| same, training steps/s | {ours['train_steps_per_s'] / 1e3:.0f}k | "
                    f"{rej['train_steps_per_s'] / 1e3:.0f}k | {nav['train_steps_per_s'] / 1e3:.0f}k"
                    f" | {ours['train_steps_per_s'] / rej['train_steps_per_s']:.2f}x / "
                    f"{ours['train_steps_per_s'] / nav['train_steps_per_s']:.2f}x |")
    rows.append(f"\n`{data['command']}` ({data['hardware']}; "
                + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ")")
    return "\n".join(rows)


def env_table(data: dict) -> str:
    """Environment steps per second against the number of environments
    (bench/env_throughput.json), with the ratio to NAVIX's own DoorKey-8x8 at 4096."""
    res = data["results"]
    sizes = ("1", "1024", "4096", "8192")
    navix = res.get("NAVIX DoorKey-8x8", {})
    rows = ["| task | " + " | ".join(f"{n} env{'s' if n != '1' else ''}" for n in sizes) + " |",
            "|---" * (len(sizes) + 1) + "|"]
    for task, by_n in res.items():
        cells = []
        for n in sizes:
            if n not in by_n:
                cells.append("")
                continue
            sps = by_n[n]["steps_per_s"]
            cell = _m(sps)
            if n == "4096" and navix.get(n) and not task.startswith(("NAVIX", "gymnasium")):
                cell += f" ({sps / navix[n]['steps_per_s']:.1f}x NAVIX)"
            cells.append(cell)
        rows.append(f"| {task} | " + " | ".join(cells) + " |")
    rows.append(f"\n`python bench/env_throughput.py` ({data['hardware']})")
    return "\n".join(rows)


def tables() -> dict[str, str]:
    read = lambda name: json.loads((ROOT / "bench" / name).read_text())  # noqa: E731
    return {"peers": peers_table(read("peers.json")),
            "env-throughput": env_table(read("env_throughput.json"))}


def fill(text: str, made: dict[str, str]) -> str:
    for name, table in made.items():
        pattern = re.compile(rf"(<!-- table:{name} -->\n)(?:.*?\n)?(<!-- /table:{name} -->)", re.S)
        text = pattern.sub(lambda m: m.group(1) + table + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    made = tables()
    stale = []
    for path in FILES:
        text = path.read_text()
        new = fill(text, made)
        if new != text:
            stale.append(path)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print("error: tables differ from what bench/*.json makes in "
              + ", ".join(str(p.relative_to(ROOT)) for p in stale)
              + ": run python bench/tables.py", file=sys.stderr)
        return 1
    print(("stale: " if args.check else "updated: ")
          + (", ".join(str(p.relative_to(ROOT)) for p in stale) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
