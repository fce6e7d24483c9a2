"""Hand-scripted action sequences, one per rule, on hand-built layouts."""

from __future__ import annotations

import functools

import jax
import pytest

from helpers import make_layout
from jaxrl3m import envs
from jaxrl3m.envs.types import (BLUE, DONE, DOOR, DOOR_LOCKED, DOOR_OPEN, DROP, EAST, EMPTY,
                                FORWARD, KEY, LEFT, NORTH, PICKUP, RED, RIGHT, TOGGLE, WEST)


@functools.cache
def _step(env):
    return jax.jit(env.step)


def run(env, layout, actions):
    """Steps through `actions`; returns the list of TimeSteps (with numpy leaves)."""
    ts = env.reset_to(layout)
    out = [ts]
    for a in actions:
        ts = _step(env)(ts.state, a)
        out.append(ts)
    return out


def cell(ts, r, c):
    return tuple(int(x) for x in ts.final_obs.grid[r, c])


# Agent at (1, 1) facing east; a red key at (1, 2) right in front; a red door at (0, 3) in the
# top wall, opened from (1, 3) facing north.
BASE = dict(room=(6, 6), door=(0, 3), door_colour=RED, keys=((1, 2),), agent=(1, 1),
            agent_dir=EAST)


def test_turns_and_forward_into_wall():
    env = envs.make("DoorKey")
    ts = run(env, make_layout(**BASE), [LEFT, RIGHT, RIGHT, FORWARD, FORWARD, LEFT, LEFT, FORWARD])
    assert [int(t.obs.agent_dir) for t in ts] == [EAST, NORTH, EAST, 1, 1, 1, EAST, NORTH, NORTH]
    # Two steps south from (1, 1) to (3, 1), turn to face north, one step back to (2, 1).
    assert [tuple(t.obs.agent_pos) for t in ts][-4:] == [(3, 1), (3, 1), (3, 1), (2, 1)]
    # The agent walks into the key or the west wall and stays put.
    ts = run(env, make_layout(**BASE), [FORWARD, LEFT, LEFT, FORWARD])
    assert tuple(ts[1].obs.agent_pos) == (1, 1)  # the key blocks
    assert tuple(ts[4].obs.agent_pos) == (1, 1)  # the wall blocks


def test_pickup_takes_the_key_in_front():
    env = envs.make("DoorKey")
    ts = run(env, make_layout(**BASE), [PICKUP])
    assert tuple(ts[1].obs.carrying) == (KEY, RED, 0)
    assert cell(ts[1], 1, 2) == (EMPTY, 0, 0)
    assert not ts[1].terminated and ts[1].reward == 0


def test_pickup_with_full_hands_does_nothing():
    env = envs.make("ColoredDoorKey")
    lay = make_layout(**{**BASE, "keys": ((1, 2), (2, 1)), "key_colours": (RED, BLUE)})
    # Take the red key, turn right (south) to face the blue key, try to take it too.
    ts = run(env, lay, [PICKUP, RIGHT, PICKUP])
    assert tuple(ts[3].obs.carrying) == (KEY, RED, 0)  # still the first key (NAVIX would swap)
    assert cell(ts[3], 2, 1) == (KEY, BLUE, 0)  # the blue key stays on the floor


def test_drop_puts_the_key_on_the_empty_cell_in_front_only():
    env = envs.make("DoorKey")
    # Pick up, face the west wall and try to drop (refused), face south and drop (done).
    ts = run(env, make_layout(**BASE), [PICKUP, LEFT, LEFT, DROP, LEFT, DROP])
    assert tuple(ts[4].obs.carrying) == (KEY, RED, 0)
    assert tuple(ts[6].obs.carrying) == (EMPTY, 0, 0)
    assert cell(ts[6], 2, 1) == (KEY, RED, 0)
    # Dropping with empty hands does nothing.
    ts = run(env, make_layout(**BASE), [RIGHT, DROP])
    assert cell(ts[2], 2, 1) == (EMPTY, 0, 0)


def test_opening_the_door_with_its_key_is_success_and_ends_the_episode():
    env = envs.make("DoorKey", max_steps=150)
    # Take the key; toggling the wall at (0, 1) does nothing; walk to (1, 3), face north, open.
    actions = [PICKUP, LEFT, TOGGLE, RIGHT, FORWARD, FORWARD, LEFT, TOGGLE]
    ts = run(env, make_layout(**BASE), actions)
    for t in ts[1:-1]:
        assert not t.terminated and not t.truncated
    last = ts[-1]
    assert last.terminated and not last.truncated
    assert last.reward == pytest.approx(1 - 0.9 * len(actions) / 150)
    assert cell(last, 0, 3) == (DOOR, RED, DOOR_OPEN)  # final_obs shows the open door
    # Autoreset: the returned state is a fresh episode.
    assert int(last.state.t) == 0 and tuple(last.obs.carrying) == (EMPTY, 0, 0)


def test_toggle_without_a_key_or_with_the_wrong_key_does_nothing():
    env = envs.make("ColoredDoorKey")
    # Red door at (0, 3); the red key far away at (4, 1), the blue key at (2, 3).
    lay = make_layout(room=(6, 6), door=(0, 3), door_colour=RED, keys=((4, 1), (2, 3)),
                      key_colours=(RED, BLUE), agent=(1, 1), agent_dir=EAST)
    # Walk to (1, 3), face north (the door) and toggle empty-handed: it stays locked.
    ts = run(env, lay, [FORWARD, FORWARD, LEFT, TOGGLE])
    assert tuple(ts[-1].obs.agent_pos) == (1, 3) and int(ts[-1].obs.agent_dir) == NORTH
    assert cell(ts[-1], 0, 3) == (DOOR, RED, DOOR_LOCKED) and not ts[-1].terminated
    # Turn round, take the blue key, face the door again and toggle: still locked.
    ts = run(env, lay, [FORWARD, FORWARD, LEFT, TOGGLE, RIGHT, RIGHT, PICKUP, LEFT, LEFT, TOGGLE])
    assert tuple(ts[-1].obs.carrying) == (KEY, BLUE, 0)
    assert int(ts[-1].obs.agent_dir) == NORTH
    assert cell(ts[-1], 0, 3) == (DOOR, RED, DOOR_LOCKED) and not ts[-1].terminated


def test_colored_doorkey_drop_the_wrong_key_take_the_right_one():
    env = envs.make("ColoredDoorKey")
    lay = make_layout(room=(6, 6), door=(0, 3), door_colour=RED, keys=((2, 1), (1, 2)),
                      key_colours=(RED, BLUE), agent=(1, 1), agent_dir=EAST)
    # Take blue (east), try red (south, refused), turn back east and drop blue, take red, then
    # walk round the dropped key: (2, 1), (2, 2), (2, 3), (1, 3) facing north.
    actions = [PICKUP, RIGHT, PICKUP, LEFT, DROP, RIGHT, PICKUP,
               FORWARD, LEFT, FORWARD, FORWARD, LEFT, FORWARD]
    ts = run(env, lay, actions)
    assert tuple(ts[3].obs.carrying) == (KEY, BLUE, 0)
    assert tuple(ts[7].obs.carrying) == (KEY, RED, 0)
    assert cell(ts[7], 1, 2) == (KEY, BLUE, 0)
    final = run(env, lay, actions + [TOGGLE])
    assert not any(bool(t.terminated) for t in final[1:-1])
    assert final[-1].terminated and final[-1].reward > 0


def test_lava_terminates_with_zero_reward():
    env = envs.make("LavaDoorKey")
    lay = make_layout(**{**BASE, "lava": ((2, 1),)})
    ts = run(env, lay, [RIGHT, FORWARD])
    assert ts[2].terminated and not ts[2].truncated and ts[2].reward == 0
    assert tuple(ts[2].final_obs.agent_pos) == (2, 1)


def test_truncation_at_max_steps():
    env = envs.make("DoorKey", max_steps=5)
    ts = run(env, make_layout(**BASE), [DONE] * 6)
    assert [bool(t.truncated) for t in ts[1:]] == [False] * 4 + [True, False]
    assert all(not t.terminated and t.reward == 0 for t in ts[1:])
    assert int(ts[5].state.t) == 0  # autoreset on the truncating step
    assert int(ts[6].state.t) == 1


def test_success_on_the_last_step_is_termination_not_truncation():
    env = envs.make("DoorKey", max_steps=2)
    lay = make_layout(**{**BASE, "keys": ((2, 1),), "agent": (1, 3), "agent_dir": WEST})
    # Facing west from (1, 3): turn right to face north and toggle without a key: nothing.
    ts = run(env, lay, [RIGHT, TOGGLE])
    assert ts[2].truncated and not ts[2].terminated
    # Holding the key, opening the door on the last allowed step is a success.
    lay = make_layout(**{**BASE, "keys": ((1, 4),), "agent": (1, 3), "agent_dir": EAST})
    env3 = envs.make("DoorKey", max_steps=3)
    ts = run(env3, lay, [PICKUP, LEFT, TOGGLE])
    assert ts[3].terminated and not ts[3].truncated
    assert ts[3].reward == pytest.approx(1 - 0.9 * 3 / 3)
