"""The teacher `pi_L(a|s) = sum_k P[abstract_state(s), k] * pi_k(a|s)`: one jittable function.

The prior row is renormalised over the skills that apply in `s` (a "go to the key" skill does not
apply once the agent faces the key, "pick up the key" only applies then). When no skill with prior
mass applies, the teacher is uniform over actions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..envs.abstraction import abstract_state
from ..envs.types import NUM_ACTIONS, Observation
from .skills import skill_outputs


def mixture_weights(prior_row: jax.Array, applicable: jax.Array) -> jax.Array:
    """`f32[K]`: the prior restricted to applicable skills, renormalised (zeros if none)."""
    w = jnp.where(applicable, prior_row, 0.0)
    total = w.sum()
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 0.0)


def teacher_probs(table: jax.Array, obs: Observation, options: tuple[str, ...]) -> jax.Array:
    """`f32[NUM_ACTIONS]`: `pi_L(.|obs)` for one observation (vmap over a batch).

    Args:
      table: `f32[NUM_ABSTRACT_STATES, K]` prior table (pass it as an argument under jit).
      obs: one observation.
      options: the K option names, the table's columns (static).
    """
    skills = skill_outputs(obs, options)
    w = mixture_weights(table[abstract_state(obs)], skills.applicable)
    probs = w @ skills.probs
    return jnp.where(w.sum() > 0, probs, jnp.full((NUM_ACTIONS,), 1.0 / NUM_ACTIONS))
