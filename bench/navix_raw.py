"""NAVIX DoorKey-8x8 alone (its own autoreset, random actions, 3 seeds x 16 envs in scan, the
peers bench navix-8x8 setting without a learner): an upper bound for any trainer on it.

    python bench/navix_raw.py
"""
import time, jax, jax.numpy as jnp, navix as nx
env = nx.make("Navix-DoorKey-8x8-v0", max_steps=640, penalty_coeff=0.9)
N, T = 16, 128
def run(key):
    ts = jax.vmap(env.reset)(jax.random.split(key, N))
    def body(ts, k):
        a = jax.random.randint(k, (N,), 0, 7)
        ts = jax.vmap(env.step)(ts, a)
        return ts, ts.reward
    def outer(ts, k):
        ts, r = jax.lax.scan(body, ts, jax.random.split(k, T))
        return ts, r.sum()
    ts, r = jax.lax.scan(outer, ts, jax.random.split(key, 64))
    return r.sum()
f = jax.jit(jax.vmap(run))  # 3 seeds
keys = jax.random.split(jax.random.key(0), 3)
f(keys).block_until_ready()
for _ in range(2):
    t = time.time(); f(keys).block_until_ready(); dt = time.time() - t
    print("navix raw env (3 seeds x16 envs, random actions):", 3*N*T*64/dt, "steps/s")
