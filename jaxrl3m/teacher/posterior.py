"""The posterior teacher's pieces: the LLM's table as a prior over options, updated per abstract
state from the learner's own experience (issue 17; the Bayesian view of the LLM-prior paper
applied to the teacher's options).

    P(k | s) ∝ P_LLM(k | s) exp(Q(s, k) / tau)

`Q(s, k)` is a running estimate of the advantage of following option `k` in abstract state `s`:
for a transition `(s, a)` with advantage `A(s, a)` (the learner's GAE) taken by the behaviour
policy `b`, `pi_k(a | s) / b(a | s) * A(s, a)` is an importance-sampled one-step estimate of
`E_{a ~ pi_k}[A(s, a)]`, the gain of acting as option `k` once and then as the learner. Samples
are averaged per abstract state and option in each update and folded into `Q` with a rate
(`accumulate`); options that do not apply in a state get no samples there. Everything is a pure
jittable function of arrays, so it lives inside the jitted update, per seed.

With `tau -> infinity` the posterior is the prior; with `tau -> 0` it is the argmax of `Q` over
the prior's support. A zero in the prior stays zero, so guided PPO floors the prior first
(`floored`, `posterior_floor`): a one-hot wrong row (an oracle's rows shuffled between states)
must be able to lose. An all-zero row stays all-zero ("no skill applies").

Guided PPO uses them with `posterior: true` (`posterior_targets`: a per-seed
`OptionValues` in the training state; each update, the teacher's table is replaced by
`posterior_table` and the estimates take in the teacher environments' transitions; the options'
action distributions are computed once for both). Measured in README "The posterior teacher".
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ..core.parallel import any_seed


class OptionValues(struct.PyTreeNode):
    """Per abstract state and option: `q` the running advantage estimate. (Sample counts were
    kept until 2026-12-05 but never used: the estimate's confidence enters through `rate`, the
    prior's through `tau`; they are gone.)"""

    q: jax.Array  # f32[S, K]

    @classmethod
    def zeros(cls, num_states: int, num_options: int) -> "OptionValues":
        return cls(q=jnp.zeros((num_states, num_options), jnp.float32))


def floored(prior: jax.Array, floor: float | jax.Array) -> jax.Array:
    """`(1 - floor) * prior + floor / K` in rows with prior mass (rows without stay zero): a prior
    that rules an option out exactly can never be talked out of it, so the posterior teacher
    starts from a floored one (a one-hot wrong row keeps `floor / K` on the right option)."""
    mass = prior.sum(-1, keepdims=True) > 0
    return jnp.where(mass, (1.0 - floor) * prior + floor / prior.shape[-1], 0.0)


def posterior_table(prior: jax.Array, q: jax.Array, tau: float | jax.Array,
                    floor: float | jax.Array = 0.0) -> jax.Array:
    """`f32[S, K]`: rows `floored(prior, floor) * exp(q / tau)`, renormalised (computed in log
    space). Entries with zero (floored) prior stay zero; rows without prior mass stay zero.
    `tau > 0` (checked by the caller's config)."""
    prior = floored(prior, floor)
    support = prior > 0
    logits = jnp.where(support, jnp.log(jnp.where(support, prior, 1.0)) + q / tau, -jnp.inf)
    top = jnp.max(jnp.where(support, logits, -jnp.inf), axis=-1, keepdims=True)
    w = jnp.where(support, jnp.exp(logits - jnp.where(jnp.isfinite(top), top, 0.0)), 0.0)
    total = w.sum(-1, keepdims=True)
    return jnp.where(total > 0, w / jnp.where(total > 0, total, 1.0), 0.0)


def option_advantage_samples(option_probs: jax.Array, applicable: jax.Array, action: jax.Array,
                             behaviour_logp: jax.Array, advantage: jax.Array,
                             max_ratio: float = 10.0) -> tuple[jax.Array, jax.Array]:
    """Per transition and option, `min(pi_k(a|s) / b(a|s), max_ratio) * A(s, a)` and whether
    option `k` applies there.

    Args:
      option_probs: `f32[M, K, A]` each option's action distribution in the transition's state.
      applicable: `bool[M, K]`.
      action: `i32[M]` the action taken; behaviour_logp: `f32[M]` its log-probability under the
        behaviour policy; advantage: `f32[M]`.
    Returns `(f32[M, K], bool[M, K])`."""
    pk = jnp.take_along_axis(option_probs, action[:, None, None], axis=-1)[..., 0]  # (M, K)
    ratio = jnp.minimum(pk * jnp.exp(-behaviour_logp)[:, None], max_ratio)
    return jnp.where(applicable, ratio * advantage[:, None], 0.0), applicable


def accumulate(values: OptionValues, states: jax.Array, samples: jax.Array, valid: jax.Array,
               rate: float | jax.Array) -> OptionValues:
    """Folds one update's samples into the running estimates: per (state, option) with at least
    one sample, `q <- (1 - rate) q + rate * mean(samples)`.

    Args: states `i32[M]` abstract states, samples/valid `[M, K]` from
    `option_advantage_samples`."""
    num_states = values.q.shape[0]
    valid_f = valid.astype(jnp.float32)
    sums = jax.ops.segment_sum(samples * valid_f, states, num_states)
    counts = jax.ops.segment_sum(valid_f, states, num_states)
    mean = sums / jnp.maximum(counts, 1.0)
    seen = counts > 0
    return OptionValues(q=jnp.where(seen, (1.0 - rate) * values.q + rate * mean, values.q))


def posterior_targets(teacher: Any, values: OptionValues, obs: Any, action: jax.Array,
                      logp: jax.Array, adv: jax.Array, lam: jax.Array, num_actions: int,
                      tau: float | jax.Array, floor: float | jax.Array, rate: float | jax.Array
                      ) -> tuple[jax.Array, OptionValues]:
    """The posterior teacher (a `Teacher`) on transitions `[T, n]` (the teacher environments'
    observations, actions, the behaviour policy's log-probabilities `logp` and GAE advantages
    `adv`): `pi_L` (`f32[T, n, A]`) from the table re-weighted by the options' advantage
    estimates so far (`posterior_table` with `tau`, `floor`), and those estimates updated with
    these transitions (`accumulate` at `rate`). The options' action distributions are computed
    once for both. Skipped (zeros, estimates unchanged) while `lambda_t = 0` for every seed."""
    t, n = action.shape
    flat = lambda x: x.reshape(t * n, *x.shape[2:])  # noqa: E731
    obs = jax.tree.map(flat, obs)
    k = teacher.table.shape[1]

    def compute():
        option_probs, applicable = teacher.option_probs(obs)
        table = posterior_table(teacher.table, values.q, tau, floor)
        probs = teacher.replace(table=table).mixture(obs, option_probs, applicable)
        samples, valid = option_advantage_samples(option_probs, applicable, flat(action),
                                                  flat(logp), flat(adv))
        return probs, samples, valid

    def skip():
        return (jnp.zeros((t * n, num_actions)), jnp.zeros((t * n, k)),
                jnp.zeros((t * n, k), bool))

    probs, samples, valid = jax.lax.cond(any_seed(lam > 0), compute, skip)
    states = teacher.abstract_states(obs)
    values = accumulate(values, states, samples, valid, rate)
    return probs.reshape(t, n, num_actions), values
