"""Training throughput: guided vs plain PPO, side by side in one run, 64 .. 8192 environments.

    python bench/train_throughput.py                          # ColoredDoorKey and DoorKey
    python bench/train_throughput.py --tasks DoorKey --envs 1024 4096 --seeds 1 4
    python bench/train_throughput.py --family priors --tasks DoorKey --envs 64 256 1024 4096
    python bench/train_throughput.py --family posterior --envs 256 1024 4096
    python bench/train_throughput.py --family eval --tasks DoorKey --envs 64 1024 --seeds 4

`--family priors` times the LLM-prior family instead (into `bench/prior_throughput.json`): plain
DQN, DQN-Prior (k = 5 proposals from the oracle table per state, target over k fresh proposals),
its exact k -> infinity variant, guided PPO (the LLM teacher) and GFlan-Prior (PPO with the
reverse KL), each with its preset's hyperparameters and rollouts of 32 steps.
`--family posterior` times guided PPO with the fixed teacher against the posterior teacher
(`posterior: true`: the table re-weighted by option-advantage estimates updated every update),
into `bench/posterior_throughput.json`.
`--family eval` times the driver's chunk (`jaxrl3m.runner.driver.chunk_fn`, chunks of
`eval_every` updates) of guided PPO without and with the periodic held-out evaluation
(`eval_every` = 10 updates, `curve_episodes` = 128 episodes per seed: the run defaults), into
`bench/eval_throughput.json`: what the headline learning curve costs.

For each task, number of environments and number of vmapped seeds, builds the jitted chunk of
`--updates` PPO updates (`jaxrl3m.algos.ppo`, presets' hyperparameters, rollouts of 32 steps,
minibatches of at most 8192 samples) for plain and for guided PPO, compiles both (compile time
reported apart), then times `--repeats` chunks of each, alternating, with `block_until_ready`,
and keeps the best (the median is in the JSON). Guided = the oracle prior
table with lambda > 0 the whole time (the teacher is computed for up to `teacher_envs` = 256
environments per step, the KL term in every minibatch); plain = no teacher, no KL term; guided
with lambda = 0 = past the cut-off (the teacher must not be computed: close to plain). Seeds
are vmapped as the driver vmaps them (`jaxrl3m.core.parallel.vmap_seeds`).
Environment steps per second count every seed's steps. Prints a table and merges the rows into
the JSON (a row with the same task, environments and seeds is replaced; `--fresh` starts over).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import benchlib
from benchlib import ROOT
import jax
import numpy as np

from jaxrl3m.algos.dqn import DQNConfig, make_dqn
from jaxrl3m.algos.ppo import PPOConfig, make_ppo
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.teacher import Teacher

TEACHERS = {t: Teacher.create(t, oracle_table(t))
            for t in ("DoorKey", "LavaDoorKey", "ColoredDoorKey")}
VARIANTS = {"plain": (False, 0.0, -1), "guided": (True, 1.0, -1), "guided_lambda0": (True, 1.0, 0),
            "posterior": (True, 1.0, -1)}
"""name -> (guided, kl_coef, kl_cutoff): plain PPO, guided PPO, guided PPO while lambda_t = 0
(past the cut-off: a traced zero, as in a run past LLM4Teach's cut-off)."""


PRIOR_VARIANTS = ("dqn", "dqn_prior", "dqn_exact", "guided", "gflan")
"""The LLM-prior family (`--family priors`)."""


def algorithm(task: str, num_envs: int, variant: str):
    """The algorithm of a variant, sized for `num_envs` (minibatches of at most 8192 samples)."""
    batch = num_envs * 32
    sizes = dict(task=task, num_envs=num_envs, num_steps=32, total_steps=batch * 10_000,
                 num_minibatches=max(4, batch // 8192))
    if variant.startswith("dqn"):
        config = DQNConfig(**sizes, inference="exact" if variant == "dqn_exact" else "sampled",
                           prior_floor=0.01 if variant == "dqn_exact" else 0.0)
        return make_dqn(config, guided=variant != "dqn")
    if variant == "gflan":
        return make_ppo(PPOConfig(**sizes, kl_coef=0.3, kl_direction="reverse"))
    guided, kl_coef, cutoff = VARIANTS[variant]
    return make_ppo(PPOConfig(**sizes, kl_coef=kl_coef, kl_cutoff=cutoff,
                                kl_schedule="constant", posterior=variant == "posterior"),
                      guided=guided)


def build(task: str, num_envs: int, seeds: int, variant: str, updates: int):
    """The jitted chunk of `updates` updates for `seeds` seeds (vmapped as the driver does),
    compiled and run once."""
    chunk, state, compile_s = benchlib.compiled_chunk(algorithm(task, num_envs, variant), seeds,
                                                      updates, TEACHERS[task])
    return {"chunk": chunk, "runner": state, "compile_s": compile_s,
            "steps": updates * num_envs * 32 * seeds}


def measure(task: str, num_envs: int, seeds: int, updates: int, repeats: int,
            variants=("plain", "guided", "guided_lambda0")) -> dict:
    """The variants timed in alternation (`repeats` chunks each, best kept), so that a slow
    spell of the machine hits all alike."""
    runs = {v: build(task, num_envs, seeds, v, updates) for v in variants}
    times = benchlib.alternate({v: (r["chunk"], r["runner"]) for v, r in runs.items()},
                               TEACHERS[task], repeats)
    return {name: {"compile_s": r["compile_s"], "run_s": min(times[name]),
                   "steps_per_s": r["steps"] / min(times[name]),
                   "steps_per_s_median": r["steps"] / float(np.median(times[name]))}
            for name, r in runs.items()}


def teacher_cost(task: str, states: int = 8192, repeats: int = 5) -> float:
    """Microseconds per state of the teacher `pi_L` (oracle table), vmapped over `states`
    observations from random-action rollouts, as the trainer computes it after a rollout."""
    env, n = make_ppo(PPOConfig(task=task)).env, 256

    def observations(key):
        ts = jax.vmap(env.reset)(jax.random.split(key, n))

        def step(carry, k):
            t = jax.vmap(env.step)(carry.state, jax.random.randint(k, (n,), 0, env.num_actions))
            return t, carry.obs

        _, obs = jax.lax.scan(step, ts, jax.random.split(key, states // n))
        return jax.tree.map(lambda x: x.reshape(states, *x.shape[2:]), obs)

    obs = jax.jit(observations)(jax.random.key(1))
    teacher = jax.jit(lambda t, o: t.probs(o))
    jax.block_until_ready(teacher(TEACHERS[task], obs))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(teacher(TEACHERS[task], obs))
        best = min(best, time.perf_counter() - t0)
    return best / states * 1e6


def markdown_table(out: dict) -> str:
    """The README / RESULTS.md table from the JSON."""
    lines = ["| task | envs | seeds | plain PPO steps/s | guided PPO steps/s | guided / plain | "
             "guided, lambda = 0 / plain | compile s (plain / guided) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(out["results"], key=lambda r: (r["task"], r["seeds"], r["envs"])):
        zero = r.get("guided_lambda0")
        lines.append(f"| {r['task']} | {r['envs']} | {r['seeds']} | "
                     f"{r['plain']['steps_per_s']:,.0f} | {r['guided']['steps_per_s']:,.0f} | "
                     f"{r['guided_over_plain']:.2f} | "
                     + (f"{zero['steps_per_s'] / r['plain']['steps_per_s']:.2f}" if zero else "")
                     + f" | {r['plain']['compile_s']:.0f} / {r['guided']['compile_s']:.0f} |")
    lines.append("")
    lines.append("Teacher pi_L alone, 8192 states in one batch: " + ", ".join(
        f"{t} {us:.2f} us/state" for t, us in out.get("teacher_us_per_state", {}).items()))
    return "\n".join(lines)


def priors_table(out: dict) -> str:
    """The table of `--family priors`."""
    lines = ["| task | envs | " + " | ".join(f"{v} steps/s" for v in PRIOR_VARIANTS)
             + " | DQN-Prior / DQN | DQN-Prior / guided PPO |",
             "|---|---|" + "---|" * (len(PRIOR_VARIANTS) + 2)]
    for r in sorted(out["results"], key=lambda r: (r["task"], r["envs"])):
        sps = {v: r[v]["steps_per_s"] for v in PRIOR_VARIANTS}
        lines.append(f"| {r['task']} | {r['envs']} | "
                     + " | ".join(f"{sps[v]:,.0f}" for v in PRIOR_VARIANTS)
                     + f" | {sps['dqn_prior'] / sps['dqn']:.2f} | "
                       f"{sps['dqn_prior'] / sps['guided']:.2f} |")
    return "\n".join(lines)


def main_priors(args) -> int:
    """`--family priors`: DQN, DQN-Prior, its exact variant, guided PPO, GFlan-Prior."""
    path = Path(args.out or ROOT / "bench" / "prior_throughput.json")
    if args.markdown:
        print(priors_table(json.loads(path.read_text())))
        return 0
    out = benchlib.merged(path, args.fresh)
    print(f"{'task':15s} {'envs':>5s} " + " ".join(f"{v:>10s}" for v in PRIOR_VARIANTS))
    for task in args.tasks:
        for n in args.envs:
            m = measure(task, n, 1, args.updates, args.repeats, PRIOR_VARIANTS)
            benchlib.put(out, {"task": task, "envs": n, "seeds": 1, **m}, "task", "envs")
            print(f"{task:15s} {n:5d} " + " ".join(f"{m[v]['steps_per_s']:10,.0f}"
                                                     for v in PRIOR_VARIANTS), flush=True)
            benchlib.save(path, out)
    print(priors_table(out))
    return 0


def main_posterior(args) -> int:
    """`--family posterior`: the fixed teacher against the posterior teacher, side by side."""
    path = Path(args.out or ROOT / "bench" / "posterior_throughput.json")
    # --markdown: the table of the file as it is, wherever it was measured
    out = json.loads(path.read_text()) if args.markdown else benchlib.merged(path, args.fresh)
    if not args.markdown:
        for task in args.tasks:
            for n in args.envs:
                m = measure(task, n, 1, args.updates, args.repeats, ("guided", "posterior"))
                ratio = m["posterior"]["steps_per_s"] / m["guided"]["steps_per_s"]
                benchlib.put(out, {"task": task, "envs": n, **m, "posterior_over_fixed": ratio},
                             "task", "envs")
                print(f"{task:15s} {n:5d} fixed {m['guided']['steps_per_s']:10,.0f} posterior "
                      f"{m['posterior']['steps_per_s']:10,.0f} ratio {ratio:.3f}", flush=True)
                benchlib.save(path, out)
    lines = ["| task | envs | fixed teacher steps/s | posterior teacher steps/s | posterior / "
             "fixed | compile s (fixed / posterior) |", "|---|---|---|---|---|---|"]
    for r in sorted(out["results"], key=lambda r: (r["task"], r["envs"])):
        lines.append(f"| {r['task']} | {r['envs']} | {r['guided']['steps_per_s']:,.0f} | "
                     f"{r['posterior']['steps_per_s']:,.0f} | {r['posterior_over_fixed']:.3f} | "
                     f"{r['guided']['compile_s']:.0f} / {r['posterior']['compile_s']:.0f} |")
    print("\n".join(lines))
    return 0


def main_eval(args) -> int:
    """`--family eval`: the driver's chunk without and with the periodic held-out evaluation."""
    from jaxrl3m.core.parallel import vmap_seeds
    from jaxrl3m.runner.driver import chunk_fn
    from jaxrl3m.runner.runs import RunConfig

    path = Path(args.out or ROOT / "bench" / "eval_throughput.json")
    out = json.loads(path.read_text()) if args.markdown else benchlib.merged(path, args.fresh)
    every, episodes = RunConfig.eval_every, RunConfig.curve_episodes
    if not args.markdown:
        for task in args.tasks:
            for n in args.envs:
                for s in args.seeds:
                    algo, inputs = algorithm(task, n, "guided"), TEACHERS[task]
                    state = jax.jit(vmap_seeds(algo.init))(jax.random.split(jax.random.key(0), s))
                    runs, compile_s = {}, {}
                    for name, e in (("off", 0), ("on", every)):
                        fn = chunk_fn(algo, every, eval_every=e, eval_episodes=episodes)
                        t0 = time.perf_counter()
                        runs[name] = (fn, jax.block_until_ready(fn(state, inputs))[0])
                        compile_s[name] = time.perf_counter() - t0
                    times = benchlib.alternate(runs, inputs, args.repeats)
                    steps = every * n * 32 * s
                    m = {k: {"compile_s": compile_s[k], "run_s": min(t),
                             "steps_per_s": steps / min(t)} for k, t in times.items()}
                    ratio = m["on"]["steps_per_s"] / m["off"]["steps_per_s"]
                    benchlib.put(out, {"task": task, "envs": n, "seeds": s, **m,
                                       "eval_every": every, "curve_episodes": episodes,
                                       "on_over_off": ratio}, "task", "envs", "seeds")
                    benchlib.save(path, out)
                    print(f"{task:15s} {n:5d} envs x {s} seeds: without "
                          f"{m['off']['steps_per_s']:,.0f}, with {m['on']['steps_per_s']:,.0f} "
                          f"steps/s ({ratio:.3f}x)", flush=True)
    lines = ["| task | envs | seeds | without evaluation steps/s | with (every 10 updates, 128 "
             "episodes per seed) | with / without | compile s (without / with) |",
             "|---|---|---|---|---|---|---|"]
    for r in sorted(out["results"], key=lambda r: (r["task"], r["envs"], r["seeds"])):
        lines.append(f"| {r['task']} | {r['envs']} | {r['seeds']} | "
                     f"{r['off']['steps_per_s']:,.0f} | {r['on']['steps_per_s']:,.0f} | "
                     f"{r['on_over_off']:.3f} | {r['off']['compile_s']:.0f} / "
                     f"{r['on']['compile_s']:.0f} |")
    print("\n".join(lines))
    return 0


def main(argv=None) -> int:
    p = benchlib.parser(__doc__)
    p.add_argument("--tasks", nargs="+", default=["ColoredDoorKey", "DoorKey"])
    p.add_argument("--envs", nargs="+", type=int, default=[64, 256, 1024, 4096, 8192])
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--updates", type=int, default=2, help="updates per timed chunk")
    p.add_argument("--variants", nargs="+", default=["plain", "guided", "guided_lambda0"],
                   choices=["plain", "guided", "guided_lambda0"],
                   help="PPO variants timed (plain and guided always; default all three)")
    p.add_argument("--repeats", type=int, default=4,
                   help="timed chunks per variant, alternating plain and guided; best kept")
    p.add_argument("--out", "--json", dest="out", default=None,
                   help="default: bench/train_throughput.json (bench/prior_throughput.json "
                        "with --family priors, bench/posterior_throughput.json with --family "
                        "posterior)")
    p.add_argument("--family", choices=("ppo", "priors", "posterior", "eval"),
                   default="ppo", help="ppo: plain / guided PPO (default); priors: the LLM-prior "
                                       "family; posterior: fixed / posterior teacher; eval: the "
                                       "periodic held-out evaluation's cost")
    p.add_argument("--fresh", action="store_true",
                   help="start a new JSON instead of merging rows into the existing one")
    p.add_argument("--markdown", action="store_true",
                   help="print the Markdown table of the JSON and exit (measures nothing)")
    args = p.parse_args(argv)
    if not {"plain", "guided"} <= set(args.variants):
        p.error("--variants must include plain and guided (the ratio reported)")
    if args.family == "priors":
        return main_priors(args)
    if args.family == "posterior":
        return main_posterior(args)
    if args.family == "eval":
        return main_eval(args)
    path = Path(args.out or ROOT / "bench" / "train_throughput.json")
    if args.markdown:
        print(markdown_table(json.loads(path.read_text())))
        return 0
    out = benchlib.merged(path, args.fresh)
    for task in args.tasks:
        us = teacher_cost(task)
        out.setdefault("teacher_us_per_state", {})[task] = us
        print(f"teacher pi_L on {task}: {us:.2f} us per state (8192 states in one batch)")
    print(f"{'task':15s} {'envs':>5s} {'seeds':>5s} {'plain steps/s':>14s} "
          f"{'guided steps/s':>15s} {'guided/plain':>12s} {'lambda=0/plain':>14s} "
          f"{'compile s (p/g)':>16s}")
    for task in args.tasks:
        for n in args.envs:
            for s in args.seeds:
                m = measure(task, n, s, args.updates, args.repeats, tuple(args.variants))
                plain, guided = m["plain"], m["guided"]
                ratio = guided["steps_per_s"] / plain["steps_per_s"]
                benchlib.put(out, {"task": task, "envs": n, "seeds": s, **m,
                                   "guided_over_plain": ratio}, "task", "envs", "seeds")
                zero = (f"{m['guided_lambda0']['steps_per_s'] / plain['steps_per_s']:14.3f}"
                        if "guided_lambda0" in m else f"{'-':>14s}")
                print(f"{task:15s} {n:5d} {s:5d} {plain['steps_per_s']:14,.0f} "
                      f"{guided['steps_per_s']:15,.0f} {ratio:12.3f} {zero} "
                      f"{plain['compile_s']:7.1f}/{guided['compile_s']:<7.1f}", flush=True)
                benchlib.save(path, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
