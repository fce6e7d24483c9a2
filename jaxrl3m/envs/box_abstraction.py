"""The guidance of UnlockPickup, BlockedUnlockPickup, KeyCorridor and LockedRoom: abstract
states over the (locked) door, a key, the object to reach (a box; KeyCorridor's ball,
LockedRoom's goal square), the agent's hands and (blocked) a ball in front of the door.

Like the DoorKey family's abstraction (`jaxrl3m.envs.abstraction`) it reads only what the agent
has observed. The factors:

- door: not seen yet / seen closed or locked / seen open;
- carrying: nothing / a key / something else (a ball or a box);
- a key seen lying on the floor;
- a box seen;
- BlockedUnlockPickup only: a ball seen next to the door (blocking it).

Index: `((door * 3 + carrying) * 2 + key_on_floor) * 2 + box_seen`, 36 states (UnlockPickup);
BlockedUnlockPickup's is that index `* 2 + ball_at_door`, 72 states.

KeyCorridor (`corridor=True`, 36 states) has several doors, all closed but one locked: its door
factor is about the locked one: seen locked (a door in the locked state), seen open (a door of
the key's colour, carried or seen, is open: the generator keeps that colour unique among the
doors), or neither; and its object is the ball behind that door. LockedRoom (`lockedroom=True`,
36 states) has the same door factor and the goal square as its object (six options: no drop,
the goal is walked onto with the key in hand).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .abstraction import _join
from .observation import next_to
from .task import Guidance
from .types import BALL, BOX, DOOR, DOOR_LOCKED, DOOR_OPEN, EMPTY, GOAL, KEY, Observation

VERSION = 1
NUM_STATES = 36
BLOCKED_NUM_STATES = 72

OPTIONS = ("explore", "go to the key", "pick up the key", "go to the door", "open the door",
           "drop the key", "go to the box", "pick up the box")
BLOCKED_OPTIONS = OPTIONS + ("go to the ball", "pick up the ball", "drop the ball")
CORRIDOR_OPTIONS = ("explore", "go to the key", "pick up the key", "go to the locked door",
                    "open the locked door", "drop the key", "go to the ball", "pick up the ball")

DESCRIPTION = (
    "An agent is in a room whose door is locked, and a key lies somewhere in the room; behind "
    "the door is a second room with a box. The agent sees only the cells near it, so it must "
    "explore to find things. A locked door opens only when the agent carries a key of the "
    "door's colour, and the agent can carry one object at a time. The goal is to pick up the "
    "box.")
BLOCKED_DESCRIPTION = (
    "An agent is in a room whose door is locked, and a key lies somewhere in the room, and a "
    "ball stands in front of the door, blocking it; behind the door is a second room with a "
    "box. The agent sees only the cells near it, so it must explore to find things. A locked "
    "door opens only when the agent carries a key of the door's colour, and the agent can carry "
    "one object at a time. The goal is to pick up the box.")
LOCKEDROOM_OPTIONS = ("explore", "go to the key", "pick up the key", "go to the locked door",
                      "open the locked door", "go to the goal")
LOCKEDROOM_DESCRIPTION = (
    "An agent stands in a hallway with three rooms on each side, each behind a closed door of "
    "its own colour that it can open. One room is locked and holds the goal square; the key of "
    "the locked door's colour lies in one of the other rooms. The agent sees only the cells "
    "near it, and not through closed doors, so it must explore, opening doors, to find things. "
    "A locked door opens only when the agent carries a key of the door's colour. The goal is to "
    "step onto the goal square.")
CORRIDOR_DESCRIPTION = (
    "An agent stands in a hallway with rooms on both sides, each behind a closed door that it "
    "can open. One room is locked and holds a ball; the key of the locked door's colour lies in "
    "another room. The agent sees only the cells near it, and not through closed doors, so it "
    "must explore, opening doors, to find things. A locked door opens only when the agent "
    "carries a key of the door's colour, and the agent can carry one object at a time. The goal "
    "is to pick up the ball.")


def _ball_at_door(tag: jax.Array) -> jax.Array:
    """`bool[]`: a ball seen on a cell 4-adjacent to a door seen."""
    door = tag == DOOR
    return ((tag == BALL) & next_to(door)).any()


def _locked_door(tag: jax.Array, colour: jax.Array, state: jax.Array,
                 carrying: jax.Array) -> jax.Array:
    """`i32[]`: the corridor's locked door 0 not seen, 1 seen locked, 2 seen open (a door of
    the key's colour open, the key carried or seen)."""
    doors = tag == DOOR
    keys = tag == KEY
    key_colour = jnp.where(carrying[0] == KEY, carrying[1],
                           jnp.where(keys.any(), colour.ravel()[jnp.argmax(keys.ravel())], -1))
    opened = (doors & (state == DOOR_OPEN) & (colour == key_colour)).any()
    return jnp.where((doors & (state == DOOR_LOCKED)).any(), 1, jnp.where(opened, 2, 0))


def abstract_state(obs: Observation, blocked: bool = False, corridor: bool = False,
                   lockedroom: bool = False) -> jax.Array:
    """`i32[]` in `[0, 36)` (`[0, 72)` when `blocked`; one observation; jittable, vmap for
    batches). `lockedroom`: KeyCorridor's door factor, the goal square as the object."""
    tag, colour, state = obs.grid[..., 0], obs.grid[..., 1], obs.grid[..., 2]
    doors = tag == DOOR
    if corridor or lockedroom:
        door = _locked_door(tag, colour, state, obs.carrying)
    else:
        door = jnp.where(doors.any(), jnp.where((doors & (state == DOOR_OPEN)).any(), 2, 1), 0)
    held = obs.carrying[0]
    carrying = jnp.where(held == EMPTY, 0, jnp.where(held == KEY, 1, 2))
    key = (tag == KEY).any()
    box = (tag == (GOAL if lockedroom else BALL if corridor else BOX)).any()
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


def describe(index: int, blocked: bool = False, corridor: bool = False,
             lockedroom: bool = False) -> str:
    """The text of an abstract state, e.g. "You see an open door and a box. You carry a key.\""""
    if lockedroom:
        door, carrying, key, goal, *_ = decode(index)
        seen = ([("the locked door", "the locked door, now open")[door - 1]] if door else []) \
            + (["a key"] if key else []) + (["the goal square"] if goal else [])
        text = f"You see {_join(seen)}." if seen else "You see no locked door, key or goal."
        if not door:
            text += " You have not found the locked room yet."
        return text + " You carry " + ("nothing", "the key", "something else")[carrying] + "."
    door, carrying, key, box, *ball = decode(index, blocked)
    doors = ("the locked door", "the locked door, now open") if corridor else (
        "a locked door", "an open door")
    thing = "a ball" if corridor else "a box"
    seen = ([doors[door - 1]] if door else []) + \
        (["a ball in front of the door"] if ball and ball[0] else []) + \
        (["a key"] if key else []) + ([thing] if box else [])
    if seen:
        text = f"You see {_join(seen)}."
    else:
        text = "You see no locked door, key or ball." if corridor else \
            "You see no door, key or box."
    if not door:
        text += " You have not found the locked door yet." if corridor else \
            " You have not found the door yet."
    return text + " You carry " + ("nothing", "a key", "a ball or a box")[carrying] + "."


def oracle(index: int, blocked: bool = False, corridor: bool = False,
           lockedroom: bool = False) -> tuple[str, ...]:
    """The right options, by hand: (blocked: the ball out of the way first, dropped away from
    the door), the key to the door, the door open, the key dropped (one object at a time), then
    the box (KeyCorridor: the ball; its explore opens closed doors, its door options are the
    locked door's; LockedRoom: the goal square, walked onto with the key in hand)."""
    if lockedroom:
        door, carrying, key, goal, *_ = decode(index)
        if door == 2:
            return ("go to the goal",) if goal else ("explore",)
        if carrying == 1:
            return ("go to the locked door", "open the locked door") if door else ("explore",)
        return ("go to the key", "pick up the key") if key else ("explore",)
    if corridor:
        rename = {"go to the door": "go to the locked door",
                  "open the door": "open the locked door", "go to the box": "go to the ball",
                  "pick up the box": "pick up the ball"}
        return tuple(rename.get(o, o) for o in oracle(index))
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


CORRIDOR_SKILL_NAMES = (("explore", "explore, opening closed doors"),
                        ("drop the key", "drop the key anywhere"))
"""The rooms worlds' option names -> the library skills they run: rooms are behind closed
doors, and KeyCorridor's hallway may be one cell wide."""


def _rooms_guidance(name: str, options: tuple[str, ...], description: str, **world
                    ) -> Guidance:
    """The guidance of a world of rooms behind closed doors (`world`: `corridor=True` or
    `lockedroom=True`), with KeyCorridor's skills."""
    return Guidance(name=name, version=VERSION, num_states=NUM_STATES,
                    abstract_state=functools.partial(abstract_state, **world),
                    describe=functools.partial(describe, **world), options=options,
                    skill_names=CORRIDOR_SKILL_NAMES, oracle=functools.partial(oracle, **world),
                    description=description, examples=({"state": 0, "answer": "explore"},))


CORRIDOR_GUIDANCE = _rooms_guidance("keycorridor", CORRIDOR_OPTIONS, CORRIDOR_DESCRIPTION,
                                    corridor=True)
LOCKEDROOM_GUIDANCE = _rooms_guidance("lockedroom", LOCKEDROOM_OPTIONS, LOCKEDROOM_DESCRIPTION,
                                      lockedroom=True)
