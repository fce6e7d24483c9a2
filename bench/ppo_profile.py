"""Where plain PPO's training time goes: the update with a few network/epoch variants, and
random-action rollouts of the same environments (stepping alone).

    python bench/ppo_profile.py DoorKey-8x8        # any task name, 64 envs x 32 steps, 1 seed

Each line: training steps/s of 5 updates (jitted chunk, compile apart, best of 3).
"""
import time, jax, sys
import benchlib  # noqa: F401  (the checkout's jaxrl3m on sys.path)
from jaxrl3m.core import collector
from jaxrl3m.runner.runs import load_config, setup, init_states
from jaxrl3m.runner.driver import chunk_fn
task = sys.argv[1] if len(sys.argv) > 1 else "DoorKey-8x8"
def timeit(f, *a, n=3):
    jax.block_until_ready(f(*a)); best = 1e9
    for _ in range(n):
        t = time.perf_counter(); jax.block_until_ready(f(*a)); best = min(best, time.perf_counter() - t)
    return best
for extra in [dict(), dict(window=7), dict(embed_dim=2), dict(update_epochs=1)]:
    c, run = load_config("ppo", dict(task=task, seeds=1, total_steps=64*32*100, **extra))
    s = setup(c, run); algo = s.algo
    st = init_states(algo, run)
    f = chunk_fn(algo, 5)
    t = timeit(lambda st: f(st, s.inputs), st)
    print(task, extra, f"train {5*64*32/t:,.0f} steps/s")
env = s.algo.env
pol = collector.Random(7)
def roll(key):
    carry = collector.reset(env, key, 64)
    return collector.rollout(env, pol, None, carry, key, 32 * 5)[1].reward.sum()
t = timeit(jax.jit(roll), jax.random.key(0))
print(task, f"random rollout 64 envs {64*32*5/t:,.0f} steps/s")
