"""abstract_state / describe: a fixed index space, read from the observation only."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import make_layout
from jaxrl3m import envs
from jaxrl3m.envs import abstraction as ab
from jaxrl3m.envs.types import (BLUE, DOOR, DOOR_OPEN, EAST, FORWARD, KEY, LAVA, LEFT, PICKUP,
                                RED, RIGHT, UNSEEN)


def test_index_space_is_a_bijection_with_distinct_texts():
    idx = [int(ab.index_of(jax.tree.map(jnp.asarray, ab.decode(i))))
           for i in range(ab.NUM_ABSTRACT_STATES)]
    assert idx == list(range(ab.NUM_ABSTRACT_STATES))
    texts = ab.describe_all()
    assert len(set(texts)) == ab.NUM_ABSTRACT_STATES
    with pytest.raises(ValueError, match="outside"):
        ab.decode(ab.NUM_ABSTRACT_STATES)


def test_describe_examples():
    f = ab.AbstractState(door=1, lava=0, carrying=0, floor_keys=2, matching_on_floor=1,
                         other_on_floor=1)
    i = int(ab.index_of(jax.tree.map(jnp.asarray, f)))
    assert ab.describe(i) == ("You see a locked door, a key of the door's colour and a key of "
                              "another colour. You carry nothing.")
    assert ab.describe(0) == ("You see no key, door or lava. You have not found the door yet. "
                              "You carry nothing.")


def _reference_factors(true_grid, memory, carrying):
    """The factors computed from the *true* grid restricted to cells the agent has seen."""
    seen = memory[..., 0] != UNSEEN
    tag, colour, state = (np.where(seen, true_grid[..., k], 0) for k in range(3))
    doors = np.argwhere(tag == DOOR)
    keys = [tuple(p) for p in np.argwhere(tag == KEY)]
    door_colour = colour[tuple(doors[0])] if len(doors) else None
    match = sum(colour[k] == door_colour for k in keys) if door_colour is not None else 0
    other = len(keys) - match if door_colour is not None else 0
    carry = 0
    if carrying[0] == KEY:
        carry = 1 if door_colour is None else (2 if carrying[1] == door_colour else 3)
    return dict(door=0 if not len(doors) else (2 if state[tuple(doors[0])] == DOOR_OPEN else 1),
                lava=int((tag == LAVA).any()), carrying=carry,
                floor_keys=min(len(keys), 2),
                matching_on_floor=int(match > 0), other_on_floor=int(other > 0))


@pytest.mark.parametrize("task", ["LavaDoorKey", "ColoredDoorKey"])
def test_abstraction_equals_true_state_restricted_to_seen_cells(task):
    """Along random rollouts, the factors read from the observation equal those computed from the
    true grid masked to the cells seen so far: nothing hidden is read, nothing seen is lost."""
    env = envs.make(task)
    n, steps = 64, 60

    def rollout(key):
        ts = env.reset(key)

        def body(state, k):
            a = jax.random.choice(k, jnp.array([0, 1, 2, 2, 2, 3, 4, 5]))
            obs = env.observe(state)
            out = env.step(state, a)
            return out.state, (state.grid, obs, ab.factors(obs))
        return jax.lax.scan(body, ts.state, jax.random.split(key, steps))[1]

    grids, obs, fac = jax.jit(jax.vmap(rollout))(jax.random.split(jax.random.key(0), n))
    fac = jax.tree.map(np.asarray, fac)
    grids, memory, carrying = map(np.asarray, (grids, obs.grid, obs.carrying))
    seen_states = set()
    for i in range(n):
        for t in range(steps):
            ref = _reference_factors(grids[i, t], memory[i, t], carrying[i, t])
            got = {k: int(getattr(fac, k)[i, t]) for k in ref}
            assert got == ref, (i, t)
            seen_states.add(tuple(got.values()))
    assert len(seen_states) >= 8  # the rollouts visit a variety of abstract states


def test_hidden_objects_do_not_change_the_abstract_state():
    """Two layouts that differ only where the agent has not looked give the same observation."""
    env = envs.make("ColoredDoorKey")
    a = make_layout(room=(10, 10), door=(9, 5), door_colour=RED, keys=((7, 7), (6, 2)),
                    key_colours=(RED, BLUE), agent=(1, 1), agent_dir=EAST)
    b = a.replace(key_pos=jnp.asarray([[8, 3], [5, 7]]))
    oa, ob = env.reset_to(a).obs, env.reset_to(b).obs
    chex.assert_trees_all_equal(oa, ob)
    assert int(ab.abstract_state(oa)) == int(ab.abstract_state(ob)) == 0


def test_scripted_episode_walks_through_expected_states():
    env = envs.make("DoorKey")
    lay = make_layout(room=(6, 6), door=(0, 3), door_colour=RED, keys=((2, 2),),
                      agent=(2, 1), agent_dir=EAST)
    step = jax.jit(env.step)
    ts = env.reset_to(lay)
    texts = [ab.describe(int(ab.abstract_state(ts.obs)))]
    for a in (PICKUP, LEFT, FORWARD, RIGHT, FORWARD, LEFT):
        ts = step(ts.state, a)
        texts.append(ab.describe(int(ab.abstract_state(ts.obs))))
    assert texts[0].startswith("You see a key. You have not found the door yet.")
    assert texts[1].endswith("You carry a key.")
    # From (1, 2) facing east the door at (0, 3) comes into view, up and to the left.
    assert texts[-1] == "You see a locked door. You carry a key of the door's colour."


def test_jit_vmap_and_no_retracing():
    env = envs.make("ColoredDoorKey")
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 16))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(obs):
        return jax.vmap(ab.abstract_state)(obs)

    out = f(ts.obs)
    f(jax.tree.map(lambda x: x, ts.obs))
    assert out.shape == (16,) and out.dtype == jnp.int32
    assert ((out >= 0) & (out < ab.NUM_ABSTRACT_STATES)).all()
