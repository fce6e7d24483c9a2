"""NAVIX's own agents against jaxrl3m's plain PPO, side by side in one run.

    python bench/navix_peers.py                       # the three tasks, 3 seeds, into bench/navix_peers.json
    python bench/navix_peers.py --tasks Navix-DoorKey-5x5 --seeds 2 --budget 200000

Peers: `navix.agents.PPO` and `navix.agents.PQN` (PureJaxRL-style, shipped with NAVIX 4), each
with its own default hyperparameters, NAVIX's PPO also with jaxrl3m's PPO hyperparameters
(`matched`), and jaxrl3m's plain PPO (`ppo` preset: no teacher) with its defaults and with NAVIX
PPO's hyperparameters. Tasks:

- `Navix-DoorKey-5x5`, `Navix-DoorKey-8x8`: NAVIX's environment, with MiniGrid's reward
  (`penalty_coeff = 0.9`) and horizon (`10 N^2`) for every agent. NAVIX's agents read NAVIX's
  first-person `7 x 7 x 3` crop, flattened; jaxrl3m's PPO reads the same NAVIX state through
  `jaxrl3m.envs.make("DoorKey-NxN")` (its `Observation`, fully observed, the encoder's 11 x 11
  egocentric window).
- `DoorKey`: jaxrl3m's DoorKey, NAVIX's agents through `navix.make("JaxRL3M-DoorKey-v0",
  flatten=True)` (the encoder's 11 x 11 x 3 window of the remembered map, flattened), jaxrl3m's
  PPO through `jaxrl3m.envs.make("DoorKey")`.

Every agent trains `--seeds` seeds vmapped, for `--budget` environment steps per seed (per
task by default). Each whole training run is compiled first (compile time apart), then timed:
training steps/s counts every seed's environment steps. Success per update is the share of the
episodes ended in that update with a positive reward, pooled over the last 5 updates (at least
50 episodes; `jaxrl3m.core.metrics.windowed_success`), the one rate every agent here logs; steps
to 0.9 is the first step where it reaches 0.9 (NaN: not within the budget). That window reads
high early in a run (episodes that end early are mostly successes; issue 27), the same way for
every agent: the figures compare the agents with one another, not with jaxrl3m's headline curves
(periodic held-out evaluations, bench/learning.py). Writes bench/navix_peers.json, a
markdown table (.md) and learning curves (.png).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import benchlib

from jaxrl3m.core import metrics as metrics_io
from jaxrl3m.runner.driver import chunk_fn
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.runner.runs import load_config, setup

BUDGETS = {"Navix-DoorKey-5x5": 300_000, "Navix-DoorKey-8x8": 2_000_000, "DoorKey": 2_000_000}
OURS = {"Navix-DoorKey-5x5": "DoorKey-5x5", "Navix-DoorKey-8x8": "DoorKey-8x8",
        "DoorKey": "DoorKey"}
"""task -> jaxrl3m task name."""

# jaxrl3m's PPO defaults (configs/ppo.yaml) as NAVIX hyperparameters, and the reverse.
OUR_HP = dict(num_envs=64, num_steps=32, num_epochs=4, num_minibatches=4, lr=3e-3,
              gae_lambda=0.95, clip_eps=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5)
AGENTS = ("navix-ppo", "navix-ppo-matched", "navix-pqn", "ours-ppo", "ours-ppo-navix-hp")


def navix_env(task: str, obs: str = "first_person"):
    import navix as nx  # here, not at the top: bench/tables.py imports this module for table()
    if task == "DoorKey":
        return nx.make("JaxRL3M-DoorKey-v0", flatten=True)
    n = int(task.split("-")[-1].split("x")[0])
    if obs == "symbolic":
        fp = lambda s: nx.observations.symbolic(s).reshape(-1)  # noqa: E731
        space = nx.spaces.Discrete.create(256, (n * n * 3,), jnp.uint8)
    else:
        fp = lambda s: nx.observations.symbolic_first_person(s).reshape(-1)  # noqa: E731
        space = nx.spaces.Discrete.create(256, (7 * 7 * 3,), jnp.uint8)
    return nx.make(f"{task}-v0", max_steps=10 * n * n, penalty_coeff=0.9, observation_fn=fp,
                   observation_space=space)


def navix_agent(agent: str, task: str, budget: int, obs: str = "first_person"):
    from navix.agents import PPO, PQN, ActorCritic, PPOHparams, PQNHparams, QNetwork
    env = navix_env(task, obs)
    if agent == "navix-pqn":
        return PQN(hparams=PQNHparams(budget=budget),
                   network=QNetwork(action_dim=len(env.action_set)), env=env)
    hp = PPOHparams(budget=budget, **(OUR_HP if agent == "navix-ppo-matched" else {}))
    return PPO(hparams=hp, network=ActorCritic(action_dim=len(env.action_set)), env=env)


def navix_curves(logs: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(env_steps f[U], success f[S, U], episodes f[S, U])` from NAVIX's training logs
    (`[S, U, T, N]`)."""
    done = np.asarray(logs["agent/train/done_mask"]).astype(bool)
    ret = np.asarray(logs["agent/train/returns"])
    episodes = done.sum((-2, -1)).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        success = (done & (ret > 0)).sum((-2, -1)) / episodes
    steps = np.asarray(logs["agent/train/frames"])[0].astype(float)
    return steps, success, episodes


def run_navix(agent: str, task: str, budget: int, seeds: int, obs: str = "first_person") -> dict:
    a = navix_agent(agent, task, budget, obs)
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(a.train)).lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, logs = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - t0
    steps, success, episodes = navix_curves(logs)
    hp = a.hparams
    return result(agent, task, steps, success, episodes, seeds, compile_s, run_s,
                  f"{hp.num_envs} envs x {hp.num_steps} steps, {hp.num_epochs} epochs x "
                  f"{hp.num_minibatches} minibatches, lr {hp.lr:g}")


def _navix_ppo_hp() -> dict:
    """NAVIX PPO's default hyperparameters in jaxrl3m's PPO keys."""
    from navix.agents import PPOHparams
    d = PPOHparams()
    return dict(num_envs=d.num_envs, num_steps=d.num_steps, update_epochs=d.num_epochs,
                num_minibatches=d.num_minibatches, lr=d.lr, max_grad_norm=d.max_grad_norm)


def run_ours(agent: str, task: str, budget: int, seeds: int) -> dict:
    hp = {} if agent == "ours-ppo" else _navix_ppo_hp()
    c, run = load_config("ppo", dict(task=OURS[task], total_steps=budget, seeds=seeds, **hp))
    s = setup(c, run)
    algo = s.algo
    keys = jax.random.split(jax.random.key(0), seeds)
    state = jax.jit(vmap_seeds(algo.init, in_axes=(0, None)))(keys, None)
    chunk = chunk_fn(algo, c.num_updates)
    t0 = time.perf_counter()
    compiled = chunk.lower(state, s.inputs).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, m = jax.block_until_ready(compiled(state, s.inputs, np.int32(c.num_updates)))
    run_s = time.perf_counter() - t0
    m = jax.device_get(m)
    return result(agent, task, m["env_steps"][0], m["success"], m["episodes"], seeds,
                  compile_s, run_s, f"{c.num_envs} envs x {c.num_steps} steps, "
                  f"{c.update_epochs} epochs x {c.num_minibatches} minibatches, lr {c.lr:g}")


def result(agent, task, steps, success, episodes, seeds, compile_s, run_s, hp) -> dict:
    curve = metrics_io.windowed_success(np.asarray(success, float), np.asarray(episodes, float))
    to_09 = [metrics_io.steps_to(np.asarray(steps), c) for c in curve]
    final = curve[:, -1]
    total = float(steps[-1]) * seeds
    return {"agent": agent, "task": task, "hyperparameters": hp, "seeds": seeds,
            "budget": int(steps[-1]), "compile_s": compile_s, "run_s": run_s,
            "steps_per_s": total / run_s, "steps_to_0.9": to_09,
            "reached": int(np.isfinite(to_09).sum()),
            "final_success": np.nan_to_num(final, nan=0.0).tolist(),
            "curve": {"steps": np.asarray(steps).tolist(),
                      "success": np.where(np.isfinite(curve), curve, -1).tolist()}}


def table(results: list[dict]) -> str:
    lines = ["| task | agent | hyperparameters | training steps/s | steps to 0.9 (per seed) | "
             "reached | final success | compile s |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        to = ", ".join("-" if not np.isfinite(x) else f"{x / 1e3:,.0f}k" for x in r["steps_to_0.9"])
        lines.append(f"| {r['task']} | {r['agent']} | {r['hyperparameters']} | "
                     f"{r['steps_per_s']:,.0f} | {to} | {r['reached']}/{r['seeds']} | "
                     f"{np.mean(r['final_success']):.2f} | {r['compile_s']:.0f} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    for task in dict.fromkeys(r["task"] for r in results):
        curves = {}
        for r in results:
            if r["task"] == task:
                s = np.asarray(r["curve"]["success"], float)
                curves[r["agent"]] = (np.asarray(r["curve"]["steps"]), np.where(s < 0, np.nan, s))
        metrics_io.plot_learning_curves(curves, path.with_name(f"{path.stem}_{task}.png"),
                                        f"{task}: NAVIX's agents and jaxrl3m's plain PPO",
                                        ylabel="success rate (episodes ended, last 5 updates)")


def main() -> None:
    p = benchlib.parser(__doc__, "navix_peers.json")
    p.add_argument("--tasks", nargs="+", default=list(BUDGETS), choices=list(BUDGETS))
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budget", type=int, help="environment steps per seed (default: per task)")
    p.add_argument("--navix-obs", choices=("first_person", "symbolic"), default="first_person",
                   help="what NAVIX's agents see on NAVIX's tasks (default: NAVIX's 7 x 7 "
                        "first-person crop; symbolic: the whole grid, as jaxrl3m's PPO does)")
    p.add_argument("--fresh", action="store_true", help="start the JSON over (default: rows "
                   "of the same task and agent are replaced, others kept)")
    args = p.parse_args()
    out = Path(args.out)
    results = [] if args.fresh or not out.exists() else json.loads(out.read_text())["results"]
    for task in args.tasks:
        for agent in args.agents:
            budget = args.budget or BUDGETS[task]
            run = run_navix if agent.startswith("navix") else run_ours
            r = run(agent, task, budget, args.seeds, **(
                {"obs": args.navix_obs} if agent.startswith("navix") else {}))
            if agent.startswith("navix") and args.navix_obs == "symbolic" and task != "DoorKey":
                r["agent"] = agent = agent + "-full-obs"
            results = [x for x in results if (x["task"], x["agent"]) != (task, agent)] + [r]
            print(f"{task:18s} {agent:18s} {r['steps_per_s']:>10,.0f} steps/s  to 0.9: "
                  f"{r['steps_to_0.9']}  final {np.mean(r['final_success']):.2f}  "
                  f"(compile {r['compile_s']:.0f} s, run {r['run_s']:.0f} s)", flush=True)
            benchlib.save(out, {"navix": importlib.metadata.version("navix"),
                                "command": "python " + " ".join(sys.argv), "results": results},
                          markdown=table(results))
    plot(results, out.with_suffix(".png"))
    print(table(results))


if __name__ == "__main__":
    main()
