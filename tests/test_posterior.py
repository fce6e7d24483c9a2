"""The posterior teacher's pieces (jaxrl3m.teacher.posterior): the update by hand, and a tabular
probe where the best option per state is known and a wrong prior is overturned."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl3m.teacher.posterior import (OptionValues, accumulate, option_advantage_samples,
                                       posterior_table)


def test_posterior_table_by_hand():
    prior = jnp.array([[0.5, 0.3, 0.2], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    q = jnp.array([[0.0, 1.0, -1.0], [5.0, -3.0, 5.0], [1.0, 2.0, 3.0]])
    post = np.asarray(posterior_table(prior, q, 0.5))
    w = np.array([0.5, 0.3 * np.exp(2.0), 0.2 * np.exp(-2.0)])
    np.testing.assert_allclose(post[0], w / w.sum(), rtol=1e-6)
    np.testing.assert_allclose(post[1], [0.0, 1.0, 0.0])  # zero prior stays zero
    np.testing.assert_allclose(post[2], [0.0, 0.0, 0.0])  # no mass: still none
    # tau large: the prior; tau small: the argmax of q over the prior's support
    np.testing.assert_allclose(posterior_table(prior, q, 1e6)[0], prior[0], rtol=1e-4)
    np.testing.assert_allclose(posterior_table(prior, q, 1e-3)[0], [0.0, 1.0, 0.0], atol=1e-6)
    assert np.isfinite(np.asarray(posterior_table(prior, 1e4 * q, 1e-3))).all()
    # Floored: a one-hot row can lose to an option it ruled out; empty rows stay empty.
    post = np.asarray(posterior_table(prior, q, 0.5, floor=0.3))
    w = np.array([0.1, 0.7 + 0.1, 0.1]) * np.exp(np.array([5.0, -3.0, 5.0]) / 0.5)
    np.testing.assert_allclose(post[1], w / w.sum(), rtol=1e-5)
    assert post[1].argmax() != 1
    np.testing.assert_allclose(post[2], 0.0)


def test_samples_and_accumulate_by_hand():
    # 3 transitions, 2 options over 2 actions
    option_probs = jnp.array([[[1.0, 0.0], [0.5, 0.5]],
                              [[0.2, 0.8], [0.0, 1.0]],
                              [[1.0, 0.0], [0.5, 0.5]]])
    applicable = jnp.array([[True, True], [True, False], [True, True]])
    action = jnp.array([0, 1, 1])
    logp = jnp.log(jnp.array([0.5, 0.25, 0.05]))
    adv = jnp.array([2.0, -1.0, 1.0])
    g, valid = option_advantage_samples(option_probs, applicable, action, logp, adv,
                                        max_ratio=5.0)
    np.testing.assert_allclose(g, [[1.0 / 0.5 * 2, 0.5 / 0.5 * 2],
                                   [0.8 / 0.25 * -1, 0.0],          # option 1 does not apply
                                   [0.0, 5.0 * 1.0]], rtol=1e-6)    # ratio 10 clipped to 5
    v = OptionValues.zeros(4, 2).replace(q=jnp.full((4, 2), 1.0))
    out = accumulate(v, jnp.array([3, 3, 0]), g, valid, rate=0.5)
    # state 3: option 0 mean (4 - 3.2) / 2 = 0.4, option 1 one sample 2.0; state 0: 0 and 5
    np.testing.assert_allclose(out.q[3], [0.5 * 1 + 0.5 * 0.4, 0.5 * 1 + 0.5 * 2.0], rtol=1e-6)
    np.testing.assert_allclose(out.q[0], [0.5 * 1 + 0.5 * 0.0, 0.5 * 1 + 0.5 * 5.0], rtol=1e-6)
    np.testing.assert_allclose(out.q[1:3], 1.0)  # unseen states keep their estimate


BEST = np.array([2, 0, 1])  # the right option (= action) per state


def _probe(prior: np.ndarray, rounds: int = 300, batch: int = 64, tau: float = 0.2):
    """Three states, three deterministic options (option k takes action k); the advantage of
    the right action is +1, of the others -0.5, plus noise. The behaviour policy is half the
    posterior teacher, half uniform. Returns the final posterior table."""
    s_n, k_n = prior.shape
    option_probs = jnp.broadcast_to(jnp.eye(k_n), (batch, k_n, k_n))
    best = jnp.asarray(BEST)

    def round_(values, key):
        post = posterior_table(jnp.asarray(prior), values.q, tau)
        k1, k2, k3 = jax.random.split(key, 3)
        states = jax.random.randint(k1, (batch,), 0, s_n)
        behaviour = 0.5 * post[states] + 0.5 / k_n
        action = jax.random.categorical(k2, jnp.log(behaviour))
        adv = jnp.where(action == best[states], 1.0, -0.5) + 0.3 * jax.random.normal(k3, (batch,))
        logp = jnp.log(jnp.take_along_axis(behaviour, action[:, None], -1)[:, 0])
        g, valid = option_advantage_samples(option_probs, jnp.ones((batch, k_n), bool), action,
                                            logp, adv)
        return accumulate(values, states, g, valid, 0.1), post[jnp.arange(s_n), best]

    values, mass = jax.jit(lambda k: jax.lax.scan(round_, OptionValues.zeros(s_n, k_n),
                                                  jax.random.split(k, rounds)))(
        jax.random.key(0))
    return np.asarray(posterior_table(jnp.asarray(prior), values.q, tau)), np.asarray(mass)


def test_tabular_probe_overturns_a_wrong_prior():
    wrong = np.full((3, 3), 0.1)
    wrong[np.arange(3), (BEST + 1) % 3] = 0.8
    right = np.full((3, 3), 0.1)
    right[np.arange(3), BEST] = 0.8
    for name, prior in {"wrong": wrong, "right": right, "uniform": np.full((3, 3), 1 / 3)}.items():
        post, mass = _probe(prior)
        assert (post.argmax(1) == BEST).all(), name
        assert (post[np.arange(3), BEST] > 0.95).all(), (name, post)
    _, mass = _probe(right)
    assert (mass >= 0.79).all()  # a right prior is never talked out of the right option
    # what the prior forbids stays forbidden: the posterior re-weights the LLM's support
    blocked = right.copy()
    blocked[np.arange(3), BEST] = 0.0
    post, _ = _probe(blocked)
    assert (post[np.arange(3), BEST] == 0).all()


def test_guided_ppo_with_the_posterior_teacher():
    """Wired into guided PPO: the first update's teacher equals the fixed teacher's (the
    estimates start at 0), the estimates then change only where the teacher environments went,
    and the teacher's mixture from precomputed options equals `probs`."""
    import pytest

    from jaxrl3m.algos.ppo import PPOConfig, make_ppo
    from jaxrl3m.core.config import ConfigError
    from jaxrl3m.teacher.options import oracle_table, uniform_table
    base = dict(task="DoorKey", num_envs=16, num_steps=16, total_steps=16 * 16 * 3,
                kl_coef=1.0, hidden=(16,))
    fixed, post = make_ppo(PPOConfig(**base)), make_ppo(PPOConfig(**base, posterior=True))
    teacher = fixed.teacher(uniform_table("DoorKey"))
    _, m_fixed = jax.jit(fixed.train)(jax.random.key(0), teacher)
    state, m_post = jax.jit(post.train)(jax.random.key(0), teacher)
    np.testing.assert_allclose(m_post["kl_teacher"][0], m_fixed["kl_teacher"][0], rtol=1e-5)
    from jaxrl3m.teacher.teacher import reachable_states
    q = np.asarray(state.options.q)
    moved = np.flatnonzero(np.abs(q).sum(1) > 0)
    assert len(moved) >= 2 and np.isfinite(q).all()  # estimates in several abstract states
    assert set(moved) <= set(reachable_states("DoorKey"))  # only where the agent can be
    # an option that does not apply in a state gets no sample there: its estimate stays 0
    applicable = np.asarray(jax.jit(lambda t, o: t.option_probs(o)[1])(
        teacher, jax.tree.map(lambda x: x[None], fixed.env.reset(jax.random.key(1)).obs)))[0]
    start = int(jax.jit(__import__("jaxrl3m.envs.abstraction", fromlist=["x"]).abstract_state)(
        fixed.env.reset(jax.random.key(1)).obs))
    assert (q[start][~applicable] == 0).all()
    assert jax.eval_shape(fixed.init, jax.random.key(0)).options is None  # fixed: no estimates
    # Teacher.mixture over precomputed options = Teacher.probs
    oracle = fixed.teacher(oracle_table("DoorKey"))
    obs = jax.jit(jax.vmap(fixed.env.reset))(jax.random.split(jax.random.key(1), 8)).obs
    mixture = jax.jit(lambda t, obs: t.mixture(obs, *t.option_probs(obs)))
    np.testing.assert_allclose(mixture(oracle, obs), jax.jit(lambda t, o: t.probs(o))(oracle, obs),
                               atol=1e-6)
    for key, value in (("posterior_tau", 0.0), ("posterior_rate", 0.0), ("posterior_floor", 1.0)):
        with pytest.raises(ConfigError, match=key):
            PPOConfig(**base, posterior=True, **{key: value}).check()
