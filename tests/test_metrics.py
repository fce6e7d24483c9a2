"""Learning curves that are not biased: episodes counted by the update they started in, the
periodic held-out evaluation inside the training program, and steps to 0.9 read from it."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m.algos.ppo import PPOConfig, make_ppo
from jaxrl3m.core import collector, metrics
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.envs.types import Observation, TimeStep


@dataclasses.dataclass(frozen=True)
class Coin:
    """A frozen policy's episodes with a known success rate `p`: a success ends after `quick`
    steps (reward 1), a failure runs into the time limit `horizon`, whatever the actions."""

    p: float = 0.7
    quick: int = 5
    horizon: int = 150
    num_actions: int = 3

    def _obs(self):
        return Observation(grid=jnp.zeros((1, 1, 3), jnp.uint8), agent_pos=jnp.zeros(2, jnp.int32),
                           agent_dir=jnp.zeros((), jnp.int32), carrying=jnp.zeros(3, jnp.uint8))

    def _start(self, key):
        return {"key": key, "t": jnp.zeros((), jnp.int32),
                "win": jax.random.bernoulli(key, self.p)}

    def reset(self, key):
        z = jnp.zeros(())
        return TimeStep(state=self._start(key), obs=self._obs(), reward=z,
                        terminated=z > 0, truncated=z > 0, final_obs=self._obs())

    def step(self, state, action):
        t = state["t"] + 1
        terminated = state["win"] & (t >= self.quick)
        truncated = ~terminated & (t >= self.horizon)
        fresh = self._start(jax.random.fold_in(state["key"], 1))
        nxt = jax.tree.map(lambda a, b: jnp.where(terminated | truncated, a, b), fresh,
                           {**state, "t": t})
        return TimeStep(state=nxt, obs=self._obs(), reward=terminated.astype(jnp.float32),
                        terminated=terminated, truncated=truncated, final_obs=self._obs())


def _training_rows(env, updates=30, num_envs=64, num_steps=32, seed=0):
    """Metrics rows of `updates` rollouts of a frozen (random) policy, as training logs them."""
    policy = collector.Random(env.num_actions)

    @jax.jit
    def run(key):
        carry = collector.reset(env, key, num_envs, num_steps=num_steps)

        def one(carry, k):
            carry, tr = collector.rollout(env, policy, None, carry, k, num_steps)
            return carry, collector.episode_metrics(tr, carry)

        return jax.lax.scan(one, carry, jax.random.split(key, updates))[1]

    m = jax.device_get(run(jax.random.key(seed)))
    return [{"seed": 0, "update": u + 1, "env_steps": (u + 1) * num_envs * num_steps,
             **{k: float(v[u]) for k, v in m.items()}} for u in range(updates)]


def test_a_frozen_policy_never_reads_above_its_success_rate():
    """The curve of the training episodes counted by start stays within noise of the true
    rate at every update; the old rule (episodes that *ended* in the window) reads far above
    it early in the run, where time-limit failures have not ended yet (issue 27)."""
    env = Coin(p=0.7)
    rows = _training_rows(env)
    _, curve, _ = metrics.training_curves(rows)
    by_start = {int(r["started_update"]): r["started_episodes"] for r in rows}
    pooled = np.array([sum(by_start.get(v, 0) for v in range(u - 4, u + 1))
                       for u in range(1, len(rows) + 1)])  # episodes behind each point
    known = np.isfinite(curve[0])
    assert known.sum() >= 20  # all but the last K updates
    noise = 4 * np.sqrt(0.7 * 0.3 / np.maximum(pooled, 1))
    assert np.all(np.abs(curve[0] - 0.7)[known] < noise[known]), curve[0, known]
    noise = noise[known].max()
    ended = metrics.windowed_success(np.array([[r["success"] for r in rows]]),
                                     np.array([[r["episodes"] for r in rows]]))
    assert np.nanmax(ended[0, :8]) > 0.7 + noise  # what the bias looked like


def test_episodes_are_counted_in_the_rollout_they_started_in():
    """Hand-made rollout: lengths and end steps put each ended episode in its start slot."""
    t, n, slots = 4, 2, 3
    done = np.zeros((t, n), bool)
    length = np.zeros((t, n), np.int32)
    reward = np.zeros((t, n), np.float32)
    done[1, 0], length[1, 0], reward[1, 0] = True, 2, 1.0   # started in this rollout
    done[0, 1], length[0, 1] = True, 6                      # started 2 rollouts back (t=-5)
    done[3, 1], length[3, 1], reward[3, 1] = True, 3, 1.0   # started in this rollout, at t=1
    tr = collector.Transition(
        obs=None, action=None, reward=jnp.asarray(reward), terminated=jnp.asarray(done),
        truncated=jnp.zeros((t, n), bool), final_obs=None, episode_return=jnp.asarray(reward),
        episode_length=jnp.asarray(length), extras=None)
    by_start = jnp.ones((n, slots, 2))  # stale counts: this rollout's slot must be emptied
    out = collector.count_starts(tr, jnp.int32(4), by_start)  # this is rollout 5: slot 2
    got = np.asarray(out["by_start"])
    assert int(out["rollouts"]) == 5
    np.testing.assert_array_equal(got[0, 2], [1, 1])        # emptied, then env 0's success
    np.testing.assert_array_equal(got[1, 2], [1, 1])        # env 1's second episode
    np.testing.assert_array_equal(got[1, 0], [2, 1])        # rollout 3 (slot 0): 1 + a failure
    np.testing.assert_array_equal(got[0, 0], [1, 1])        # untouched
    carry = collector.Carry(state=None, obs=None, ep_return=None, ep_length=None,
                            rollouts=out["rollouts"], by_start=out["by_start"])
    m = collector.episode_metrics(tr, carry)  # reports rollout 5 - 2 = 3, slot 0: 3 ended
    assert float(m["started_update"]) == 3 and float(m["started_episodes"]) == 3
    assert float(m["started_success"]) == pytest.approx(2 / 3)


def test_curves_from_hand_written_rows():
    """An improving policy: steps to 0.9 is read at the first evaluated update at or above
    0.9, the evaluation curve keeps only the evaluated updates, and the training curve is
    placed at the start updates and pooled over them by episode counts."""
    nan = math.nan
    evals = {2: 0.5, 4: 0.85, 6: 0.95, 8: 0.9}
    started = {3: (1, 10, 0.2), 4: (2, 30, 0.6), 5: (3, 10, 1.0)}  # row: (update, n, rate)
    rows = []
    for u in range(1, 9):
        su, n, rate = started.get(u, (0, 0, nan))
        rows.append({"seed": 0, "update": u, "env_steps": 100 * u, "episodes": 0,
                     "success": nan, "return": nan, "eval_success": evals.get(u, nan),
                     "eval_return": nan, "started_update": su, "started_episodes": n,
                     "started_success": rate})
    steps, success, _ = metrics.curves(rows)
    np.testing.assert_array_equal(steps, [200, 400, 600, 800])
    np.testing.assert_array_equal(success[0], [0.5, 0.85, 0.95, 0.9])
    assert metrics.steps_to(steps, success[0]) == 600
    t_steps, t_curve, _ = metrics.training_curves(rows, window=2)
    assert len(t_steps) == 8
    assert math.isnan(t_curve[0, 3])  # start update 4 is not known yet
    # windowed over start updates: update 2 pools 1..2 (10 + 30 episodes), update 3 pools 2..3
    # (30 + 10) but update 1 alone has only 10 (< 50 episodes: NaN)
    t_curve = metrics.training_curves(rows, window=2)[1]
    assert math.isnan(t_curve[0, 0])
    rows_many = [dict(r, started_episodes=10 * r["started_episodes"]) for r in rows]
    t_curve = metrics.training_curves(rows_many, window=2)[1]
    assert t_curve[0, 1] == pytest.approx((100 * 0.2 + 300 * 0.6) / 400)
    assert t_curve[0, 2] == pytest.approx((300 * 0.6 + 100 * 1.0) / 400)
    np.testing.assert_array_equal(metrics.last_finite(t_curve), [t_curve[0, 2]])


def test_the_periodic_evaluation_plays_held_out_layouts_inside_the_chunk():
    """The chunk's evaluation at update 3 equals playing the evaluation policy, with the
    parameters after update 3, on the held-out environment with the key folded with 3; other
    updates read NaN; evaluating leaves training exactly as it was."""
    from jaxrl3m.runner import driver
    algo = make_ppo(PPOConfig(task="DoorKey", num_envs=8, num_steps=8, num_minibatches=2,
                              update_epochs=1, hidden=(16,), window=5, total_steps=640),
                    guided=False)
    state = jax.jit(vmap_seeds(algo.init))(jax.random.split(jax.random.key(0), 2))
    keys = driver.periodic_keys(5, 2)
    plain, m0 = driver.chunk_fn(algo, 3)(state, None, 3, 0, keys)
    new, m = driver.chunk_fn(algo, 3, eval_every=3, eval_episodes=16)(state, None, 3, 0, keys)
    raw = lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(new)):
        np.testing.assert_array_equal(raw(a), raw(b))
    assert np.isnan(np.asarray(m["eval_success"][:, :2])).all()
    assert "eval_success" not in m0
    policy = algo.policy(False)
    play = jax.jit(vmap_seeds(lambda p, k: collector.episodes(
        algo.eval_env, policy, p, jax.random.fold_in(k, 3), 16)))
    stats = play(new.params, keys)
    np.testing.assert_allclose(m["eval_success"][:, 2], stats.success.mean(1), atol=1e-6)
    np.testing.assert_allclose(m["eval_return"][:, 2], stats.ret.mean(1), atol=1e-6)
    # A later chunk counts updates from `first`: update 4..6, evaluated at 6 only.
    _, m2 = driver.chunk_fn(algo, 3, eval_every=3, eval_episodes=16)(new, None, 3, 3, keys)
    assert np.isfinite(np.asarray(m2["eval_success"][:, 2])).all()
    assert np.isnan(np.asarray(m2["eval_success"][:, :2])).all()
