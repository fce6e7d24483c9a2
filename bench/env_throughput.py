"""Environment throughput: random-action stepping under jit(scan(vmap(step))).

Measures jaxrl3m's DoorKey, LavaDoorKey and ColoredDoorKey against NAVIX's own DoorKey-8x8
(`nx.make("Navix-DoorKey-8x8-v0")`, stepped by NAVIX's own `step`) and gymnasium MiniGrid's
`MiniGrid-DoorKey-8x8-v0` (a Python loop, one environment), all in the same run. Compile time is
reported apart; each figure is the best of `--repeats` timed runs.

    python bench/env_throughput.py                    # 1 .. 8192 environments
    python bench/env_throughput.py --envs 1024 4096 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl3m import envs


def build_rollout(reset, step, n_envs: int, n_steps: int):
    """A jitted function: reset `n_envs` environments, then `n_steps` random-action steps."""

    def rollout(key):
        k_reset, k_act = jax.random.split(key)
        ts = jax.vmap(reset)(jax.random.split(k_reset, n_envs))

        def body(carry, k):
            state, total = carry
            actions = jax.random.randint(k, (n_envs,), 0, 7)
            out = jax.vmap(step)(state, actions)
            return (out, total + out.reward.sum()), None

        (_, total), _ = jax.lax.scan(body, (ts, jnp.zeros(())), jax.random.split(k_act, n_steps))
        return total

    return jax.jit(rollout)


def ours(name):
    env = envs.make(name)
    return env.reset, lambda ts, a: env.step(ts.state, a)


def navix_doorkey_8x8():
    import navix as nx
    env = nx.make("Navix-DoorKey-8x8-v0", max_steps=640, penalty_coeff=0.9)
    return env.reset, env.step


def measure(reset, step, n_envs, n_steps, repeats):
    fn = build_rollout(reset, step, n_envs, n_steps)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(jax.random.key(0)))
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(jax.random.key(r + 1)))
        best = min(best, time.perf_counter() - t0)
    return {"steps_per_s": n_envs * n_steps / best, "compile_s": compile_s, "n_steps": n_steps}


def minigrid_python(n_steps=3000):
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the environments)
    env = gym.make("MiniGrid-DoorKey-8x8-v0")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 7, size=n_steps)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return {"steps_per_s": n_steps / (time.perf_counter() - t0), "compile_s": 0.0,
            "n_steps": n_steps}


def hardware() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{cpu}; {os.cpu_count()} cores visible; JAX {jax.__version__} on {devices}"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--envs", type=int, nargs="+", default=[1, 16, 256, 1024, 4096, 8192])
    p.add_argument("--steps", type=int, default=0,
                   help="steps per timed run (default: about 400k env steps per run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", default="bench/env_throughput.json")
    args = p.parse_args()

    candidates = {
        "DoorKey": lambda: ours("DoorKey"),
        "LavaDoorKey": lambda: ours("LavaDoorKey"),
        "ColoredDoorKey": lambda: ours("ColoredDoorKey"),
        "NAVIX DoorKey-8x8": navix_doorkey_8x8,
    }
    results = {"hardware": hardware(), "results": {}}
    print(results["hardware"], flush=True)
    for name, make in candidates.items():
        reset, step = make()
        for n in args.envs:
            n_steps = args.steps or max(50, min(2000, 400_000 // n))
            r = measure(reset, step, n, n_steps, args.repeats)
            results["results"].setdefault(name, {})[str(n)] = r
            print(f"{name:>18} {n:>5} envs: {r['steps_per_s']:>12,.0f} steps/s "
                  f"(compile {r['compile_s']:.1f}s)", flush=True)
    results["results"]["gymnasium MiniGrid DoorKey-8x8"] = {"1": minigrid_python()}
    print(f"gymnasium MiniGrid DoorKey-8x8, 1 env (Python loop): "
          f"{results['results']['gymnasium MiniGrid DoorKey-8x8']['1']['steps_per_s']:,.0f} "
          "steps/s", flush=True)

    # Markdown table, with the ratio to NAVIX at each size.
    navix = results["results"]["NAVIX DoorKey-8x8"]
    lines = ["| task | " + " | ".join(f"{n} envs" for n in args.envs) + " |",
             "|---" * (len(args.envs) + 1) + "|"]
    for name, per_n in results["results"].items():
        cells = []
        for n in args.envs:
            r = per_n.get(str(n))
            if r is None:
                cells.append("")
                continue
            ratio = "" if name.startswith("NAVIX") or name.startswith("gym") else \
                f" ({r['steps_per_s'] / navix[str(n)]['steps_per_s']:.2f}x)"
            cells.append(f"{r['steps_per_s']:,.0f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\nsteps/s (ratio to NAVIX DoorKey-8x8 at the same size)\n" + table)
    results["table"] = table
    tmp = args.json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(tmp, args.json)  # atomic


if __name__ == "__main__":
    main()
