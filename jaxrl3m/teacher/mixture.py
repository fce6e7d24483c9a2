"""The teacher `pi_L(a|s) = sum_k P[abstract_state(s), k] * pi_k(a|s)`: one jittable function.

`abstract_state`, the options and their skills are the task's (`jaxrl3m.envs.Guidance`).

The prior row is renormalised over the skills that apply in `s` (a "go to the key" skill does not
apply once the agent faces the key, "pick up the key" only applies then). When no skill with prior
mass applies, the teacher is uniform over actions.

Past policies (policies learned on earlier tasks, e.g. "the policy that solved DoorKey") are more
options `pi_k` after the skills: the table then has one column per skill and one per past policy,
and a past policy always applies. Their action distributions are computed by the caller (they are
networks with parameters, see `jaxrl3m.algos.ppo.Trainer.teacher`) and passed in as `extra`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from ..envs.task import Guidance
from ..envs.types import NUM_ACTIONS, Observation
from .skills import skill_outputs


def mixture_weights(prior_row: jax.Array, applicable: jax.Array) -> jax.Array:
    """`f32[K]`: the prior restricted to applicable skills, renormalised (zeros if none)."""
    w = jnp.where(applicable, prior_row, 0.0)
    total = w.sum()
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 0.0)


def option_distributions(obs: Observation, guide: Guidance,
                         extra: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """`(f32[K + P, NUM_ACTIONS], bool[K + P])`: every option's action distribution in `obs`
    and whether it applies (one observation; vmap over a batch). Arguments as `teacher_probs`."""
    skills = (guide.skills or functools.partial(skill_outputs, aliases=guide.skill_names))(
        obs, guide.options)
    probs, applicable = skills.probs, skills.applicable
    if extra is not None:
        probs = jnp.concatenate([probs, extra], axis=0)
        applicable = jnp.concatenate([applicable, jnp.ones(extra.shape[:1], bool)])
    return probs, applicable


def mix(prior_row: jax.Array, probs: jax.Array, applicable: jax.Array) -> jax.Array:
    """`f32[NUM_ACTIONS]`: the options' distributions weighted by the prior row (renormalised
    over the applicable options); uniform when no option with prior mass applies."""
    w = mixture_weights(prior_row, applicable)
    return jnp.where(w.sum() > 0, w @ probs, jnp.full((NUM_ACTIONS,), 1.0 / NUM_ACTIONS))


def teacher_probs(table: jax.Array, obs: Observation, guide: Guidance,
                  extra: jax.Array | None = None) -> jax.Array:
    """`f32[NUM_ACTIONS]`: `pi_L(.|obs)` for one observation (vmap over a batch).

    Args:
      table: `f32[S, K + P]` prior table (pass it as an argument under jit).
      obs: one observation.
      guide: the task's guidance (static): its abstract states index the table's rows, its K
        options are the table's first K columns.
      extra: `f32[P, NUM_ACTIONS]` action distributions of P past policies in `obs` (the table's
        last P columns), or None when P = 0.
    """
    probs, applicable = option_distributions(obs, guide, extra)
    return mix(table[guide.abstract_state(obs)], probs, applicable)
