"""The guidance of UnlockPickup and BlockedUnlockPickup: abstract states over the door, a key,
a box, the agent's hands and (blocked) a ball in front of the door.

Like the DoorKey family's abstraction (`jaxrl3m.envs.abstraction`) it reads only what the agent
has observed. The factors:

- door: not seen yet / seen closed or locked / seen open;
- carrying: nothing / a key / something else (a ball or a box);
- a key seen lying on the floor;
- a box seen;
- BlockedUnlockPickup only: a ball seen next to the door (blocking it).

Index: `((door * 3 + carrying) * 2 + key_on_floor) * 2 + box_seen`, 36 states (UnlockPickup);
BlockedUnlockPickup's is that index `* 2 + ball_at_door`, 72 states.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .abstraction import _join
from .task import Guidance
from .types import BALL, BOX, DOOR, DOOR_OPEN, EMPTY, KEY, Observation

VERSION = 1
NUM_STATES = 36
BLOCKED_NUM_STATES = 72

OPTIONS = ("explore", "go to the key", "pick up the key", "go to the door", "open the door",
           "drop the key", "go to the box", "pick up the box")
BLOCKED_OPTIONS = OPTIONS + ("go to the ball", "pick up the ball", "drop the ball")

DESCRIPTION = (
    "An agent is in a room whose door is locked, and a key lies somewhere in the room; behind "
    "the door is a second room with a box. The agent sees only the cells near it, so it must "
    "explore to find things. A locked door opens only when the agent carries a key of the "
    "door's colour, and the agent can carry one object at a time. The goal is to pick up the "
    "box.")
BLOCKED_DESCRIPTION = DESCRIPTION.replace(
    "lies somewhere in the room;", "lies somewhere in the room, and a ball stands in front of "
    "the door, blocking it;")


def _ball_at_door(tag: jax.Array) -> jax.Array:
    """`bool[]`: a ball seen on a cell 4-adjacent to a door seen."""
    door = tag == DOOR
    near = (jnp.roll(door, 1, 0) | jnp.roll(door, -1, 0) | jnp.roll(door, 1, 1)
            | jnp.roll(door, -1, 1))
    return ((tag == BALL) & near).any()


def abstract_state(obs: Observation, blocked: bool = False) -> jax.Array:
    """`i32[]` in `[0, 36)` (`[0, 72)` when `blocked`; one observation; jittable, vmap for
    batches)."""
    tag, state = obs.grid[..., 0], obs.grid[..., 2]
    doors = tag == DOOR
    door = jnp.where(doors.any(), jnp.where((doors & (state == DOOR_OPEN)).any(), 2, 1), 0)
    held = obs.carrying[0]
    carrying = jnp.where(held == EMPTY, 0, jnp.where(held == KEY, 1, 2))
    key = (tag == KEY).any()
    box = (tag == BOX).any()
    index = ((door * 3 + carrying) * 2 + key) * 2 + box
    if blocked:
        index = index * 2 + _ball_at_door(tag)
    return index.astype(jnp.int32)


def decode(index: int, blocked: bool = False) -> tuple[int, ...]:
    """`(door, carrying, key_on_floor, box_seen)` of an index, `+ (ball_at_door,)` when
    `blocked`."""
    index, n = int(index), (BLOCKED_NUM_STATES if blocked else NUM_STATES)
    if not 0 <= index < n:
        raise ValueError(f"abstract state index {index} is outside [0, {n})")
    ball = ()
    if blocked:
        index, b = divmod(index, 2)
        ball = (b,)
    rest, box = divmod(index, 2)
    rest, key = divmod(rest, 2)
    door, carrying = divmod(rest, 3)
    return (door, carrying, key, box) + ball


def describe(index: int, blocked: bool = False) -> str:
    """The text of an abstract state, e.g. "You see an open door and a box. You carry a key.\""""
    door, carrying, key, box, *ball = decode(index, blocked)
    seen = ([("a locked door", "an open door")[door - 1]] if door else []) + \
        (["a ball in front of the door"] if ball and ball[0] else []) + \
        (["a key"] if key else []) + (["a box"] if box else [])
    text = f"You see {_join(seen)}." if seen else "You see no door, key or box."
    if not door:
        text += " You have not found the door yet."
    return text + " You carry " + ("nothing", "a key", "a ball or a box")[carrying] + "."


def oracle(index: int, blocked: bool = False) -> tuple[str, ...]:
    """The right options, by hand: (blocked: the ball out of the way first, dropped away from
    the door), the key to the door, the door open, the key dropped (one object at a time), then
    the box."""
    door, carrying, key, box, *ball = decode(index, blocked)
    if carrying == 2 and blocked:
        return ("drop the ball",)
    blocking = bool(ball and ball[0])
    if carrying:
        # A key while the ball still blocks the door (seen only now): drop it, move the ball.
        if carrying == 2 or door == 2 or blocking:
            return ("drop the key",)
        return ("go to the door", "open the door") if door else ("explore",)
    if door == 2:
        return ("go to the box", "pick up the box") if box else ("explore",)
    if blocking:
        return ("go to the ball", "pick up the ball")
    return ("go to the key", "pick up the key") if key else ("explore",)


GUIDANCE = Guidance(name="unlockpickup", version=VERSION, num_states=NUM_STATES,
                    abstract_state=abstract_state, describe=describe, options=OPTIONS,
                    oracle=oracle, description=DESCRIPTION,
                    examples=({"state": 0, "answer": "explore"},))

BLOCKED_GUIDANCE = Guidance(
    name="blockedunlockpickup", version=VERSION, num_states=BLOCKED_NUM_STATES,
    abstract_state=functools.partial(abstract_state, blocked=True),
    describe=functools.partial(describe, blocked=True), options=BLOCKED_OPTIONS,
    oracle=functools.partial(oracle, blocked=True), description=BLOCKED_DESCRIPTION,
    examples=({"state": 0, "answer": "explore"},))
