"""UnlockPickup's guidance: abstract states over the door, a key, a box and the agent's hands.

Like the DoorKey family's abstraction (`jaxrl3m.envs.abstraction`) it reads only what the agent
has observed. The factors:

- door: not seen yet / seen closed or locked / seen open;
- carrying: nothing / a key / something else (a ball or a box);
- a key seen lying on the floor;
- a box seen.

Index: `((door * 3 + carrying) * 2 + key_on_floor) * 2 + box_seen`, 36 states.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .abstraction import _join
from .task import Guidance
from .types import BOX, DOOR, DOOR_OPEN, EMPTY, KEY, Observation

VERSION = 1
NUM_STATES = 36

OPTIONS = ("explore", "go to the key", "pick up the key", "go to the door", "open the door",
           "drop the key", "go to the box", "pick up the box")

DESCRIPTION = (
    "An agent is in a room whose door is locked, and a key lies somewhere in the room; behind "
    "the door is a second room with a box. The agent sees only the cells near it, so it must "
    "explore to find things. A locked door opens only when the agent carries a key of the "
    "door's colour, and the agent can carry one object at a time. The goal is to pick up the "
    "box.")


def abstract_state(obs: Observation) -> jax.Array:
    """`i32[]` in `[0, 36)` (one observation; jittable, vmap for batches)."""
    tag, state = obs.grid[..., 0], obs.grid[..., 2]
    doors = tag == DOOR
    door = jnp.where(doors.any(), jnp.where((doors & (state == DOOR_OPEN)).any(), 2, 1), 0)
    held = obs.carrying[0]
    carrying = jnp.where(held == EMPTY, 0, jnp.where(held == KEY, 1, 2))
    key = (tag == KEY).any()
    box = (tag == BOX).any()
    return (((door * 3 + carrying) * 2 + key) * 2 + box).astype(jnp.int32)


def decode(index: int) -> tuple[int, int, int, int]:
    """`(door, carrying, key_on_floor, box_seen)` of an index."""
    index = int(index)
    if not 0 <= index < NUM_STATES:
        raise ValueError(f"abstract state index {index} is outside [0, {NUM_STATES})")
    rest, box = divmod(index, 2)
    rest, key = divmod(rest, 2)
    door, carrying = divmod(rest, 3)
    return door, carrying, key, box


def describe(index: int) -> str:
    """The text of an abstract state, e.g. "You see an open door and a box. You carry a key.\""""
    door, carrying, key, box = decode(index)
    seen = ([("a locked door", "an open door")[door - 1]] if door else []) + \
        (["a key"] if key else []) + (["a box"] if box else [])
    text = f"You see {_join(seen)}." if seen else "You see no door, key or box."
    if not door:
        text += " You have not found the door yet."
    return text + " You carry " + ("nothing", "a key", "a ball or a box")[carrying] + "."


def oracle(index: int) -> tuple[str, ...]:
    """The right options, by hand: the key to the door, the door open, the key dropped (one
    object at a time), then the box."""
    door, carrying, key, box = decode(index)
    if carrying:
        if carrying == 2 or door == 2:
            return ("drop the key",)
        return ("go to the door", "open the door") if door else ("explore",)
    if door == 2:
        return ("go to the box", "pick up the box") if box else ("explore",)
    return ("go to the key", "pick up the key") if key else ("explore",)


GUIDANCE = Guidance(name="unlockpickup", version=VERSION, num_states=NUM_STATES,
                    abstract_state=abstract_state, describe=describe, options=OPTIONS,
                    oracle=oracle, description=DESCRIPTION,
                    examples=({"state": 0, "answer": "explore"},))
