"""make(): names, options and errors; shapes, dtypes, autoreset convention, no retracing."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import envs
from jaxrl3m.envs.types import NUM_ACTIONS


def test_unknown_task_lists_valid_names():
    with pytest.raises(ValueError) as e:
        envs.make("DorKey")
    msg = str(e.value)
    assert "unknown task 'DorKey'" in msg and "Did you mean 'DoorKey'" in msg
    for name in ("DoorKey", "LavaDoorKey", "ColoredDoorKey", "DoorKey-8x8"):
        assert name in msg


def test_unknown_keyword_lists_valid_keywords():
    with pytest.raises(ValueError) as e:
        envs.make("LavaDoorKey", veiw_size=7)
    msg = str(e.value)
    assert "unknown keyword 'veiw_size'" in msg and "Did you mean 'view_size'" in msg
    assert "max_steps" in msg and "fully_observed" in msg
    # Fixed fields of a task are not keywords.
    with pytest.raises(ValueError, match="unknown keyword 'n_lava'"):
        envs.make("LavaDoorKey", n_lava=3)


@pytest.mark.parametrize("opts, match", [
    (dict(view_size=4), "view_size=4 must be odd"),
    (dict(view_size="7"), "must be an integer"),
    (dict(fully_observed=1), "must be True or False"),
    (dict(max_steps=0), "max_steps=0"),
    (dict(min_room=11), "min_room=11"),
    (dict(size=4), "size=4 is too small"),
])
def test_bad_keyword_values(opts, match):
    with pytest.raises(ValueError, match=match):
        envs.make("DoorKey", **opts)


@pytest.mark.parametrize("task", ["DoorKey", "LavaDoorKey", "ColoredDoorKey"])
def test_shapes_dtypes_and_finite_in_batches(task):
    env = envs.make(task)
    n = 32
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), n))
    chex.clear_trace_counter()  # the footprint is shared by the parametrized cases

    def batched_step(state, action):
        return jax.vmap(env.step)(state, action)

    step = jax.jit(chex.assert_max_traces(batched_step, n=1))
    actions = jax.random.randint(jax.random.key(1), (20, n), 0, NUM_ACTIONS)
    for a in actions:
        ts = step(ts.state, a)
    chex.assert_shape(ts.obs.grid, (n, 10, 10, 3))
    chex.assert_type(ts.obs.grid, jnp.uint8)
    chex.assert_shape([ts.obs.agent_pos], [(n, 2)])
    chex.assert_shape([ts.obs.agent_dir, ts.reward, ts.terminated, ts.truncated], [(n,)] * 4)
    chex.assert_type([ts.reward, ts.terminated, ts.truncated, ts.obs.agent_pos],
                     [jnp.float32, bool, bool, jnp.int32])
    chex.assert_shape(ts.obs.carrying, (n, 3))
    chex.assert_tree_all_finite(ts.reward)
    chex.assert_trees_all_equal_shapes(ts.obs, ts.final_obs)


def test_autoreset_convention():
    """A done step returns the new episode's state/obs and the old episode's final_obs."""
    env = envs.make("LavaDoorKey", max_steps=8)
    n = 64
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), n))
    step = jax.jit(jax.vmap(env.step))
    saw_done = saw_continue = False
    for t in range(12):
        prev_t = ts.state.t
        ts = step(ts.state, jnp.full((n,), 2))
        done = np.asarray(ts.done)
        st = np.asarray(ts.state.t)
        np.testing.assert_array_equal(st[done], 0)
        np.testing.assert_array_equal(st[~done], np.asarray(prev_t)[~done] + 1)
        same = jax.vmap(lambda a, b: jnp.array_equal(a.grid, b.grid))(ts.obs, ts.final_obs)
        assert np.asarray(same)[~done].all()
        saw_done |= done.any()
        saw_continue |= (~done).any()
        # Truncation only at max_steps; terminated and truncated never both.
        assert not (np.asarray(ts.terminated) & np.asarray(ts.truncated)).any()
    assert saw_done and saw_continue


def test_fully_observed_option():
    env = envs.make("ColoredDoorKey", fully_observed=True)
    ts = env.reset(jax.random.key(0))
    np.testing.assert_array_equal(ts.obs.grid, ts.state.grid)
    partial = envs.make("ColoredDoorKey").reset(jax.random.key(0))
    assert (np.asarray(partial.obs.grid[..., 0]) == 0).any()


def test_view_size_seven_sees_more():
    small = envs.make("DoorKey").reset(jax.random.key(3))
    large = envs.make("DoorKey", view_size=7).reset(jax.random.key(3))
    seen_small = (np.asarray(small.obs.grid[..., 0]) != 0).sum()
    seen_large = (np.asarray(large.obs.grid[..., 0]) != 0).sum()
    assert seen_large > seen_small


@pytest.mark.parametrize("size", [5, 8])
def test_navix_doorkey_through_make(size):
    env = envs.make(f"DoorKey-{size}x{size}", max_steps=20)
    assert env.horizon == 20 and envs.make(f"DoorKey-{size}x{size}").horizon == 10 * size * size
    n = 8
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), n))
    step = jax.jit(jax.vmap(env.step))
    truncated_at = []
    for t in range(25):
        ts = step(ts.state, jnp.zeros((n,), jnp.int32))  # only turning: never reaches the goal
        if np.asarray(ts.truncated).all():
            truncated_at.append(t + 1)
        assert not np.asarray(ts.terminated).any()
    assert truncated_at == [20]
    assert ts.obs.grid.shape == (n, size, size, 3)  # jaxrl3m's Observation of NAVIX's state


def test_navix_doorkey_reward_is_minigrids():
    """Scripted solution of NAVIX's DoorKey-5x5 (fixed start): reward 1 - 0.9 t / max_steps."""
    env = envs.make("DoorKey-5x5", max_steps=100)
    step = jax.jit(env.step)
    # Try every short action sequence from a breadth of random ones until one reaches the goal.
    rng = np.random.default_rng(0)
    key = jax.random.key(0)
    found = None
    for _ in range(200):
        ts = env.reset(key)
        for t in range(60):
            ts = step(ts.state, int(rng.choice([0, 1, 2, 2, 2, 3, 5])))
            if bool(ts.terminated):
                found = (t + 1, float(ts.reward))
                break
        if found:
            break
    assert found is not None
    t, r = found
    assert r == pytest.approx(1 - 0.9 * t / 100, abs=1e-5)


@pytest.mark.parametrize("task,per_pass", [("LavaDoorKey", 1), ("DoorKey-8x8", 2)])
def test_batch_step_resets_only_ended_episodes_with_the_same_values(task, per_pass):
    """`autoreset.batch_step` (resets gathered for the ended episodes only, `per_pass` at a
    time, so a step where more end needs several passes) equals `vmap(env.step)` bit for bit,
    over enough steps that many episodes end on the same step."""
    from jaxrl3m.envs import autoreset
    env = envs.make(task, max_steps=7)
    n = 16
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(3), n)).state

    def run(stepper):
        def body(s, k):
            ts = stepper(s, jax.random.randint(k, (n,), 0, env.num_actions))
            return ts.state, ts
        return jax.lax.scan(body, state, jax.random.split(jax.random.key(4), 30))[1]

    want = jax.jit(lambda: run(jax.vmap(env.step)))()
    got = jax.jit(lambda: run(lambda s, a: autoreset.batch_step(env, s, a, per_pass)))()
    assert int(want.done.sum(axis=1).max()) > 2  # several episodes end on one step
    data = lambda t: jax.tree.leaves(jax.tree.map(  # keys compared by their bits
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x, t))
    for a, b in zip(data(want), data(got), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
