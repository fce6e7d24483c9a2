"""Offline speed: gradient steps/s of CQL, CQL-Prior (sampled and exact) and BC side by side,
and dataset collection in transitions/s and episodes/s.

    python bench/offline_throughput.py                  # writes bench/offline_throughput.json

Gradient steps: the preset's batch of 128 transitions from a 2,000-episode mixed DoorKey dataset,
`--steps` steps per jitted call, 1 and 8 seeds vmapped (the driver's layout); the variants are
compiled first, then timed alternately `--repeats` times (best kept, median in the JSON).
Collection: `python -m jaxrl3m.collect`'s code path for `--episodes` episodes of each recipe's
policy, timed after a warm-up batch (compilation excluded), host-side assembly included.
"""

from __future__ import annotations

import sys
import time

import jax
import numpy as np

import benchlib

from jaxrl3m.algos import Inputs
from jaxrl3m.algos.offline import OfflineConfig, make_offline
from jaxrl3m.offline.arrays import offline_data
from jaxrl3m.collect import RECIPES, collect
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.teacher.teacher import Teacher, resolve_prior

VARIANTS = {"cql": ("cql", False, "sampled"), "cql_prior": ("cql", True, "sampled"),
            "cql_prior_exact": ("cql", True, "exact"), "bc": ("bc", False, "sampled")}


def gradient_steps(task: str, seeds_list, steps: int, repeats: int) -> list[dict]:
    ds = collect(task, RECIPES["mixed"], 2000, seed=0)
    prior = Teacher.create(task, resolve_prior("oracle", task)[0])
    rows = []
    for seeds in seeds_list:
        fns = {}
        for name, (objective, guided, inference) in VARIANTS.items():
            c = OfflineConfig(task=task, steps_per_update=steps, gradient_steps=steps,
                              inference=inference, prior_floor=0.01 if inference == "exact" else 0)
            algo = make_offline(c, guided=guided, objective=objective)
            data = offline_data(ds, algo.network, prior if guided else None, float(c.prior_floor))
            inputs = Inputs(teacher=prior if guided else None, data=data)
            states = jax.jit(vmap_seeds(algo.init))(jax.random.split(jax.random.key(0), seeds))
            fn = jax.jit(vmap_seeds(lambda s, i, a=algo: a.update(s, i, 1), in_axes=(0, None)))
            t0 = time.perf_counter()
            jax.block_until_ready(fn(states, inputs))
            fns[name] = (fn, states, inputs, time.perf_counter() - t0)
        times = {name: [] for name in fns}
        for _ in range(repeats):
            for name, (fn, states, inputs, _) in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(fn(states, inputs))
                times[name].append(time.perf_counter() - t0)
        for name, t in times.items():
            rows.append({"task": task, "variant": name, "seeds": seeds, "batch": 128,
                         "gradient_steps_per_s": steps * seeds / min(t),
                         "median_gradient_steps_per_s": steps * seeds / float(np.median(t)),
                         "compile_s": fns[name][3]})
    return rows


def collection(task: str, episodes: int) -> list[dict]:
    rows = []
    for recipe, spec in RECIPES.items():
        collect(task, spec, 4096, seed=99)  # warm-up: compiles every component's program
        t0 = time.perf_counter()
        ds = collect(task, spec, episodes, seed=1)
        wall = time.perf_counter() - t0
        rows.append({"task": task, "recipe": recipe, "episodes": episodes,
                     "transitions": ds.num_transitions, "wall_s": wall,
                     "transitions_per_s": ds.num_transitions / wall,
                     "episodes_per_s": episodes / wall, "success": ds.meta["success_rate"]})
        print(f"  collect {recipe}: {episodes} episodes, {ds.num_transitions} transitions in "
              f"{wall:.1f} s", file=sys.stderr)
        del ds
    return rows


def main(argv=None) -> int:
    p = benchlib.parser(__doc__, "offline_throughput.json")
    p.add_argument("--task", default="DoorKey")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 8])
    p.add_argument("--steps", type=int, default=500, help="gradient steps per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--episodes", type=int, default=100_000, help="episodes per collection")
    args = p.parse_args(argv)
    out = {"gradient_steps": gradient_steps(args.task, args.seeds, args.steps, args.repeats),
           "collection": collection(args.task, args.episodes)}
    benchlib.save(args.out, out)
    base = {r["seeds"]: r["gradient_steps_per_s"] for r in out["gradient_steps"]
            if r["variant"] == "cql"}
    print("| variant | seeds | gradient steps/s | vs CQL |\n|---|---|---|---|")
    for r in out["gradient_steps"]:
        print(f"| {r['variant']} | {r['seeds']} | {r['gradient_steps_per_s']:,.0f} | "
              f"{r['gradient_steps_per_s'] / base[r['seeds']]:.2f} |")
    print("\n| recipe | episodes | transitions | s | transitions/s | episodes/s |\n|---|---|---|---|---|---|")
    for r in out["collection"]:
        print(f"| {r['recipe']} | {r['episodes']:,} | {r['transitions']:,} | {r['wall_s']:.1f} | "
              f"{r['transitions_per_s']:,.0f} | {r['episodes_per_s']:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
