"""jaxrl3m's tasks through gymnax's and Gymnasium's APIs: the same transitions as
`jaxrl3m.envs.make`, driven with the same actions and keys."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import envs
from jaxrl3m.envs.gym_api import GymnaxEnv, flat_observation
from jaxrl3m.envs.types import AGENT

STEPS = 200  # beyond DoorKey's 150-step limit: episodes end (truncation or success) and reset


@pytest.fixture(scope="module")
def reference():
    """DoorKey's own transitions for random actions from key 7: `(actions, per-step arrays)`."""
    env = envs.make("DoorKey")
    actions = jax.random.randint(jax.random.key(1), (STEPS,), 0, env.num_actions)

    def body(state, a):
        ts = env.step(state, a)
        return ts.state, (flat_observation(ts.obs), flat_observation(ts.final_obs), ts.reward,
                          ts.terminated, ts.truncated)

    first = env.reset(jax.random.key(7))
    _, out = jax.jit(lambda s, a: jax.lax.scan(body, s, a))(first.state, actions)
    return np.asarray(actions), flat_observation(first.obs), [np.asarray(x) for x in out]


def test_flat_observation_draws_the_agent_and_appends_the_carried_object():
    ts = jax.jit(envs.make("DoorKey").reset)(jax.random.key(0))
    flat = np.asarray(flat_observation(ts.obs))
    h, w, _ = ts.obs.grid.shape
    assert flat.shape == (h * w * 3 + 3,) and flat.dtype == np.uint8
    r, c = np.asarray(ts.obs.agent_pos)
    assert tuple(flat[: h * w * 3].reshape(h, w, 3)[r, c]) == (AGENT, 0, int(ts.obs.agent_dir))
    np.testing.assert_array_equal(flat[-3:], np.asarray(ts.obs.carrying))


def test_gymnax_env_steps_as_make_does(reference):
    actions, first, (obs, final, reward, term, trunc) = reference
    env = GymnaxEnv("DoorKey")
    o, state = env.reset(jax.random.key(7))
    np.testing.assert_array_equal(np.asarray(o), np.asarray(first, np.float32))

    def body(state, a):
        o, state, r, te, tr, info = env.step(jax.random.key(0), state, a)
        return state, (o, info["final_observation"], r, te, tr, state.time)

    _, (o, f, r, te, tr, t) = jax.lax.scan(body, state, jnp.asarray(actions))
    np.testing.assert_array_equal(np.asarray(o), obs.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(f), final.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(r), reward)
    np.testing.assert_array_equal(np.asarray(te), term)
    np.testing.assert_array_equal(np.asarray(tr), trunc)
    assert (term | trunc).any()  # an episode ended and the counter restarted there
    assert int(np.asarray(t)[np.flatnonzero(term | trunc)[0]]) == 0
    assert env.observation_space(env.default_params).shape == first.shape
    assert env.action_space(env.default_params).n == 7


def test_gymnasium_env_passes_check_env_and_steps_as_make_does(reference):
    gym = pytest.importorskip("gymnasium")
    from gymnasium.utils.env_checker import check_env
    from jaxrl3m.envs.gym_api import GymnasiumEnv
    env = gym.make("jaxrl3m/DoorKey-v0").unwrapped
    assert isinstance(env, GymnasiumEnv)
    check_env(env, skip_render_check=True)
    actions, first, (obs, final, reward, term, trunc) = reference
    o, _ = env.reset(seed=7)
    np.testing.assert_array_equal(o, first)
    for i, a in enumerate(actions):
        o, r, te, tr, _ = env.step(int(a))
        np.testing.assert_array_equal(o, final[i] if te or tr else obs[i])
        assert (r, te, tr) == (pytest.approx(float(reward[i])), bool(term[i]), bool(trunc[i]))
        if te or tr:
            break
    else:
        pytest.fail("no episode ended")
    text_env = gym.make("jaxrl3m/DoorKey-v0", render_mode="ansi").unwrapped
    text_env.reset(seed=0)
    assert text_env.render().count("\n") >= 4


def test_gymnasium_vector_env_is_make_under_vmap():
    gym = pytest.importorskip("gymnasium")
    n = 16
    envs_ = gym.make_vec("jaxrl3m/LavaDoorKey-v0", num_envs=n)
    obs, _ = envs_.reset(seed=3)
    env = envs.make("LavaDoorKey")
    keys = jax.random.split(jax.random.key(3), n)
    ts = jax.jit(jax.vmap(env.reset))(keys)
    np.testing.assert_array_equal(obs, np.asarray(jax.vmap(flat_observation)(ts.obs)))
    step = jax.jit(jax.vmap(env.step))
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(160):
        a = rng.integers(0, 7, n)
        obs, r, te, tr, infos = envs_.step(a)
        ts = step(ts.state, jnp.asarray(a, jnp.int32))
        np.testing.assert_array_equal(obs, np.asarray(jax.vmap(flat_observation)(ts.obs)))
        np.testing.assert_array_equal(r, np.asarray(ts.reward))
        np.testing.assert_array_equal(te, np.asarray(ts.terminated))
        if (te | tr).any():
            ended += int((te | tr).sum())
            np.testing.assert_array_equal(infos["_final_obs"], te | tr)
            np.testing.assert_array_equal(infos["final_obs"],
                                          np.asarray(jax.vmap(flat_observation)(ts.final_obs)))
    assert ended >= n  # every environment's first episode ended by the time limit (150)
