"""`python -m jaxrl3m.priors_report TABLE [--all] [--png FILE]`: what a prior table says.

Prints, for every reachable abstract state of the table's task (all of them with `--all`), its
text, the table's top options, the oracle's options and whether they agree (where the task has an
oracle), then the agreement over reachable states; draws a heat map of the table (states x options, oracle options outlined) to a
PNG next to the table (or `--png FILE`; needs matplotlib, `pip install jaxrl3m[plot]`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from . import envs
from .teacher.priors import agreement
from .teacher.teacher import reachable_states
from .teacher.table import TableError, load_table


def _oracle(task: str, i: int) -> tuple[str, ...]:
    """The oracle's options in state `i`; none for a task without an oracle."""
    guide = envs.guidance(task)
    return guide.oracle_options(task, i) if guide.oracle else ()


def report(table, states) -> str:
    task, options = table.task, table.options
    describe = envs.guidance(task).describe
    lines = [f"prior table: task {task}, backend {table.metadata.get('backend')}, model "
             f"{table.metadata.get('model')}", ""]
    for i in states:
        row = table.probs[i]
        top = np.argsort(-row)[:3]
        right = _oracle(task, i)
        ok = options[int(top[0])] in right
        lines.append(f"[{i:2d}] {describe(i)}")
        lines.append("     LLM:    " + ", ".join(f"{options[k]} {row[k]:.2f}" for k in top))
        if right:
            lines.append(f"     oracle: {' / '.join(right)}   {'agree' if ok else 'DISAGREE'}")
    reach = reachable_states(task)
    lines.append("")
    agree = agreement(table.probs, task, reach)
    lines.append(f"agreement (top option is an oracle option): {agree:.0%} of {len(reach)} "
                 f"reachable states" if agree == agree else f"{task} has no oracle to compare")
    return "\n".join(lines)


def heat_map(table, states, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle
    options = table.options
    data = table.probs[list(states)]
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(options), 1.5 + 0.42 * len(states)))
    im = ax.imshow(data, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for r, i in enumerate(states):
        for k, name in enumerate(options):
            ax.text(k, r, f"{data[r, k]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if data[r, k] < 0.6 else "black")
            if name in _oracle(table.task, i):
                ax.add_patch(Rectangle((k - 0.5, r - 0.5), 1, 1, fill=False, ec="red", lw=2))
    ax.set_xticks(range(len(options)), [o.replace(" of ", "\nof ") for o in options], fontsize=7,
                  rotation=30, ha="right")
    describe = envs.guidance(table.task).describe
    ax.set_yticks(range(len(states)), [f"{i}: {describe(i)[:70]}" for i in states], fontsize=6)
    ax.set_title(f"{table.task}: {table.metadata.get('model') or table.metadata.get('backend')}"
                 " (red: oracle's options)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.priors_report", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("table")
    p.add_argument("--all", action="store_true", help="every abstract state, not only reachable")
    p.add_argument("--png", default=None, help="heat map path (default: TABLE with .png)")
    p.add_argument("--no-png", action="store_true")
    args = p.parse_args(argv)
    try:
        table = load_table(args.table)
    except TableError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    states = (tuple(range(envs.guidance(table.task).num_states)) if args.all
              else reachable_states(table.task))
    print(report(table, states))
    if not args.no_png:
        try:
            out = heat_map(table, states, Path(args.png or Path(args.table).with_suffix(".png")))
            print(f"heat map: {out}")
        except ImportError:
            print("heat map skipped: matplotlib is not installed (pip install 'jaxrl3m[plot]')",
                  file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
