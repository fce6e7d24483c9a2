"""Play exactly one episode per environment with any policy: the evaluation loop.

`play_episodes` runs `num_episodes` environments in one `jit(vmap(...))` and loops until every
episode has ended (each ends by `max_steps` at the latest), sampling actions from
`policy(params, obs, key) -> f32[N, A]` log-probabilities or probabilities' logs.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

Policy = Callable[[Any, Any, jax.Array], jax.Array]
"""`policy(params, obs [N], key) -> f32[N, A]`: logits (or log-probabilities) of actions."""


class EpisodeStats(struct.PyTreeNode):
    success: jax.Array  # bool[N]: the episode ended with a positive reward
    lava: jax.Array  # bool[N]: the episode ended on lava (terminated with no reward)
    ret: jax.Array  # f32[N]: the episode's return
    length: jax.Array  # i32[N]: steps taken


@functools.partial(jax.jit, static_argnames=("env", "policy", "num_episodes"))
def play_episodes(env, policy: Policy, params: Any, key: jax.Array,
                  num_episodes: int) -> EpisodeStats:
    """One episode in each of `num_episodes` fresh environments (layouts drawn from `key`)."""
    k_reset, k_act = jax.random.split(key)
    ts = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))

    def step(carry):
        t, ts, live, stats = carry
        k_logits, k_sample = jax.random.split(jax.random.fold_in(k_act, t))
        actions = jax.random.categorical(k_sample, policy(params, ts.obs, k_logits), axis=-1)
        nxt = jax.vmap(env.step)(ts.state, actions)
        ended = live & nxt.done
        stats = EpisodeStats(
            success=stats.success | (ended & nxt.terminated & (nxt.reward > 0)),
            lava=stats.lava | (ended & nxt.terminated & (nxt.reward <= 0)),
            ret=stats.ret + jnp.where(live, nxt.reward, 0.0),
            length=stats.length + live.astype(jnp.int32))
        return t + 1, nxt, live & ~nxt.done, stats

    zeros = jnp.zeros((num_episodes,), bool)
    init = EpisodeStats(success=zeros, lava=zeros, ret=jnp.zeros((num_episodes,)),
                        length=jnp.zeros((num_episodes,), jnp.int32))
    _, _, _, stats = jax.lax.while_loop(lambda c: c[2].any(), step,
                                        (jnp.zeros((), jnp.int32), ts, ~zeros, init))
    return stats
