"""Learning speed, measured: environment steps to 0.9 success, guided vs plain PPO.

    python bench/learning.py                       # every task and prior, 4 seeds (~30 min, 2 cores)
    python bench/learning.py --tasks DoorKey --priors oracle ppo --seeds 4
    python bench/learning.py --tasks DoorKey --priors oracle --set network=cnn   # a variant

Each (task, prior) runs its preset `configs/<task>-<prior>.yaml` through the library's driver
(`jaxrl3m.core.driver.train_run`) with all seeds in one vmap, into full run folders in
`runs/bench-learning/` (config.yaml included: each can be evaluated or resumed). Steps to 0.9 are read from the training
episodes' success rate pooled over the last 5 updates (at least 50 episodes). Writes
`bench/learning.json` and `bench/learning_<task>.png` (mean and min-max band over seeds).
`--set key=value ...` overrides preset keys (a variant: its rows are stored as
`"<prior> key=value"` next to the preset's and labelled so in the table).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxrl3m.core import metrics as curves  # noqa: E402
from jaxrl3m.core.config import parse_overrides  # noqa: E402
from jaxrl3m.core.driver import train_run  # noqa: E402
from jaxrl3m.core.io import atomic_write_text  # noqa: E402
from jaxrl3m.core.runs import create_run, load_config, setup  # noqa: E402

TASKS = ("DoorKey", "LavaDoorKey", "ColoredDoorKey")
PRIORS = ("ppo", "oracle", "vicuna33b", "llm")
# Plain PPO needs far more steps than guided PPO; give it room to reach 0.9.
PPO_STEPS = {"DoorKey": 2_000_000, "LavaDoorKey": 1_000_000, "ColoredDoorKey": 1_000_000}
LABELS = {"ppo": "none (plain PPO)", "oracle": "oracle", "vicuna33b": "vicuna-33b (LLM4Teach)",
          "llm": "SmolLM2-135M"}


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Mean over seeds; NaN (no episode ended yet) where every seed is NaN, without warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, 0)


def _k(x: float) -> str:
    return f"{x / 1000:.0f}k"


def _label(name: str) -> str:
    prior, _, variant = name.partition(" ")
    return LABELS[prior] + (f", {variant}" if variant else "")


def _order(name: str) -> tuple[int, str]:
    prior = name.partition(" ")[0]
    return PRIORS.index(prior) if prior in PRIORS else len(PRIORS), name


def markdown_table(results: dict) -> str:
    """The README / RESULTS.md table from `bench/learning.json`."""
    lines = ["| task | prior | steps to 0.9, per seed | mean | reached | "
             "held-out success (500 ep/seed) | wall |", "|---|---|---|---|---|---|---|"]
    for task in TASKS:
        for name in sorted(results.get(task, {}), key=_order):
            r = results[task][name]
            per_seed = ", ".join("—" if x is None else _k(x) for x in r["steps_to_0.9"])
            mean = "not reached" if r["steps_to_0.9_mean"] is None else _k(r["steps_to_0.9_mean"])
            lines.append(f"| {task} | {_label(name)} | {per_seed} | {mean} | "
                         f"{r['reached']}/{r['seeds']} in {r['env_steps'] / 1e6:.1f}M | "
                         f"{r['eval_success_mean']:.3f} ± {r['eval_success_std']:.3f} | "
                         f"{r['wall_s']:.0f} s |")
    return "\n".join(lines)


def comparison_table(before: dict, after: dict) -> str:
    """Rows present in both JSONs: mean steps to 0.9 and held-out success, before -> after."""
    def steps(r):
        hit = [x for x in r["steps_to_0.9"] if x is not None]
        return (f"{_k(float(np.mean(hit)))} ({len(hit)}/{r['seeds']})" if hit else
                f"not reached (0/{r['seeds']})")
    lines = ["| task | prior | steps to 0.9, before | after | held-out success, before | after |",
             "|---|---|---|---|---|---|"]
    for task in TASKS:
        for name in sorted(set(before.get(task, {})) & set(after.get(task, {})), key=_order):
            b, a = before[task][name], after[task][name]
            lines.append(f"| {task} | {_label(name)} | {steps(b)} | {steps(a)} | "
                         f"{b['eval_success_mean']:.3f} ± {b['eval_success_std']:.3f} | "
                         f"{a['eval_success_mean']:.3f} ± {a['eval_success_std']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--priors", nargs="+", default=list(PRIORS), choices=PRIORS)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "bench" / "learning.json"))
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override preset keys (a variant, stored under its own name)")
    p.add_argument("--markdown", action="store_true",
                   help="print the Markdown table of the JSON and exit (runs nothing)")
    p.add_argument("--against", metavar="OLD_JSON",
                   help="with --markdown: a before/after table against an older JSON")
    args = p.parse_args(argv)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    if args.markdown:
        print(comparison_table(json.loads(Path(args.against).read_text()), results)
              if args.against else markdown_table(results))
        return 0
    results["hardware"] = {"platform": platform.platform(), "devices": [str(d) for d in
                           jax.devices()], "cpu_count": __import__("os").cpu_count()}
    for task in args.tasks:
        for prior in args.priors:
            overrides = {"seeds": args.seeds, "runs_dir": str(ROOT / "runs" / "bench-learning"),
                         "eval_episodes": 500}
            if prior == "ppo":
                overrides["total_steps"] = PPO_STEPS[task]
            overrides.update(parse_overrides(args.set))
            name = " ".join([prior, *args.set])
            if args.set:
                overrides["name"] = f"{task}-{prior}-" + "-".join(
                    x.replace("=", "_") for x in args.set)
            config, run = load_config(f"{task}-{prior}", overrides)
            prepared = setup(config, run)
            run_dir, run = create_run(config, run)
            t0 = time.perf_counter()
            s = train_run(config, run, run_dir, progress=True, prepared=prepared)
            rows = curves.read_csv(run_dir / "metrics.csv")
            steps, succ, _ = curves.curves(rows)
            to = np.array(s["steps_to_0.9"], dtype=float)
            results.setdefault(task, {})[name] = {
                "config": f"configs/{task}-{prior}.yaml", "seeds": args.seeds,
                "env_steps": int(steps[-1]), "steps_to_0.9": [None if math.isnan(x) else x
                                                             for x in to],
                "steps_to_0.9_mean": float(to.mean()) if np.isfinite(to).all() else None,
                "reached": int(np.isfinite(to).sum()),
                "final_success_mean": s["final_success_mean"],
                "eval_success_mean": s["eval"]["success_mean"],
                "eval_success_std": s["eval"]["success_std"],
                "wall_s": time.perf_counter() - t0, "run_dir": str(run_dir.relative_to(ROOT)),
                "curve_steps": steps[::5].tolist(),
                "curve_success_mean": _nanmean(succ)[::5].round(4).tolist()}
            atomic_write_text(out_path, json.dumps(results, indent=1) + "\n")
            r = results[task][name]
            print(f"{task:15s} {name:10s} steps to 0.9: {r['steps_to_0.9']} "
                  f"(reached {r['reached']}/{args.seeds}); held-out success "
                  f"{r['eval_success_mean']:.3f}; {r['wall_s']:.0f} s", flush=True)
        curves_by_prior = {}
        for name in sorted(results.get(task, {}), key=_order):
            r = results[task][name]
            if (ROOT / r["run_dir"] / "metrics.csv").exists():
                steps, succ, _ = curves.curves(curves.read_csv(ROOT / r["run_dir"] /
                                                               "metrics.csv"))
                curves_by_prior[_label(name)] = (steps, succ)
        curves.plot_learning_curves(curves_by_prior, ROOT / "bench" / f"learning_{task}.png",
                                    f"{task}: guided vs plain PPO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
