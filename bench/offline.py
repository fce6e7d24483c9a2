"""Do LLM priors cut the data offline RL needs? Success on held-out layouts against dataset size.

    python bench/offline.py --task DoorKey --plot --markdown        # the README's experiment

For each dataset seed (a recipe's dataset collected with that seed, `python -m jaxrl3m.collect`)
the episodes are put in the seeded subset order, so fractions are nested; every (dataset seed,
fraction, training seed) run of a method trains in one `jit(vmap)` from the same compiled
program (`OfflineData.size` selects the fraction). Each run's final parameters (never the best
by test score) play `--eval-episodes` held-out layouts (`layouts=heldout`, in no dataset).
Success per (method, fraction): mean over runs with a 95% bootstrap interval (runs resampled).
N* = the smallest dataset size (episodes) whose mean success reaches 0.9 x the expert's (the
oracle teacher acting on the same held-out layouts). The claim holds here where
N*(CQL-Prior) <= 0.1 x N*(CQL).

Methods: cql, bc, cql-prior:<prior>, cql-priorx:<prior> (inference=exact), bc-prior:<prior>,
zero-shot:<prior> (the prior acting alone, sampled; no data), with <prior> oracle, uniform,
vicuna33b, smollm2 or shuffled:<prior> (rows permuted between abstract states). Evaluation
modes are fixed in advance: CQL and CQL-Prior greedy (the paper's), BC sampled (a policy is a
distribution; greedy BC loops in these partially observed rooms), and `cql-sampled` acts from
softmax(Q / tau) as a control for that difference.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import benchlib
from benchlib import ROOT

from jaxrl3m.algos import Inputs
from jaxrl3m.algos.offline import OfflineConfig, make_offline
from jaxrl3m.offline.arrays import offline_data
from jaxrl3m.collect import RECIPES, collect, recipe_path
from jaxrl3m.core.evaluation import evaluate
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.offline import dataset as dsl
from jaxrl3m.teacher.teacher import (Teacher, resolve_prior, teacher_logits,
                                     uniform_action_prior)

TABLES = {"oracle": "oracle", "uniform": "uniform",
          "vicuna33b": "llm_cache/{task}-vicuna33b-llm4teach.json",
          "smollm2": "llm_cache/{task}-smollm2.json"}
DEFAULT_METHODS = ("cql", "cql-sampled", "bc", "cql-prior:oracle", "cql-prior:vicuna33b",
                   "cql-prior:smollm2", "cql-prior:uniform", "cql-prior:shuffled:oracle",
                   "bc-prior:oracle", "zero-shot:oracle", "zero-shot:vicuna33b",
                   "zero-shot:smollm2", "zero-shot:uniform")
FRACTIONS = (0.005, 0.02, 0.1, 0.25, 0.5, 1.0)


def prior_spec(name: str, task: str) -> str:
    if name.startswith("shuffled:"):
        return "shuffled:" + prior_spec(name.split(":", 1)[1], task)
    return TABLES.get(name, name).format(task=task)


def load_or_collect(task: str, recipe: str, episodes: int, seed: int, out_dir: Path):
    path = recipe_path(out_dir, task, recipe, seed)
    if path.is_file():
        ds = dsl.load(path)
        if ds.num_episodes == episodes:
            return ds
    ds = collect(task, RECIPES[recipe], episodes, seed=seed)
    ds.meta["recipe"] = recipe
    dsl.save(ds, path)
    return ds


def bootstrap_ci(x: np.ndarray, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), (n, len(x)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def run_method(method: str, task: str, ordered: list, sizes: np.ndarray, args) -> np.ndarray:
    """`f32[D, F, S]` held-out success of `method` (see the module docstring)."""
    kind, _, prior_name = method.partition(":")
    d_count, f_count = sizes.shape
    s_count = args.seeds
    runs = d_count * f_count * s_count
    table = Teacher.create(task, resolve_prior(prior_spec(prior_name, task), task)[0]) \
        if prior_name else None
    if kind == "zero-shot":  # the prior acting alone: no data, one value per run
        from dataclasses import replace
        heldout = replace(OfflineConfig(task=task).make_env(), layouts="heldout")
        ev = evaluate(heldout, teacher_logits, table, runs, args.eval_episodes, seed=1,
                      batched=False)
        return np.asarray(ev["success"]).reshape(d_count, f_count, s_count)
    objective = "bc" if kind.startswith("bc") else "cql"
    inference = "exact" if kind == "cql-priorx" else "sampled"
    c = OfflineConfig(task=task, gradient_steps=args.steps, steps_per_update=args.steps // 10,
                      inference=inference, prior_floor=0.01 if inference == "exact" else 0.0)
    algo = make_offline(c, guided=table is not None, objective=objective)
    caps = (max(d["obs_grid"].shape[0] for d in ordered), max(d.num_transitions
                                                             for d in ordered))
    datas = [offline_data(d, algo.network, table, float(c.prior_floor), capacity=caps)
             for d in ordered]
    data = jax.tree.map(lambda *xs: jnp.stack(xs), *datas)
    keys = jax.random.split(jax.random.key(args.train_seed), s_count)

    def one(data, size, key):
        return algo.train(key, Inputs(teacher=table, data=data.replace(size=size)))[0].params

    fn = jax.jit(jax.vmap(jax.vmap(vmap_seeds(one, in_axes=(None, None, 0)),
                                   in_axes=(None, 0, None)), in_axes=(0, 0, None)))
    t0 = time.perf_counter()
    params = jax.block_until_ready(fn(data, jnp.asarray(sizes, jnp.int32), keys))
    wall = time.perf_counter() - t0
    print(f"  {method}: {runs} runs x {args.steps} gradient steps in {wall:.0f} s "
          f"({runs * args.steps / wall:,.0f} gradient steps/s)", file=sys.stderr)
    flat = jax.tree.map(lambda x: x.reshape(runs, *x.shape[3:]), params)
    greedy = not (kind.startswith("bc") or kind == "cql-sampled")
    if kind == "cql-sampled":  # act from softmax(Q / tau): exact posterior of a flat prior
        from dataclasses import replace
        algo = make_offline(replace(c, inference="exact", prior_floor=0.01), guided=True)
        table = uniform_action_prior()
    ev = evaluate(algo.env, None, algo.evaluation_params(flat, table), runs, args.eval_episodes,
                  greedy, seed=1, batched=algo.evaluation_axes, policy=algo.policy(greedy))
    return np.asarray(ev["success"]).reshape(d_count, f_count, s_count)


def main(argv=None) -> int:
    p = benchlib.parser(__doc__)
    p.add_argument("--task", default="DoorKey")
    p.add_argument("--recipe", default="mixed", choices=tuple(RECIPES))
    p.add_argument("--episodes", type=int, default=2000, help="episodes of the full dataset")
    p.add_argument("--fractions", default=",".join(map(str, FRACTIONS)))
    p.add_argument("--data-seeds", type=int, default=3)
    p.add_argument("--seeds", type=int, default=3, help="training seeds per dataset")
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000, help="gradient steps per run")
    p.add_argument("--eval-episodes", type=int, default=200, help="held-out episodes per run")
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS).replace(",", " "),
                   help="space-separated methods")
    p.add_argument("--data-dir", default=str(ROOT / "datasets"))
    p.add_argument("--out", "--json", dest="out",
                   help="results JSON (default bench/offline_<task>_<recipe>.json)")
    p.add_argument("--plot", action="store_true")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--replot", action="store_true",
                   help="only redo the table and plot from the results JSON")
    args = p.parse_args(argv)
    fractions = [float(f) for f in args.fractions.split(",")]
    for f in fractions:
        dsl.subset_size(1, f)  # checks the range
    out = Path(args.out or ROOT / "bench" / f"offline_{args.task}_{args.recipe}.json")
    if args.replot:
        results = json.loads(out.read_text())
        summarise(results)
        benchlib.save(out, results, markdown=markdown(results))
        plot(results, out.with_suffix(".png"))
        print(markdown(results))
        return 0
    t0 = time.perf_counter()
    full = [load_or_collect(args.task, args.recipe, args.episodes, d, Path(args.data_dir))
            for d in range(args.data_seeds)]
    ordered = [ds.episodes(ds.permutation(d)) for d, ds in enumerate(full)]
    n_eps = [dsl.subset_size(args.episodes, f) for f in fractions]
    sizes = np.array([[int(d["episode_length"][:n].sum()) for n in n_eps] for d in ordered])
    print(f"{args.task} {args.recipe}: {args.data_seeds} datasets of {args.episodes} episodes "
          f"(success {np.mean([d.meta['success_rate'] for d in full]):.3f}), fractions "
          f"{fractions} -> episodes {n_eps}", file=sys.stderr)
    from dataclasses import replace
    heldout = replace(OfflineConfig(task=args.task).make_env(), layouts="heldout")
    expert = evaluate(heldout, teacher_logits, Teacher.create(
        args.task, resolve_prior("oracle", args.task)[0]), 1, 2000, seed=2, batched=False)
    results = {"task": args.task, "recipe": args.recipe, "episodes": n_eps,
               "fractions": fractions, "transitions": sizes.tolist(),
               "data_seeds": args.data_seeds, "seeds": args.seeds, "steps": args.steps,
               "eval_episodes": args.eval_episodes, "expert_success": expert["success_mean"],
               "dataset_success": [d.meta["success_rate"] for d in full], "methods": {}}
    if out.is_file():  # keep methods measured earlier with the same settings
        old = json.loads(out.read_text())
        if all(old.get(k) == results[k] for k in ("episodes", "data_seeds", "seeds", "steps",
                                                   "eval_episodes")):
            results["methods"] = old["methods"]
    for method in args.methods.split():
        succ = run_method(method, args.task, ordered, sizes, args)
        flat = succ.transpose(1, 0, 2).reshape(len(fractions), -1)
        results["methods"][method] = {
            "success": succ.tolist(), "mean": flat.mean(1).tolist(),
            "ci": [bootstrap_ci(x) for x in flat]}
        benchlib.save(out, results)
    results["wall_s"] = time.perf_counter() - t0
    summarise(results)
    md = markdown(results) if args.markdown else None
    benchlib.save(out, results, markdown=md)
    if md:
        print(md)
    if args.plot:
        plot(results, out.with_suffix(".png"))
    return 0


def summarise(r: dict) -> None:
    goal = 0.9 * r["expert_success"]
    for m in r["methods"].values():
        hit = [n for n, x in zip(r["episodes"], m["mean"]) if x >= goal]
        m["n_star"] = hit[0] if hit else None
    base = r["methods"].get("cql", {}).get("n_star")
    r["claim"] = {}
    for name, m in r["methods"].items():
        if name.startswith("cql-prior"):
            n = m["n_star"]
            r["claim"][name] = (None if n is None else
                                (n <= 0.1 * base) if base is not None else
                                (n <= 0.1 * r["episodes"][-1] and "cql never reached it"))


def markdown(r: dict) -> str:
    eps = r["episodes"]
    lines = [f"{r['task']}, {r['recipe']} data ({r['data_seeds']} datasets x {r['seeds']} "
             f"training seeds, {r['steps']} gradient steps, {r['eval_episodes']} held-out "
             f"episodes per run; expert {r['expert_success']:.3f}, goal 0.9 x expert; mean "
             "success [95% bootstrap CI]):", "",
             "| method | " + " | ".join(f"{n} ep" for n in eps) + " | N* |",
             "|---|" + "---|" * (len(eps) + 1)]
    for name, m in r["methods"].items():
        cells = [f"{x:.2f} [{lo:.2f}, {hi:.2f}]" for x, (lo, hi) in zip(m["mean"], m["ci"])]
        n = m.get("n_star")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {n if n is not None else '>' + str(eps[-1])} |")
    return "\n".join(lines) + "\n"


PRIOR_COLOURS = {"": "black", "oracle": "tab:blue", "vicuna33b": "tab:orange",
                 "smollm2": "tab:green", "uniform": "tab:red", "shuffled:oracle": "tab:purple"}


def line_style(name: str) -> dict:
    """Colour by prior, line by family: zero-shot dotted, BC dashed, exact CQL-Prior dash-dot."""
    kind, _, prior = name.partition(":")
    style = {"zero-shot": ":", "bc": "--", "bc-prior": "--", "cql-priorx": "-.",
             "cql-sampled": "-."}.get(kind, "-")
    marker = {"zero-shot": "", "bc": "s", "bc-prior": "s"}.get(kind, "o")
    return {"ls": style, "marker": marker, "ms": 3,
            "color": PRIOR_COLOURS.get(prior, "tab:brown")}


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8.5, 5))
    for name, m in r["methods"].items():
        lo, hi = np.array(m["ci"]).T
        st = line_style(name)
        ax.plot(r["episodes"], m["mean"], label=name, **st)
        if not name.startswith("zero-shot"):
            ax.fill_between(r["episodes"], lo, hi, alpha=0.1, color=st["color"])
    ax.axhline(0.9 * r["expert_success"], color="grey", lw=0.8, ls="--", label="0.9 x expert")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("dataset size (episodes)")
    ax.set_ylabel("success on held-out layouts")
    ax.set_title(f"{r['task']}, {r['recipe']} data: final checkpoints, 95% bootstrap CI")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
