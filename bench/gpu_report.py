"""The GPU section of bench/RESULTS.md from the JSON files that `bench/gpu.sh` writes.

    python bench/gpu_report.py --dir bench/gpu --results bench/RESULTS.md

Replaces the text between `<!-- gpu:begin -->` and `<!-- gpu:end -->` (appends the section
when the markers are missing). Aims (issue 25): >= 50M raw env steps/s and >= 5M guided training
steps/s on one H100/H200; the section says where they are met.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import benchlib
from benchlib import ROOT

BEGIN, END = "<!-- gpu:begin -->", "<!-- gpu:end -->"
RAW_AIM, GUIDED_AIM = 50e6, 5e6


def section(d: Path, tiny: bool) -> str:
    env = json.loads((d / "env.json").read_text())
    train = json.loads((d / "train.json").read_text())
    first = json.loads((d / "main_first.json").read_text())
    second = json.loads((d / "main_second.json").read_text())
    device = ", ".join(sorted(set(train["hardware"]["devices"])))
    raw = env["results"]
    sizes = sorted({int(n) for per in raw.values() for n in per})
    lines = ["## GPU (`bash bench/gpu.sh`)", "",
             f"Device: {device}; {benchlib.describe(env['hardware'])}." + (
                 " **Tiny sizes (`--tiny`): a check of the script, not a measurement.**"
                 if tiny else ""), "",
             "Raw stepping (random actions, `jit(scan(vmap(step)))`, compile apart), env "
             "steps/s:", "",
             "| task | " + " | ".join(f"{n} envs" for n in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]
    for name, per in raw.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{per[str(n)]['steps_per_s']:,.0f}" if str(n) in per else "" for n in sizes) + " |")
    best_raw = max(r["steps_per_s"] for name, per in raw.items() if not name.startswith("NAVIX")
                   for r in per.values())
    lines += ["", "Training (the driver's chunk, presets' hyperparameters, 32 steps per rollout, "
              "compile apart), env steps/s:", "",
              "| task | envs | plain PPO | guided PPO | guided / plain |", "|---|---|---|---|---|"]
    for r in sorted(train["results"], key=lambda r: (r["task"], r["envs"])):
        lines.append(f"| {r['task']} | {r['envs']} | {r['plain']['steps_per_s']:,.0f} | "
                     f"{r['guided']['steps_per_s']:,.0f} | {r['guided_over_plain']:.2f} |")
    best_guided = max(r["guided"]["steps_per_s"] for r in train["results"])
    lines += ["", "The main job (`python -m jaxrl3m.train ColoredDoorKey-vicuna33b-posterior`), "
              "command start to finished run folder:", "",
              "| run | wall s | compile s | training steps/s | held-out success |",
              "|---|---|---|---|---|"]
    for name, r in (("first (empty cache)", first), ("second (warm cache)", second)):
        lines.append(f"| {name} | {r['wall_s']:.1f} | {r['compile_s']:.1f} | "
                     f"{r['train_steps_per_s']:,.0f} | {r['eval_success']:.3f} |")
    lines += ["", f"Aims: raw stepping >= 50M steps/s: best {best_raw / 1e6:.1f}M ("
              f"{'met' if best_raw >= RAW_AIM else 'not met'}); guided training >= 5M steps/s: "
              f"best {best_guided / 1e6:.2f}M ({'met' if best_guided >= GUIDED_AIM else 'not met'})."]
    return "\n".join(lines)


def write(results: Path, text: str) -> None:
    from jaxrl3m.core.io import atomic_write_text
    old = results.read_text() if results.exists() else ""
    block = f"{BEGIN}\n{text}\n{END}"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + block + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(results, new)


def main(argv=None) -> int:
    p = benchlib.parser(__doc__)
    p.add_argument("--dir", default=str(ROOT / "bench" / "gpu"))
    p.add_argument("--results", default=str(ROOT / "bench" / "RESULTS.md"))
    p.add_argument("--tiny", action="store_true")
    args = p.parse_args(argv)
    text = section(Path(args.dir), args.tiny)
    write(Path(args.results), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
