"""What drawing only training maps costs in raw stepping (layouts=train redraws 1 map in 8),
against layouts=all, side by side in one process: random actions, 1024 environments, 200 steps
through the collector, best of 3.

    python bench/split_cost.py
"""

import benchlib  # noqa: F401  (the checkout on sys.path)
import time

import jax
from jaxrl3m import envs
from jaxrl3m.core import collector
from jaxrl3m.core.collector import Random
for task in ["DoorKey", "LavaDoorKey"]:
    res = {}
    for lay in ["all", "train"]:
        env = envs.make(task, layouts=lay)
        pol = Random(env.num_actions)
        f = jax.jit(lambda k: collector.rollout(env, pol, None, collector.reset(env, k, 1024, pol, None), k, 200)[1].reward.sum())
        f(jax.random.key(0)).block_until_ready()
        best = 1e9
        for r in range(3):
            t = time.perf_counter(); f(jax.random.key(r + 1)).block_until_ready(); best = min(best, time.perf_counter() - t)
        res[lay] = 1024 * 200 / best
    print(task, {k: f"{v/1e6:.2f}M" for k, v in res.items()}, f"train/all {res['train']/res['all']:.2f}")
