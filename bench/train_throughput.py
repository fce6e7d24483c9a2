"""Training throughput: guided vs plain PPO, side by side in one run, 64 .. 8192 environments.

    python bench/train_throughput.py                          # ColoredDoorKey and DoorKey
    python bench/train_throughput.py --tasks DoorKey --envs 1024 4096 --seeds 1 4

For each task, number of environments and number of vmapped seeds, builds the jitted chunk of
`--updates` PPO updates (`jaxrl3m.algos.ppo`, presets' hyperparameters, rollouts of 32 steps,
minibatches of at most 8192 samples), compiles it once (compile time reported apart), then
times `--repeats` chunks with `block_until_ready` and keeps the best. Guided = the oracle prior
table with lambda > 0 the whole time (the teacher is computed for up to `teacher_envs` = 256
environments per step, the KL term in every minibatch); plain = no teacher, no KL term.
Environment steps per second count every seed's steps. Writes JSON and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jaxrl3m.algos.ppo import PPOConfig, make_train  # noqa: E402
from jaxrl3m.teacher.options import oracle_table  # noqa: E402
from jaxrl3m.teacher.table import atomic_write_text  # noqa: E402


def measure(task: str, num_envs: int, seeds: int, guided: bool, updates: int, repeats: int):
    batch = num_envs * 32
    config = PPOConfig(task=task, num_envs=num_envs, num_steps=32,
                       num_minibatches=max(4, batch // 8192), total_steps=batch * 10_000,
                       kl_coef=1.0 if guided else 0.0, kl_schedule="constant")
    trainer = make_train(config, guided=guided)
    table = jnp.asarray(oracle_table(task))
    keys = jax.random.split(jax.random.key(0), seeds)
    init = jax.jit(jax.vmap(trainer.init))
    chunk = jax.jit(jax.vmap(lambda r, t: trainer.update(r, t, updates), in_axes=(0, None)))
    runner = init(keys)
    t0 = time.perf_counter()
    runner, m = jax.block_until_ready(chunk(runner, table))
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        runner, m = jax.block_until_ready(chunk(runner, table))
        best = min(best, time.perf_counter() - t0)
    return {"compile_s": compile_s, "run_s": best,
            "steps_per_s": updates * batch * seeds / best}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["ColoredDoorKey", "DoorKey"])
    p.add_argument("--envs", nargs="+", type=int, default=[64, 256, 1024, 4096, 8192])
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--updates", type=int, default=2, help="updates per timed chunk")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", default=str(ROOT / "bench" / "train_throughput.json"))
    args = p.parse_args(argv)
    out = {"hardware": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                        "devices": [str(d) for d in jax.devices()],
                        "jax": jax.__version__}, "results": []}
    print(f"{'task':15s} {'envs':>5s} {'seeds':>5s} {'plain steps/s':>14s} "
          f"{'guided steps/s':>15s} {'guided/plain':>12s} {'compile s (p/g)':>16s}")
    for task in args.tasks:
        for n in args.envs:
            for s in args.seeds:
                plain = measure(task, n, s, False, args.updates, args.repeats)
                guided = measure(task, n, s, True, args.updates, args.repeats)
                ratio = guided["steps_per_s"] / plain["steps_per_s"]
                out["results"].append({"task": task, "envs": n, "seeds": s, "plain": plain,
                                       "guided": guided, "guided_over_plain": ratio})
                print(f"{task:15s} {n:5d} {s:5d} {plain['steps_per_s']:14,.0f} "
                      f"{guided['steps_per_s']:15,.0f} {ratio:12.3f} "
                      f"{plain['compile_s']:7.1f}/{guided['compile_s']:<7.1f}", flush=True)
                atomic_write_text(args.json, json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
