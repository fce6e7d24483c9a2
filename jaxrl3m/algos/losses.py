"""Pure PPO loss pieces, the teacher KL term and the guidance-weight schedules.

Every function is pure and jittable; shapes are written on the arguments (`T` rollout steps,
`N` environments, `A` actions). Time-indexed names follow rlax: `r_t` is the reward of the
transition from step `t`, `v_t` the value of the observation at step `t`, `v_tp1` the value of
the observation it led to.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def gae(r_t: jax.Array, v_t: jax.Array, v_tp1: jax.Array, terminated_t: jax.Array,
        done_t: jax.Array, gamma: float | jax.Array, lam: float | jax.Array
        ) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al., 2016) with truncation handled.

        delta_t = r_t + gamma * (1 - terminated_t) * v_tp1 - v_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    `v_tp1` is the value of the observation the transition from `t` ended in: at a truncation
    (`done_t` and not `terminated_t`) that is the final observation of the cut episode, which is
    bootstrapped, not the first observation of the next one. A termination bootstraps nothing,
    and no advantage flows back across any episode boundary.

    Args:
      r_t, v_t, v_tp1: `f32[T, ...]`.
      terminated_t, done_t: `bool[T, ...]` (`done = terminated | truncated`).

    Returns:
      `(advantages, returns)`, both `f32[T, ...]`, with `returns = advantages + v_t`.
    """
    chex.assert_equal_shape([r_t, v_t, v_tp1, terminated_t, done_t])
    chex.assert_rank(r_t, {1, 2})
    not_term = 1.0 - terminated_t.astype(r_t.dtype)
    not_done = 1.0 - done_t.astype(r_t.dtype)
    delta = r_t + gamma * not_term * v_tp1 - v_t

    def backward(a_tp1, xs):
        delta_t, not_done_t = xs
        a_t = delta_t + gamma * lam * not_done_t * a_tp1
        return a_t, a_t

    _, adv = jax.lax.scan(backward, jnp.zeros_like(delta[0]), (delta, not_done), reverse=True)
    return adv, adv + v_t


def clipped_policy_loss(logp: jax.Array, old_logp: jax.Array, adv: jax.Array,
                        clip_eps: float | jax.Array) -> jax.Array:
    """PPO's clipped surrogate (Schulman et al., 2017), to be minimised:

        L = -mean( min(rho * A, clip(rho, 1 - eps, 1 + eps) * A) ),  rho = exp(logp - old_logp)
    """
    chex.assert_equal_shape([logp, old_logp, adv])
    ratio = jnp.exp(logp - old_logp)
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
    return -jnp.mean(jnp.minimum(ratio * adv, clipped * adv))


def clipped_value_loss(v: jax.Array, old_v: jax.Array, returns: jax.Array,
                       clip_eps: float | jax.Array) -> jax.Array:
    """The clipped value loss of OpenAI baselines' PPO2:

        L = 0.5 * mean( max((v - R)^2, (old_v + clip(v - old_v, -eps, eps) - R)^2) )
    """
    chex.assert_equal_shape([v, old_v, returns])
    v_clipped = old_v + jnp.clip(v - old_v, -clip_eps, clip_eps)
    return 0.5 * jnp.mean(jnp.maximum(jnp.square(v - returns), jnp.square(v_clipped - returns)))


def entropy(logits: jax.Array) -> jax.Array:
    """`f32[...]`: entropy of the categorical distribution with these logits (`f32[..., A]`)."""
    logp = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def teacher_kl(teacher_probs: jax.Array, logits: jax.Array) -> jax.Array:
    """`f32[...]`: `KL(pi_L || pi_theta) = sum_a pi_L(a) (log pi_L(a) - log pi_theta(a))`.

    The forward KL from the teacher: the student is pushed to cover every action the teacher
    gives mass to. Terms with `pi_L(a) = 0` contribute 0 (and no NaN gradient).

    Args:
      teacher_probs: `f32[..., A]`, rows sum to 1.
      logits: `f32[..., A]`, the student's logits.
    """
    chex.assert_equal_shape([teacher_probs, logits])
    logp = jax.nn.log_softmax(logits)
    positive = teacher_probs > 0
    log_teacher = jnp.log(jnp.where(positive, teacher_probs, 1.0))
    return jnp.sum(jnp.where(positive, teacher_probs * (log_teacher - logp), 0.0), axis=-1)


def prior_kl(logits: jax.Array, log_prior: jax.Array) -> jax.Array:
    """`f32[...]`: `KL(pi_theta || p) = sum_a pi_theta(a) (log pi_theta(a) - log p(a))`.

    The reverse KL to a prior (GFlan-Prior's variational objective): the student is pushed to
    put no mass where the prior has little, and may concentrate on one of the prior's actions.
    `log_prior` must be finite (floor the prior: `jaxrl3m.teacher.teacher.floored_log`).
    """
    chex.assert_equal_shape([logits, log_prior])
    logp = jax.nn.log_softmax(logits)
    return jnp.sum(jnp.exp(logp) * (logp - log_prior), axis=-1)


def q_lambda_targets(r_t: jax.Array, boot_tp1: jax.Array, terminated_t: jax.Array,
                     done_t: jax.Array, gamma: float | jax.Array, lam: float | jax.Array,
                     correction_tp1: jax.Array | None = None) -> jax.Array:
    """Q(lambda) targets of a rollout (Peng's, as PQN computes them), truncation handled:

        G_t = r_t + gamma (1 - terminated_t) [ (1 - lam) B_{t+1} + lam G_{t+1} ]

    where `B_{t+1} = boot_tp1[t]` is the bootstrap value of the observation the transition from
    `t` ended in (`max_a Q_target(s', a)`, its max over k prior proposals, or the soft value), and
    `G_{t+1}` is replaced by `B_{t+1}` at the rollout's end and where an episode ended (`done_t`:
    nothing of the next episode flows back; a truncated episode bootstraps from its final
    observation). `lam = 0` is the one-step target `r_t + gamma (1 - terminated_t) B_{t+1}`.

    `correction_tp1[t]`, where given, is subtracted from `G_{t+1}`: for soft Q-learning with a
    KL penalty to a prior `p` (DQN-Prior `inference: exact`, `B` the soft value
    `tau logsumexp(log p + Q / tau)`) it is `tau log(pi(a_{t+1}|s_{t+1}) / p(a_{t+1}|s_{t+1}))
    = Q(s_{t+1}, a_{t+1}) - B_{t+1}`, the KL term the sampled next action carries, without
    which the returns overshoot the soft Q-function by `tau KL(pi || p)` per step
    (tests/test_soft_targets.py checks the fixed point on Frozen Lake). Its last row is unused
    by the continuation only where an episode ended; give 0 there and at the rollout's end.

    Args:
      r_t, boot_tp1: `f32[T, ...]`.
      terminated_t, done_t: `bool[T, ...]`.
      correction_tp1: `f32[T, ...]` or None (no correction).

    Returns:
      `f32[T, ...]`.
    """
    chex.assert_equal_shape([r_t, boot_tp1, terminated_t, done_t])
    not_term = 1.0 - terminated_t.astype(r_t.dtype)
    if correction_tp1 is None:
        correction_tp1 = jnp.zeros_like(r_t)
    chex.assert_equal_shape([r_t, correction_tp1])

    def backward(g_tp1, xs):
        r, boot, not_term_t, done, corr = xs
        ahead = jnp.where(done, boot, (1.0 - lam) * boot + lam * (g_tp1 - corr))
        g = r + gamma * not_term_t * ahead
        return g, g

    _, g = jax.lax.scan(backward, boot_tp1[-1],
                        (r_t, boot_tp1, not_term, done_t, correction_tp1), reverse=True)
    return g


def soft_value(q: jax.Array, logp: jax.Array, tau: float | jax.Array) -> jax.Array:
    """`f32[...]`: `tau * logsumexp_a(log p(a) + Q(a) / tau)`, the value of KL-regularised
    soft Q-learning with prior `p` at temperature `tau` (its policy `softmax(log p + Q / tau)`);
    the one temperature of DQN-Prior's and CQL-Prior's `inference: exact` (acting, target and
    CQL's penalty)."""
    return tau * jax.nn.logsumexp(logp + q / tau, axis=-1)


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean of `x` over the entries where `mask` is set (0 when none is)."""
    chex.assert_equal_shape([x, mask])
    m = mask.astype(x.dtype)
    return jnp.sum(x * m) / jnp.maximum(jnp.sum(m), 1.0)


# ---------------------------------------------------------------------------------------------
# Guidance-weight schedules lambda_t (t counts updates from 0)
# ---------------------------------------------------------------------------------------------
KL_SCHEDULES = ("constant", "linear", "exponential")


def kl_weight(schedule: str, update: jax.Array, start: float | jax.Array,
              decay: float | jax.Array, floor: float | jax.Array,
              cutoff: int | jax.Array) -> jax.Array:
    """`lambda_t` for update `t`:

    - `constant`:    `lambda_t = start`
    - `linear`:      `lambda_t = max(start - decay * t, floor)`
    - `exponential`: `lambda_t = max(start * decay ** t, floor)`  (`decay` in (0, 1])

    never above `start` (so `start = 0` is exactly no guidance), and, whatever the schedule,
    `lambda_t = 0` from update `cutoff` on when `cutoff >= 0`.
    LLM4Teach's setting (Zhou et al., 2024) is `linear` with `start=10, decay=0.005, floor=0.1,
    cutoff=3000`.
    """
    t = jnp.asarray(update, jnp.float32)
    if schedule == "constant":
        lam = jnp.asarray(start, jnp.float32)
    elif schedule == "linear":
        lam = jnp.maximum(start - decay * t, floor)
    elif schedule == "exponential":
        lam = jnp.maximum(start * jnp.power(decay, t), floor)
    else:
        raise ValueError(f"unknown kl_schedule {schedule!r}; valid: {', '.join(KL_SCHEDULES)}")
    lam = jnp.minimum(lam, start)
    off = (jnp.asarray(cutoff) >= 0) & (t >= cutoff)
    return jnp.where(off, 0.0, lam).astype(jnp.float32)


def cql_logsumexp(key: jax.Array, q: jax.Array, logp: jax.Array | None, k: int,
                  inference: str = "sampled", tau: float | jax.Array = 1.0) -> jax.Array:
    """`f32[...]`: the first term of CQL's conservative penalty `logsumexp(Q(s, .)) - Q(s, a)`,
    over the actions a prior allows. `q` is `f32[..., A]`; `logp` the prior's log-probabilities
    at `s` (`None`: plain CQL, all actions). CQL-Prior (`sampled`, the paper's code):
    `logsumexp_i Q(s, a_i)` over `k` proposals `a_i ~ p(.|s)` (duplicates kept); `exact`:
    the soft value `tau logsumexp_a(log p(a|s) + Q(s, a) / tau)` (`soft_value`), at the
    temperature of the exact target and policy."""
    if logp is None:
        return jax.nn.logsumexp(q, axis=-1)
    if inference == "exact":
        return soft_value(q, logp, tau)
    from ..teacher.teacher import propose
    props = propose(key, logp, k)
    return jax.nn.logsumexp(jnp.take_along_axis(q, props, axis=-1), axis=-1)
