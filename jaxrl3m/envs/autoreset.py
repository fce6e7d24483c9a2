"""The library's autoreset, once for every environment: per environment (`step`) and for a batch
(`batch_step`), where only the environments whose episode ended pay for a reset.

An environment that splits its step into these three pure functions of one environment gets
both for free:

    transition(state, action) -> (next_state, reward, terminated, truncated)   # no autoreset
    next_episode(state) -> state        # the first state of the episode a reset after `state`
                                        # starts (a function of `state`'s own key)
    observe(state) -> Observation

`step(env, state, action)` is the definition (the `TimeStep` convention of
`jaxrl3m.envs.types`): the transition, and where it ended the episode, `next_episode` of the
state it started from. Under `jax.vmap` both branches run for every environment (a `select`), so
a vmapped `step` draws a fresh layout for all `N` environments on every step although about
`N / episode length` of them need one; on DoorKey that reset is three quarters of a step.

`batch_step(env, states, actions)` gives exactly the same result (bit for bit, a test checks)
for a batch: it computes `next_episode` only for the environments that are done, `max_resets`
of them at a time (gathered by `jnp.nonzero`, scattered back), in a `lax.while_loop` that runs
once per `max_resets` ended episodes (never, on the many steps where none ended; under a vmap
over seeds, as often as the seed that needs most). The collector steps every environment
through it; environments without `next_episode` are vmapped whole.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .types import TimeStep

RESETS_PER_PASS = 8
"""Environments reset per pass of `batch_step`'s loop, per 64 environments (at least 1): a
pass costs about as much as `RESETS_PER_PASS / 64` of a vmapped reset, and with episodes of
tens of steps, one pass per step takes every reset."""


def has_transition(env: Any) -> bool:
    """Whether `env` splits its step (see the module docstring) so `batch_step` can skip resets."""
    return all(hasattr(env, name) for name in ("transition", "next_episode", "observe"))


def step(env: Any, state: Any, action: jax.Array) -> TimeStep:
    """One environment's step with the library's autoreset (`TimeStep`)."""
    nxt, reward, terminated, truncated = env.transition(state, action)
    done = terminated | truncated
    new = jax.tree.map(lambda a, b: jnp.where(done, a, b), env.next_episode(state), nxt)
    return TimeStep(state=new, obs=env.observe(new), reward=reward, terminated=terminated,
                    truncated=truncated, final_obs=env.observe(nxt))


def max_resets(num_envs: int) -> int:
    """Resets per pass of `batch_step` for `num_envs` environments."""
    return -(-num_envs * RESETS_PER_PASS // 64)  # at least 1 for num_envs >= 1


def reset_done(next_episode, done: jax.Array, before: Any, after: Any, per_pass: int) -> Any:
    """`after` with environment `i` replaced by `next_episode(before[i])` wherever `done[i]`
    (batches, leading axis `N`); `next_episode` runs on `per_pass` environments at a time."""
    n = done.shape[0]

    def one_pass(carry):
        states, pending = carry
        idx = jnp.nonzero(pending, size=per_pass, fill_value=n)[0]  # n: an unused slot
        src = jax.tree.map(lambda x: x.at[idx].get(mode="clip"), before)
        fresh = jax.vmap(next_episode)(src)
        states = jax.tree.map(lambda s, f: s.at[idx].set(f, mode="drop"), states, fresh)
        return states, pending.at[idx].set(False, mode="drop")

    return jax.lax.while_loop(lambda carry: carry[1].any(), one_pass, (after, done))[0]


def batch_step(env: Any, states: Any, actions: jax.Array, per_pass: int | None = None
               ) -> TimeStep:
    """`jax.vmap(step)` over a batch (leading axis `N`), the same values, with resets only
    where episodes ended (`per_pass` of them per pass; default `max_resets(N)`). Environments
    without `next_episode` are vmapped whole (`jax.vmap(env.step)`)."""
    if not has_transition(env):
        return jax.vmap(env.step)(states, actions)
    n = actions.shape[0]
    nxt, reward, terminated, truncated = jax.vmap(env.transition)(states, actions)
    done = terminated | truncated
    new = reset_done(env.next_episode, done, states, nxt,
                     max_resets(n) if per_pass is None else per_pass)
    observe = jax.vmap(env.observe)
    return TimeStep(state=new, obs=observe(new), reward=reward, terminated=terminated,
                    truncated=truncated, final_obs=observe(nxt))
