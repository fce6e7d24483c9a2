"""Random-policy rollouts of the tasks with a summary: `python -m jaxrl3m.rollout`.

For each task: a sample layout, then `--envs` environments stepped `--steps` times with uniformly
random actions in one jit(scan(vmap(step))), and what happened: episodes finished, success rate,
return, episode length, lava deaths, abstract states visited, env steps per second.
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from . import envs
from .core import collector
from .envs.render import render_text

def random_rollout(env, n_envs: int, n_steps: int, guide: envs.Guidance):
    """jit-compiled: `n_envs` environments stepped `n_steps` times with uniformly random
    actions by the common collector; returns the transitions `[T, N]` and their abstract
    states (`guide`'s)."""

    def run(key):
        k_reset, k_act = jax.random.split(key)
        carry = collector.reset(env, k_reset, n_envs)
        _, tr = collector.rollout(env, collector.Random(env.num_actions), None, carry, k_act,
                                  n_steps)
        return tr, jax.vmap(jax.vmap(guide.abstract_state))(tr.obs)

    return jax.jit(run)


def summarise(trace, guide: envs.Guidance) -> dict:
    tr, s_idx = jax.device_get(trace)
    done = np.asarray(tr.terminated | tr.truncated)
    n = int(done.sum())
    return {
        "episodes": n,
        "success_rate": float((tr.terminated & (tr.reward > 0)).sum() / max(n, 1)),
        "mean_return": float(tr.episode_return[done].mean()) if n else 0.0,
        "mean_length": float(tr.episode_length[done].mean()) if n else 0.0,
        "lava_deaths": int((tr.terminated & (tr.reward <= 0)).sum()),
        "abstract_states": np.bincount(np.asarray(s_idx).ravel(),
                                       minlength=guide.num_states),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(envs.guided_tasks()),
                   choices=envs.guided_tasks())
    p.add_argument("--envs", type=int, default=1024, help="parallel environments")
    p.add_argument("--steps", type=int, default=300, help="steps per environment")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--view-size", type=int, default=3)
    args = p.parse_args(argv)

    for name in args.tasks:
        env = envs.make(name, view_size=args.view_size)
        ts = env.reset(jax.random.key(args.seed))
        print(f"== {name}: {env.grid_shape[0]}x{env.grid_shape[1]} grid, view {env.view_size}, "
              f"max_steps {env.max_steps}")
        print(render_text(ts.state.grid, ts.state.agent_pos, ts.state.agent_dir))
        guide = envs.guidance(name)
        fn = random_rollout(env, args.envs, args.steps, guide)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(jax.random.key(args.seed + 1)))
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        trace = jax.block_until_ready(fn(jax.random.key(args.seed + 2)))
        run_s = time.perf_counter() - t0
        s = summarise(trace, guide)
        print(f"random policy, {args.envs} envs x {args.steps} steps: {s['episodes']} episodes, "
              f"success {s['success_rate']:.3f}, mean return {s['mean_return']:.3f}, "
              f"mean length {s['mean_length']:.1f}, lava deaths {s['lava_deaths']}, "
              f"{args.envs * args.steps / run_s:,.0f} env steps/s (compile {compile_s:.1f}s)")
        counts = s["abstract_states"]
        visited = np.flatnonzero(counts)
        print(f"abstract states visited: {len(visited)} of {guide.num_states}; "
              "most frequent:")
        for i in visited[np.argsort(-counts[visited])][:5]:
            print(f"  [{i:2d}] {counts[i] / counts.sum():6.1%}  {guide.describe(int(i))}")
        print()


if __name__ == "__main__":
    main()
