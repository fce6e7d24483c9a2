"""Hyperparameters chosen on validation, never on the held-out layouts (issue 27).

    python bench/validate.py posterior_tau     # the posterior teacher's temperature (~20 min)
    python bench/validate.py eval_greedy       # the DT family's evaluation mode (~15 min)
    python bench/validate.py kl_floor          # the KL term's floor on KeyCorridorS6R3 (~25 min)
    python bench/validate.py kl_floor_uniform  # the same floor for the uniform rows (~25 min)
    python bench/validate.py posterior_tau --markdown   # the table of the stored JSON

A study trains its presets, for every candidate value, with training seeds other than the ones
results report (`--seed`, default 100; reported runs use 0), periodic held-out evaluations off,
and scores each run's final checkpoint on the **validation split**: `--episodes` fresh episodes
per seed on the training layouts, from a key stream apart from training's and the held-out
evaluation's (`jaxrl3m.core.evaluation.evaluate_algo(split="validation")`). The held-out layouts
are not played at all. The value with the highest validation success, averaged over presets and
seeds, is chosen; values within one standard error of the best (the seeds' spread, pooled over
presets) are ties, broken by the fewest steps to 0.9 on the start-counted training curve (also
training layouts), then by the current default. A key that changes only how the policy is
evaluated (`eval_greedy`) trains once per preset and is scored both ways. A study may name the
configuration key it varies (`"key"`) when its name differs from it.

A rerun keeps the rows of the stored JSON measured with the same settings (a grid grown at its
edge trains only the new values). Writes `bench/validate_<key>.json` (per preset and value:
validation success per seed, steps to 0.9 on the training curve, wall time; and the choice) and
prints the table.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

import benchlib
from benchlib import ROOT

DT_STUDY = {"layers": 1, "context": 10, "batch_size": 16, "gradient_steps": 1000,
            "steps_per_update": 100, "warmup_steps": 100, "lr": 1e-3, "text_batch": 4,
            "text_len": 32}
"""bench/lamo.py's training settings for the DT family (2-core budget)."""

STUDIES = {
    "posterior_tau": {
        "what": "the posterior teacher's temperature (PPO, posterior=true)",
        "presets": {"ColoredDoorKey-llm": {"posterior": True},
                    "ColoredDoorKey-vicuna33b": {"posterior": True},
                    "LavaDoorKey-llm": {"posterior": True}},
        "values": [0.001, 0.003, 0.01, 0.03, 0.1], "default": 0.01},
    "eval_greedy": {
        "what": "the Decision Transformer family's evaluation mode (greedy or sampled actions)",
        "presets": {"dt": {**DT_STUDY, "fraction": 1.0},
                    "dt fraction=0.1": {**DT_STUDY, "fraction": 0.1},
                    "lamo fraction=0.1": {**DT_STUDY, "fraction": 0.1}},
        "values": [False, True], "default": False, "evaluation_only": True},
    "kl_floor": {
        "what": "the least weight of the teacher's KL term (PPO guided on KeyCorridorS6R3, "
                "where lambda_t = 0.995^t is near 0 by 1.5M of the 5M steps)",
        "presets": {"KeyCorridorS6R3-oracle": {}},
        "values": [0.0, 0.05], "default": 0.0},
    "kl_floor_uniform": {
        "key": "kl_floor",
        "what": "the least weight of the teacher's KL term with a uniform table under the "
                "posterior teacher (KeyCorridorS4R3 and S5R3, where the uniform rows fall "
                "short of 0.9)",
        "presets": {"KeyCorridorS4R3-uniform-posterior": {},
                    "KeyCorridorS5R3-uniform-posterior": {}},
        "values": [0.0, 0.05], "default": 0.0},
}


def _dataset(task: str = "DoorKey") -> str:
    """bench/offline.py's dataset of `task` (mixed, 2,000 episodes, data seed 0; collected if
    missing), as the DT presets' `dataset` key."""
    import offline as offline_bench
    path = ROOT / "datasets" / f"{task}-mixed-s0.npz"
    offline_bench.load_or_collect(task, "mixed", 2000, 0, path.parent)
    return str(path)


def train(preset: str, overrides: dict, name: str, seeds: int, seed: int):
    """A run of `preset` (a preset name, optionally followed by `key=value` words) with
    `overrides`, trained without periodic or final evaluation; `(summary, run_dir,
    run, prepared, state)`."""
    from jaxrl3m.core.config import parse_overrides
    from jaxrl3m.runner.driver import train_run
    from jaxrl3m.runner.runs import create_run, load_config, restore_run, setup

    preset, *words = preset.split()
    overrides = {**overrides, **parse_overrides(words), "seeds": seeds, "seed": seed,
                 "eval_every": 0, "eval_episodes": 0, "name": name,
                 "runs_dir": str(ROOT / "runs" / "bench-validate")}
    config, run = load_config(preset, overrides)
    prepared = setup(config, run)
    run_dir, run = create_run(config, run)
    summary = train_run(config, run, run_dir, progress=True, prepared=prepared)
    _, run, s, state, _ = restore_run(run_dir)
    return summary, run_dir, run, s, state


def score(s, state, seeds: int, seed: int, episodes: int, greedy: bool) -> list[float]:
    """Validation success per seed of a trained run."""
    from jaxrl3m.core.evaluation import evaluate_algo
    out = evaluate_algo(s.algo, state.params, s.inputs, seeds, episodes, greedy, seed,
                        split="validation")
    return out["success"]


def choose(rows: dict, values: list, default) -> tuple[object, dict]:
    """The chosen value and the per-value means: highest mean validation success; within one
    standard error of the best, fewest steps to 0.9 (training curve), then the default."""
    means = {}
    for v in values:
        cells = [rows[p][str(v)] for p in rows]
        succ = np.array([c["validation_success"] for c in cells])  # [presets, seeds]
        steps = np.array([[math.inf if x is None else x for x in c["steps_to_0.9_training"]]
                          for c in cells], dtype=float)
        means[str(v)] = {"validation_success": float(succ.mean()),
                         "stderr": float(succ.std(axis=1, ddof=1).mean() / math.sqrt(
                             succ.shape[1])) if succ.shape[1] > 1 else 0.0,
                         "steps_to_0.9_training": float(np.mean(steps))}
    best = max(means.values(), key=lambda m: m["validation_success"])
    ties = [v for v in values if means[str(v)]["validation_success"]
            >= best["validation_success"] - best["stderr"]]
    chosen = min(ties, key=lambda v: (means[str(v)]["steps_to_0.9_training"], v != default))
    return chosen, means


def markdown(r: dict) -> str:
    values = r["values"]
    lines = [f"Validation (training layouts, seeds {r['seed']}.., {r['episodes']} episodes per "
             f"seed): {r['what']}.", "",
             "| preset | " + " | ".join(f"{r['key']}={v}" for v in values) + " |",
             "|---" * (len(values) + 1) + "|"]
    for p, by_v in r["rows"].items():
        cells = []
        for v in values:
            c = by_v.get(str(v))
            if c is None:
                cells.append("-")
                continue
            hit = [x for x in c["steps_to_0.9_training"] if x is not None]
            seeds = len(c["validation_success"])
            steps = (f", 0.9 at {np.mean(hit) / 1e3:.0f}k ({len(hit)}/{seeds})"
                     if hit and "eval_only" not in c else "")
            cells.append(f"{np.mean(c['validation_success']):.3f}{steps}")
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    if "means" in r:
        def mean(v):
            m = r["means"][str(v)]
            steps = m["steps_to_0.9_training"]
            return (f"{m['validation_success']:.3f} ± {m['stderr']:.3f}"
                    + (f", 0.9 at {steps / 1e3:.0f}k" if math.isfinite(steps) else ""))
        lines.append("| mean | " + " | ".join(mean(v) for v in values) + " |")
        lines.append(f"\nChosen: {r['key']}={r['chosen']} (default before: {r['default']}).")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = benchlib.parser(__doc__)
    p.add_argument("key", choices=sorted(STUDIES))
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--seed", type=int, default=100, help="first training seed (reported: 0)")
    p.add_argument("--episodes", type=int, default=500, help="validation episodes per seed")
    p.add_argument("--out", default=None, help="default: bench/validate_<key>.json")
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override keys of every preset (e.g. total_steps=100000 for a quick look)")
    p.add_argument("--markdown", action="store_true", help="print the stored table and exit")
    args = p.parse_args(argv)
    study = STUDIES[args.key]
    out = Path(args.out or ROOT / "bench" / f"validate_{args.key}.json")
    if args.markdown:
        print(markdown(json.loads(out.read_text())))
        return 0
    from jaxrl3m.core.config import parse_overrides
    key = study.get("key", args.key)
    r = {"key": key, "study": args.key, "what": study["what"], "values": study["values"],
         "default": study["default"], "seeds": args.seeds, "seed": args.seed,
         "episodes": args.episodes, "set": args.set, "hardware": benchlib.hardware(), "rows": {}}
    if out.is_file():  # keep what was measured with the same settings (a grid grown later)
        old = json.loads(out.read_text())
        if all(old.get(k) == r[k] for k in ("seeds", "seed", "episodes", "set")):
            r["rows"] = old["rows"]
            r["wall_s_before"] = old.get("wall_s", 0.0) + old.get("wall_s_before", 0.0)
    eval_only = study.get("evaluation_only", False)
    t0 = time.perf_counter()
    for preset, overrides in study["presets"].items():
        overrides = {**overrides, **parse_overrides(args.set)}
        if preset.split()[0] in ("dt", "lamo"):
            overrides["dataset"] = _dataset()
        row = r["rows"].setdefault(preset, {})
        todo = [v for v in study["values"] if str(v) not in row]
        # an evaluation-only key trains once and scores every value from that run
        runs = ([None] if todo else []) if eval_only else todo
        for v in runs:
            t1 = time.perf_counter()
            name = f"{args.key}-{preset.replace(' ', '-').replace('=', '_')}"
            extra = {} if eval_only else {key: v}
            summary, run_dir, run, s, state = train(preset, {**overrides, **extra},
                                               name + ("" if eval_only else f"-{v}"),
                                               args.seeds, args.seed)
            steps = [None if x is None or math.isnan(x) else x
                     for x in summary.get("steps_to_0.9_training", [None] * args.seeds)]
            for value in (todo if eval_only else [v]):
                greedy = value if key == "eval_greedy" else run.eval_greedy
                succ = score(s, state, args.seeds, args.seed, args.episodes, greedy)
                row[str(value)] = {"validation_success": succ, "steps_to_0.9_training": steps,
                                   "run_dir": str(run_dir.relative_to(ROOT)),
                                   "wall_s": time.perf_counter() - t1,
                                   **({"eval_only": True} if eval_only else {})}
                print(f"{preset:28s} {key}={value}: validation success "
                      f"{np.round(succ, 3).tolist()}, training curve 0.9 at {steps}", flush=True)
            benchlib.save(out, r)
    r["chosen"], r["means"] = choose(r["rows"], study["values"], study["default"])
    r["wall_s"] = time.perf_counter() - t0
    benchlib.save(out, r)
    print(markdown(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
