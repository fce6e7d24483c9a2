"""The teacher acting alone: its success rate is its competence (no learning).

`teacher_episodes` plays exactly one episode in each of `num_episodes` environments, all in one
`jit(vmap(...))`, looping until every episode has ended, sampling actions from `pi_L` (it is
`jaxrl3m.envs.episodes.play_episodes` with the teacher as the policy).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ..envs.episodes import EpisodeStats, play_episodes
from .mixture import teacher_probs


def _teacher_policy(options: tuple[str, ...]):
    return _TEACHER_POLICIES.setdefault(options, functools.partial(_teacher_logits,
                                                                   options=options))


def _teacher_logits(table, obs, key, options):
    return jnp.log(jax.vmap(teacher_probs, in_axes=(None, 0, None))(table, obs, options))


_TEACHER_POLICIES: dict = {}


def teacher_episodes(env, table: jax.Array, options: tuple[str, ...], key: jax.Array,
                     num_episodes: int) -> EpisodeStats:
    """Plays one episode per environment with actions sampled from the teacher `pi_L`."""
    return play_episodes(env, _teacher_policy(tuple(options)), table, key, num_episodes)


@functools.partial(jax.jit, static_argnames=("env", "options", "num_envs", "num_steps"))
def visited_states(env, table: jax.Array, options: tuple[str, ...], key: jax.Array,
                   num_envs: int, num_steps: int, epsilon: float = 0.3) -> jax.Array:
    """`bool[NUM_ABSTRACT_STATES]`: abstract states seen while acting epsilon-greedily around
    the teacher (with probability `epsilon` a uniformly random action)."""
    from ..envs.abstraction import NUM_ABSTRACT_STATES, abstract_state
    k_reset, k_act = jax.random.split(key)
    ts = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))
    probs_fn = jax.vmap(teacher_probs, in_axes=(None, 0, None))

    def step(carry, k):
        ts, seen = carry
        seen = seen.at[jax.vmap(abstract_state)(ts.obs)].set(True)
        probs = (1 - epsilon) * probs_fn(table, ts.obs, options) + epsilon / env.num_actions
        actions = jax.random.categorical(k, jnp.log(probs), axis=-1)
        return (jax.vmap(env.step)(ts.state, actions), seen), None

    seen = jnp.zeros((NUM_ABSTRACT_STATES,), bool)
    (_, seen), _ = jax.lax.scan(step, (ts, seen), jax.random.split(k_act, num_steps))
    return seen


@functools.cache
def reachable_states(task: str) -> tuple[int, ...]:
    """The abstract states that occur in `task` (oracle teacher with 30% random actions, 1024
    environments x 300 steps; deterministic)."""
    from ..envs import make
    from .options import oracle_table, task_options
    seen = visited_states(make(task), jnp.asarray(oracle_table(task)), task_options(task),
                          jax.random.key(0), 1024, 300)
    return tuple(int(i) for i in jnp.flatnonzero(seen))
