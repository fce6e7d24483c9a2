"""Learning speed, measured: environment steps to 0.9 success, for every method and prior.

    python bench/learning.py                       # PPO family: 3 tasks x 4 priors x 4 seeds (~30 min)
    python bench/learning.py --methods dqn dqn-oracle dqn-vicuna33b dqn-llm \
        gflan-oracle gflan-vicuna33b gflan-llm     # the LLM-prior family (issue 14)
    python bench/learning.py --tasks DoorKey --methods dqn-llm --set k=1   # an ablation row
    python bench/learning.py --markdown            # the table of bench/learning.json

Methods: `ppo` (plain PPO), `oracle` / `vicuna33b` / `llm` (PPO guided by the LLM teacher with
that table: the oracle, vicuna-33b's published answers, SmolLM2-135M), `dqn` (plain DQN),
`dqn-<prior>` (DQN-Prior: k proposals from the prior re-weighted by Q), `dqnx-<prior>` (its
k -> infinity limit, `configs/dqn-prior-exact.yaml`) and `gflan-<prior>`
(GFlan-Prior: PPO with alpha * KL(pi || prior)). Each runs its preset (`configs/<task>-<prior>.yaml`
for the PPO family, `configs/dqn.yaml`, `dqn-prior.yaml`, `gflan-prior.yaml` with the task and
prior set) through the library's driver (`jaxrl3m.runner.driver.train_run`) with all seeds in one
vmap, into full run folders in `runs/bench-learning/` (config.yaml included: each can be
evaluated or resumed). Steps to 0.9 are read from the periodic held-out evaluations (every
`eval_every` = 10 updates, 128 fresh held-out episodes per seed: `eval_success` in each run's
metrics.csv); a run without them (`eval_every=0`) falls back to the training episodes counted by
the update they started in (`jaxrl3m.core.metrics`). Writes `bench/learning.json` and
`bench/learning_<task>.png` (mean over seeds). `--set key=value ...` overrides preset keys (a
variant: its rows are stored as `"<method> key=value"` next to the preset's).
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np

import benchlib
from benchlib import ROOT

from jaxrl3m.core import metrics as curves
from jaxrl3m.core.config import parse_overrides
from jaxrl3m.runner.driver import train_run
from jaxrl3m.runner.runs import create_run, load_config, setup

TASKS = ("DoorKey", "LavaDoorKey", "ColoredDoorKey")
PRIORS = ("oracle", "vicuna33b", "llm", "gemma3", "uniform", "shuffled")
PRIOR_LABELS = {"oracle": "oracle", "vicuna33b": "vicuna-33b (LLM4Teach)", "llm": "SmolLM2-135M",
                "gemma3": "Gemma 3 270M", "uniform": "uniform (no information)",
                "shuffled": "oracle rows shuffled between states (wrong)"}
METHODS = ("ppo", *PRIORS, "dqn", *(f"dqn-{p}" for p in PRIORS),
           *(f"dqnx-{p}" for p in PRIORS), *(f"gflan-{p}" for p in PRIORS))
DEFAULT_METHODS = ("ppo", "oracle", "vicuna33b", "llm")
# Plain PPO needs far more steps than guided PPO; give it room to reach 0.9 (a task not listed:
# its `<task>-ppo` preset's own budget).
PPO_STEPS = {"DoorKey": 2_000_000, "LavaDoorKey": 1_000_000, "ColoredDoorKey": 1_000_000,
             "Unlock": 1_000_000, "UnlockPickup": 1_000_000}
DQN_STEPS = 2_000_000  # plain DQN: the goal is that it does not reach 0.9 within 2M
PRIOR_STEPS = 1_000_000  # DQN-Prior and GFlan-Prior (goal: oracle within 500k)
LABELS = {"ppo": "PPO, no prior", **{p: f"PPO + LLM teacher, {PRIOR_LABELS[p]}" for p in PRIORS},
          "dqn": "DQN, no prior", **{f"dqn-{p}": f"DQN-Prior, {PRIOR_LABELS[p]}" for p in PRIORS},
          **{f"dqnx-{p}": f"DQN-Prior exact (k -> inf), {PRIOR_LABELS[p]}" for p in PRIORS},
          **{f"gflan-{p}": f"GFlan-Prior, {PRIOR_LABELS[p]}" for p in PRIORS}}


def prior_setting(prior: str, task: str) -> str:
    """The `prior` key of a prior's short name."""
    return {"oracle": "oracle", "vicuna33b": f"llm_cache/{task}-vicuna33b-llm4teach.json",
            "llm": f"llm_cache/{task}-smollm2.json", "gemma3": f"llm_cache/{task}-gemma3.json",
            "uniform": "uniform", "shuffled": "shuffled:oracle"}[prior]


def preset_of(method: str, task: str) -> tuple[str, dict]:
    """`(preset, overrides)` that run `method` on `task`."""
    if method == "ppo":
        return f"{task}-ppo", ({"total_steps": PPO_STEPS[task]} if task in PPO_STEPS else {})
    if method in ("oracle", "vicuna33b", "llm"):
        return f"{task}-{method}", {}
    if method in PRIORS:  # the other tables on the same guided preset
        return f"{task}-oracle", {"prior": prior_setting(method, task)}
    if method == "dqn":
        return "dqn", {"task": task, "total_steps": DQN_STEPS}
    family, prior = method.split("-", 1)
    preset = {"dqn": "dqn-prior", "dqnx": "dqn-prior-exact", "gflan": "gflan-prior"}[family]
    return preset, {"task": task, "prior": prior_setting(prior, task),
                    "total_steps": PRIOR_STEPS}


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
    method = name.partition(" ")[0]
    return METHODS.index(method) if method in METHODS else len(METHODS), name


def tasks_of(results: dict) -> list[str]:
    """The tasks of a results file: the DoorKey family first, then the others in file order."""
    return [*TASKS, *(k for k in results if k not in TASKS and k != "hardware")]


def markdown_table(results: dict, keep=None) -> str:
    """The README / RESULTS.md table from `bench/learning.json` (the rows whose name `keep`
    accepts, all by default)."""
    lines = ["| task | method, prior | steps to 0.9, per seed | mean | reached | "
             "held-out success (500 ep/seed) | wall |", "|---|---|---|---|---|---|---|"]
    for task in tasks_of(results):
        for name in sorted(results.get(task, {}), key=_order):
            if keep is not None and not keep(name):
                continue
            r = results[task][name]
            per_seed = ", ".join("—" if x is None else _k(x) for x in r["steps_to_0.9"])
            mean = "not reached" if r["steps_to_0.9_mean"] is None else _k(r["steps_to_0.9_mean"])
            sampled = (f" (sampled: {r['eval_sampled_success_mean']:.3f})"
                       if "eval_sampled_success_mean" in r else "")
            lines.append(f"| {task} | {_label(name)} | {per_seed} | {mean} | "
                         f"{r['reached']}/{r['seeds']} in {r['env_steps'] / 1e6:.1f}M | "
                         f"{r['eval_success_mean']:.3f} ± {r['eval_success_std']:.3f}{sampled} | "
                         f"{r['wall_s']:.0f} s |")
    return "\n".join(lines)


def comparison_table(before: dict, after: dict) -> str:
    """Rows present in both JSONs: mean steps to 0.9 and held-out success, before -> after."""
    def steps(r):
        hit = [x for x in r["steps_to_0.9"] if x is not None]
        return (f"{_k(float(np.mean(hit)))} ({len(hit)}/{r['seeds']})" if hit else
                f"not reached (0/{r['seeds']})")
    lines = ["| task | method, prior | steps to 0.9, before | after | held-out success, before | after |",
             "|---|---|---|---|---|---|"]
    for task in TASKS:
        for name in sorted(set(before.get(task, {})) & set(after.get(task, {})), key=_order):
            b, a = before[task][name], after[task][name]
            lines.append(f"| {task} | {_label(name)} | {steps(b)} | {steps(a)} | "
                         f"{b['eval_success_mean']:.3f} ± {b['eval_success_std']:.3f} | "
                         f"{a['eval_success_mean']:.3f} ± {a['eval_success_std']:.3f} |")
    return "\n".join(lines)


def pair_table(results: dict, setting: str, heads: tuple[str, str] | None = None) -> str:
    """Rows side by side without and with `setting` (e.g. `posterior=true`): mean steps to 0.9
    (seeds that reached it) and held-out success, for every row that has its twin."""
    def steps(r):
        hit = [x for x in r["steps_to_0.9"] if x is not None]
        return (f"{_k(float(np.mean(hit)))} ({len(hit)}/{r['seeds']})" if hit else
                f"not reached (0/{r['seeds']})")
    without, with_ = heads or (f"without {setting}", f"with {setting}")
    lines = [f"| task | table | {without}: steps to 0.9 | held-out | "
             f"{with_}: steps to 0.9 | held-out |", "|---|---|---|---|---|---|"]
    for task in TASKS:
        rows = results.get(task, {})
        for name in sorted(rows, key=_order):
            twin = f"{name} {setting}"
            if setting in name.split() or twin not in rows:
                continue
            a, b = rows[name], rows[twin]
            label = PRIOR_LABELS.get(name.split()[0], name.split()[0])
            lines.append(f"| {task} | {label} | {steps(a)} | {a['eval_success_mean']:.3f} ± "
                         f"{a['eval_success_std']:.3f} | {steps(b)} | "
                         f"{b['eval_success_mean']:.3f} ± {b['eval_success_std']:.3f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = benchlib.parser(__doc__, "learning.json")
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--methods", "--priors", nargs="+", default=list(DEFAULT_METHODS),
                   choices=METHODS, help="methods to run (see the module docstring)")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override preset keys (a variant, stored under its own name)")
    p.add_argument("--skip-done", action="store_true",
                   help="skip the rows already in the output JSON")
    p.add_argument("--plot", action="store_true",
                   help="redraw bench/learning_<task>.png from the stored runs; runs nothing")
    p.add_argument("--sampled", action="store_true",
                   help="re-evaluate the stored runs that were evaluated greedily (DQN: greedy "
                        "over the proposals) with sampled actions too; runs nothing else")
    p.add_argument("--markdown", action="store_true",
                   help="print the Markdown table of the JSON and exit (runs nothing)")
    p.add_argument("--pair", metavar="KEY=VALUE",
                   help="with --markdown: each row beside its twin with this setting added")
    p.add_argument("--against", metavar="OLD_JSON",
                   help="with --markdown: a before/after table against an older JSON")
    args = p.parse_args(argv)
    out_path = Path(args.out)
    results = json.loads(out_path.read_text()) if out_path.exists() else {}
    if args.markdown:
        if args.pair:
            print(pair_table(results, args.pair))
        else:
            print(comparison_table(json.loads(Path(args.against).read_text()), results)
                  if args.against else markdown_table(results))
        return 0
    if args.plot:
        for task in args.tasks:
            plot_task(results, task, out_path)
        return 0
    if args.sampled:
        from jaxrl3m.evaluate import evaluate_run
        for task in args.tasks:
            for name, r in results.get(task, {}).items():
                run_dir = ROOT / r["run_dir"]
                if r.get("eval_greedy", name.startswith("dqn")) and run_dir.is_dir():
                    ev = evaluate_run(run_dir, 500, greedy=False)
                    r["eval_sampled_success_mean"] = ev["success_mean"]
                    print(f"{task:15s} {name:20s} held-out, sampled: {ev['success_mean']:.3f}")
                    benchlib.save(out_path, results)
        return 0
    hardware = benchlib.hardware()  # each row records its machine; the file's own is the
    results.setdefault("hardware", hardware)  # machine of the rows without one (older rows)
    for task in args.tasks:
        for method in args.methods:
            preset, overrides = preset_of(method, task)
            overrides.update({"seeds": args.seeds, "eval_episodes": 500,
                              "runs_dir": str(ROOT / "runs" / "bench-learning"),
                              "name": f"{task}-{method}"})
            overrides.update(parse_overrides(args.set))
            name = " ".join([method, *args.set])
            if args.skip_done and name in results.get(task, {}):
                print(f"{task:15s} {name}: already measured, skipped")
                continue
            if args.set:
                overrides["name"] += "-" + "-".join(x.replace("=", "_") for x in args.set)
            config, run = load_config(preset, overrides)
            prepared = setup(config, run)
            run_dir, run = create_run(config, run)
            t0 = time.perf_counter()
            s = train_run(config, run, run_dir, progress=True, prepared=prepared)
            rows = curves.read_csv(run_dir / "metrics.csv")
            steps, succ, _ = curves.curves(rows)
            thin = 1 if s["curve"] == "evaluation" else 5  # ~every 10 updates
            to = np.array(s["steps_to_0.9"], dtype=float)
            results.setdefault(task, {})[name] = {
                "config": f"configs/{preset}.yaml", "overrides": {
                    k: v for k, v in overrides.items() if k not in ("runs_dir", "name")},
                "seeds": args.seeds,
                "env_steps": int(steps[-1]), "steps_to_0.9": [None if math.isnan(x) else x
                                                             for x in to],
                "steps_to_0.9_mean": float(to.mean()) if np.isfinite(to).all() else None,
                "reached": int(np.isfinite(to).sum()),
                "final_success_mean": s["final_success_mean"],
                "eval_success_mean": s["eval"]["success_mean"],
                "eval_success_std": s["eval"]["success_std"],
                "wall_s": time.perf_counter() - t0, "run_dir": str(run_dir.relative_to(ROOT)),
                "hardware": hardware,
                "curve": s["curve"], "curve_steps": steps[::thin].tolist(),
                "curve_success_mean": _nanmean(succ)[::thin].round(4).tolist()}
            benchlib.save(out_path, results)
            r = results[task][name]
            print(f"{task:15s} {name:10s} steps to 0.9: {r['steps_to_0.9']} "
                  f"(reached {r['reached']}/{args.seeds}); held-out success "
                  f"{r['eval_success_mean']:.3f}; {r['wall_s']:.0f} s", flush=True)
        plot_task(results, task, out_path)
    return 0


def _curve(r: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """A row's curve `(steps f[U], success f[S, U])`: from its run folder's metrics.csv, else
    (the run was made on another machine, or its folder removed) the mean curve the JSON
    stores, once per seed (so the legend counts the seeds; the min-max band is then empty);
    None if neither exists."""
    metrics = ROOT / r["run_dir"] / "metrics.csv"
    if metrics.exists():
        steps, succ, _ = curves.curves(curves.read_csv(metrics))
        return steps, succ
    if r.get("curve_steps") and r.get("curve_success_mean"):
        mean = np.asarray(r["curve_success_mean"], float)
        return np.asarray(r["curve_steps"], float), np.tile(mean, (int(r["seeds"]), 1))
    return None


def plot_task(results: dict, task: str, out_path: Path | None = None) -> None:
    """`<out stem>_<task>.png` beside the JSON (`bench/learning_<task>.png` for the default
    JSON): every method's curve (`_curve`: a run folder made elsewhere gives the JSON's stored
    mean, so rerunning one method on a fresh checkout keeps the other methods' lines). In
    `bench/learning.json` variants and ablations are left to the table, so the plot stays
    readable; in any other JSON (a study of variants, such as
    `bench/posterior.json`) every row is drawn in its table's colour: dotted without
    `posterior=true`, solid with it, dashed for a floor ablation, dash-dotted for others."""
    out_path = Path(out_path or ROOT / "bench" / "learning.json")
    every_row = out_path.name != "learning.json"
    curves_by_method, colors, styles = {}, {}, {}
    for name in sorted(results.get(task, {}), key=_order):
        r = results[task][name]
        if every_row or " " not in name:
            stored = _curve(r)
            if stored is None:
                continue
            steps, succ = stored
            label = _label(name)
            if every_row and name.split()[0] in PRIORS:  # a guided row: which teacher
                extra = [x for x in name.split()[1:] if not x.startswith(("total_steps=",
                                                                        "posterior=true"))]
                label = (PRIOR_LABELS.get(name.split()[0], name.split()[0])
                         + (", posterior teacher" if "posterior=true" in name else ", fixed")
                         + "".join(f", {x}" for x in extra))
                table = name.split()[0]  # one colour per table: fixed dotted, posterior solid,
                # floor ablations dashed
                colors[label] = f"C{(PRIORS.index(table) if table in PRIORS else 9) % 10}"
                styles[label] = ("--" if any(x.startswith("posterior_floor=") for x in extra)
                                 else "-." if extra  # other ablations dash-dotted
                                 else "-" if "posterior=true" in name else ":")
            elif every_row:  # unguided (plain PPO, DQN, ...): grey, solid
                colors[label], styles[label] = "C7", "-"
            curves_by_method[label] = (steps, succ)
    if not every_row:
        styles = {label: "--" if label.startswith("DQN") else ":" if label.startswith("GFlan")
                  else "-" for label in curves_by_method}
    curves.plot_learning_curves(curves_by_method, out_path.parent / f"{out_path.stem}_{task}.png",
                                f"{task}: learning curves (held-out evaluations where the run "
                                "made them), mean of seeds",
                                styles=styles, colors=colors or None)


if __name__ == "__main__":
    sys.exit(main())
