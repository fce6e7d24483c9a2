"""DQN-Prior `inference: exact` is KL-regularised soft Q-learning: its Q(lambda) targets have the
soft Q-function as their fixed point. Checked on Frozen Lake (4x4, slippery) against soft value
iteration: sampled along the soft-optimal policy, the KL-corrected lambda-returns average to the
soft Q of every state and action; without the correction they do not (issue 27)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl3m.algos import losses

LAKE = ("SFFF", "FHFH", "FFFH", "HFFG")
GAMMA, TAU, LAM = 0.9, 0.1, 0.65
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (row, col): left, down, right, up (gymnasium's)


def frozen_lake():
    """`(P f[S, A, S], R f[S, A, S], terminal bool[S])` of slippery Frozen Lake 4x4: the
    intended move or either perpendicular one, 1/3 each; reward 1 on reaching the goal; holes
    and the goal end the episode."""
    cells = "".join(LAKE)
    n, s_count = 4, 16
    p = np.zeros((s_count, 4, s_count))
    for s in range(s_count):
        row, col = divmod(s, n)
        for a in range(4):
            for b in ((a - 1) % 4, a, (a + 1) % 4):
                dr, dc = MOVES[b]
                r2, c2 = min(max(row + dr, 0), n - 1), min(max(col + dc, 0), n - 1)
                p[s, a, r2 * n + c2] += 1 / 3
    terminal = np.array([c in "HG" for c in cells])
    reward = np.zeros_like(p)
    reward[:, :, cells.index("G")] = 1.0
    return p, reward, terminal


def soft_q(p, reward, terminal, log_prior, iters=2000):
    """Soft value iteration: `Q = E[r + gamma (1 - terminal') V(s')]`,
    `V = tau logsumexp(log p + Q / tau)`."""
    q = np.zeros(p.shape[:2])
    for _ in range(iters):
        z = log_prior + q / TAU
        v = TAU * (z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)))
        q = np.einsum("sat,sat->sa", p, reward + GAMMA * (1 - terminal)[None, None] * v[None, None])
    return q, v


def rollout_targets(q, v, log_prior, p, reward, terminal, corrected, n=8192, t=12, seed=0):
    """Q(lambda) targets of `n` rollouts of `t` steps acting with the soft-optimal policy
    `softmax(log p + Q / tau)`, bootstrapped from the soft value; returns per-step states,
    actions and targets, flattened."""
    q, v, log_prior = jnp.asarray(q), jnp.asarray(v), jnp.asarray(log_prior)
    p, reward, terminal = jnp.asarray(p), jnp.asarray(reward), jnp.asarray(terminal)
    starts = jnp.flatnonzero(~terminal, size=int((~terminal).sum()))

    def step(s, key):
        k_a, k_s, k_r = jax.random.split(key, 3)
        a = jax.random.categorical(k_a, log_prior[s] + q[s] / TAU)
        s2 = jax.random.categorical(k_s, jnp.log(p[s, a] + 1e-30))
        term = terminal[s2]
        fresh = starts[jax.random.randint(k_r, (), 0, starts.shape[0])]
        return jnp.where(term, fresh, s2), (s, a, reward[s, a, s2], term, s2)

    def one(key):
        k0, k = jax.random.split(key)
        s0 = starts[jax.random.randint(k0, (), 0, starts.shape[0])]
        _, (s, a, r, term, s2) = jax.lax.scan(step, s0, jax.random.split(k, t))
        boot = v[s2]
        correction = None
        if corrected:  # Q(s', a') - V(s') of the next step's action: tau log(pi / p)
            nxt = q[s[1:], a[1:]] - v[s[1:]]
            correction = jnp.concatenate([nxt, jnp.zeros(1)])
        g = losses.q_lambda_targets(r, boot, term, term, GAMMA, LAM, correction)
        return s, a, g

    s, a, g = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(seed), n))
    return np.asarray(s).ravel(), np.asarray(a).ravel(), np.asarray(g).ravel()


def mean_by_state_action(s, a, g, shape):
    total, count = np.zeros(shape), np.zeros(shape)
    np.add.at(total, (s, a), g)
    np.add.at(count, (s, a), 1)
    return total / np.maximum(count, 1), count


def test_kl_corrected_lambda_returns_average_to_the_soft_q_function():
    p, reward, terminal = frozen_lake()
    rng = np.random.default_rng(0)
    prior = 0.9 * rng.dirichlet(np.ones(4) * 0.5, size=16) + 0.1 / 4
    log_prior = np.log(prior)
    q, v = soft_q(p, reward, terminal, log_prior)
    assert q.max() > 0.05  # the goal is reachable: the check is not about zeros
    for corrected in (True, False):
        s, a, g = rollout_targets(q, v, log_prior, p, reward, terminal, corrected, n=32768)
        mean, count = mean_by_state_action(s, a, g, q.shape)
        second, _ = mean_by_state_action(s, a, g ** 2, q.shape)
        stderr = np.sqrt(np.maximum(second - mean ** 2, 1e-12) / np.maximum(count, 1))
        seen = count >= 400
        assert seen.sum() >= 30
        z = ((mean - q) / stderr)[seen]  # (samples of one rollout are correlated: a margin)
        if corrected:
            assert np.abs(z).max() < 4.5, np.abs(z).max()
        else:  # G_{t+1} carries tau KL(pi || p) on top of V: biased upwards
            assert z.max() > 8 and z.mean() > 1, (z.max(), z.mean())


def test_without_correction_the_targets_are_unchanged():
    """`correction=None` (and zeros) is the plain Q(lambda) recursion."""
    r = jnp.array([0.0, 1.0, 0.0, 0.5])
    boot = jnp.array([0.2, 0.3, 0.4, 0.5])
    term = jnp.array([False, False, False, False])
    done = jnp.array([False, True, False, False])
    plain = losses.q_lambda_targets(r, boot, term, done, 0.9, 0.5)
    zero = losses.q_lambda_targets(r, boot, term, done, 0.9, 0.5, jnp.zeros(4))
    np.testing.assert_allclose(plain, zero)
    corr = jnp.array([0.1, 0.2, 0.3, 0.0])
    got = losses.q_lambda_targets(r, boot, term, done, 0.9, 0.5, corr)
    # by hand, backwards: G3 = 0.5 + 0.9 * (0.5 * 0.5 + 0.5 * (0.5 - 0)) = 0.95
    g3 = 0.5 + 0.9 * 0.5
    g2 = 0.0 + 0.9 * (0.5 * 0.4 + 0.5 * (g3 - 0.3))
    g1 = 1.0 + 0.9 * 0.3  # done: the bootstrap alone
    g0 = 0.0 + 0.9 * (0.5 * 0.2 + 0.5 * (g1 - 0.1))
    np.testing.assert_allclose(got, [g0, g1, g2, g3], rtol=1e-6)
