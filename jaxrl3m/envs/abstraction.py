"""The DoorKey family's guidance: abstract states, their texts, the options and the oracle.

The DoorKey tasks and MiniGrid's Unlock register `DOORKEY_GUIDANCE[task]` (a
`jaxrl3m.envs.task.Guidance`); any task can bring its own (`docs/tasks.md`).

Abstract symbolic states: what the agent has observed, as an index into a small fixed set.

`abstract_state(obs)` reads only the observation (the remembered map, the agent's hands), never
the true state, so it cannot leak hidden information. One index space serves all three tasks, so
a prior table always has `NUM_ABSTRACT_STATES` rows.

Colours are abstracted to their relation with the door's colour, which is all a policy needs and
keeps the table small: a key is "of the door's colour", "of another colour", or, while the door
has not been seen, of unknown relation. The factors:

- door: not seen yet / seen locked (or closed) / seen open;
- lava seen or not;
- carried object: nothing / a key (relation unknown) / a key of the door's colour / a key of
  another colour;
- keys seen lying on the floor: while the door is unseen, how many (0, 1, 2+); once the door is
  seen, whether a key of the door's colour and whether a key of another colour.

Index layout (`NUM_ABSTRACT_STATES = 60`):
- door unseen (12): `lava * 6 + carrying_key * 3 + min(floor_keys, 2)`;
- door seen (48): `12 + open * 24 + lava * 12 + carrying * 4 + matching_on_floor * 2 +
  other_on_floor`, with `carrying` 0 nothing, 1 the door's colour, 2 another colour.

Not every index occurs in every task (DoorKey never sees lava, nor a key of another colour);
`describe` gives the text of every index all the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import struct

from .task import Guidance
from .types import DOOR, DOOR_OPEN, KEY, LAVA, Observation

ABSTRACTION_VERSION = 1
"""Bumped whenever the index space or the texts change; prior tables record it."""

NUM_UNSEEN_DOOR = 12
NUM_ABSTRACT_STATES = 60


class AbstractState(struct.PyTreeNode):
    """The factors behind an abstract-state index (all `i32[]`, or batched)."""

    door: jax.Array  # 0 unseen, 1 seen closed or locked, 2 seen open
    lava: jax.Array  # 0/1 lava seen
    carrying: jax.Array  # 0 nothing, 1 key (door unseen), 2 key of the door's colour, 3 other key
    floor_keys: jax.Array  # door unseen: number of keys seen on the floor, capped at 2
    matching_on_floor: jax.Array  # door seen: a key of the door's colour seen on the floor
    other_on_floor: jax.Array  # door seen: a key of another colour seen on the floor


def factors(obs: Observation) -> AbstractState:
    """The abstract factors of one observation (jittable; vmap for batches)."""
    tag, colour, state = obs.grid[..., 0], obs.grid[..., 1], obs.grid[..., 2]
    door_cells = tag == DOOR
    door_seen = door_cells.any()
    door_open = (door_cells & (state == DOOR_OPEN)).any()
    # Tasks have one door; if several were seen, the first in row-major order defines "the" colour.
    door_colour = colour.ravel()[jnp.argmax(door_cells.ravel())]
    keys = tag == KEY
    matching = keys & (colour == door_colour)
    carry_key = obs.carrying[0] == KEY
    carry_matching = carry_key & (obs.carrying[1] == door_colour)
    i32 = functools.partial(jnp.asarray, dtype=jnp.int32)
    return AbstractState(
        door=jnp.where(door_seen, jnp.where(door_open, 2, 1), 0).astype(jnp.int32),
        lava=i32((tag == LAVA).any()),
        carrying=jnp.where(
            carry_key, jnp.where(door_seen, jnp.where(carry_matching, 2, 3), 1), 0
        ).astype(jnp.int32),
        floor_keys=jnp.minimum(keys.sum(), 2).astype(jnp.int32),
        # Relations to the door's colour are only known once the door is seen.
        matching_on_floor=i32(door_seen & matching.any()),
        other_on_floor=i32(door_seen & (keys & ~matching).any()),
    )


def index_of(f: AbstractState) -> jax.Array:
    """The index of a set of factors (see the module docstring)."""
    unseen = f.lava * 6 + jnp.minimum(f.carrying, 1) * 3 + f.floor_keys
    seen = (NUM_UNSEEN_DOOR + (f.door == 2) * 24 + f.lava * 12
            + jnp.maximum(f.carrying - 1, 0) * 4 + f.matching_on_floor * 2 + f.other_on_floor)
    return jnp.where(f.door == 0, unseen, seen).astype(jnp.int32)


def abstract_state(obs: Observation) -> jax.Array:
    """`i32[]` in `[0, NUM_ABSTRACT_STATES)`: the abstract state of an observation.

    Jittable and vmappable (`jax.vmap(abstract_state)(batch_of_obs)`).
    """
    return index_of(factors(obs))


def decode(index: int) -> AbstractState:
    """The factors of an index (inverse of `index_of`; plain Python ints)."""
    index = int(index)
    if not 0 <= index < NUM_ABSTRACT_STATES:
        raise ValueError(f"abstract state index {index} is outside [0, {NUM_ABSTRACT_STATES})")
    if index < NUM_UNSEEN_DOOR:
        lava, rest = divmod(index, 6)
        carry, floor = divmod(rest, 3)
        return AbstractState(door=0, lava=lava, carrying=carry, floor_keys=floor,
                             matching_on_floor=0, other_on_floor=0)
    i = index - NUM_UNSEEN_DOOR
    door_open, i = divmod(i, 24)
    lava, i = divmod(i, 12)
    carry, i = divmod(i, 4)
    matching, other = divmod(i, 2)
    return AbstractState(door=1 + door_open, lava=lava, carrying=0 if carry == 0 else carry + 1,
                         floor_keys=matching + other, matching_on_floor=matching,
                         other_on_floor=other)


def _join(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


@functools.cache
def describe(index: int) -> str:
    """The canonical text c(s) of an abstract state, e.g.

    "You see a locked door, a key of the door's colour and a key of another colour. You carry
    nothing."
    """
    f = decode(index)
    seen = []
    if f.door:
        seen.append("an open door" if f.door == 2 else "a locked door")
        if f.matching_on_floor:
            seen.append("a key of the door's colour")
        if f.other_on_floor:
            seen.append("a key of another colour")
    elif f.floor_keys:
        seen.append("a key" if f.floor_keys == 1 else "two keys of different colours")
    if f.lava:
        seen.append("lava")
    text = f"You see {_join(seen)}." if seen else "You see no key, door or lava."
    if not f.door:
        text += " You have not found the door yet."
    text += " You carry " + ("nothing", "a key", "a key of the door's colour",
                             "a key of another colour")[f.carrying] + "."
    return text


def describe_all() -> list[str]:
    """`describe(i)` for every index, in order."""
    return [describe(i) for i in range(NUM_ABSTRACT_STATES)]


# ---------------------------------------------------------------------------------------------
# Options and the oracle
# ---------------------------------------------------------------------------------------------
ONE_KEY_OPTIONS = ("explore", "go to the key", "pick up the key", "go to the door",
                   "open the door", "drop the key")
"""DoorKey's and LavaDoorKey's options (skills of `jaxrl3m.teacher.skills` by name)."""

COLOURED_OPTIONS = ("explore", "go to the key of the door's colour",
                    "pick up the key of the door's colour", "go to the key of another colour",
                    "pick up the key of another colour", "go to the door", "open the door",
                    "drop the key")
"""ColoredDoorKey's options."""


def one_key_oracle(index: int) -> tuple[str, ...]:
    """The right options of DoorKey and LavaDoorKey (one key, of the door's colour), by hand.

    A "go to X" option comes with "pick up X" / "open X": the mixture hands over from one to the
    other when the agent faces X (see `jaxrl3m.teacher.skills`).
    """
    f = decode(index)
    if f.carrying:
        return ("go to the door", "open the door") if f.door else ("explore",)
    if (f.door == 0 and f.floor_keys) or f.matching_on_floor:
        return ("go to the key", "pick up the key")
    return ("explore",)


def coloured_oracle(index: int) -> tuple[str, ...]:
    """The right options of ColoredDoorKey (two keys, one of the door's colour), by hand."""
    f = decode(index)
    if f.door == 0:
        return ("explore",)  # which key opens the door is unknown until the door is seen
    if f.carrying == 2:
        return ("go to the door", "open the door")
    if f.carrying == 3:
        return ("drop the key",)
    if f.matching_on_floor:
        return ("go to the key of the door's colour", "pick up the key of the door's colour")
    return ("explore",)


DESCRIPTIONS = {
    "DoorKey": ("An agent is in a room whose door is locked, and a key lies somewhere in the "
                "room. The agent sees only the cells near it, so it must explore to find things. "
                "A locked door opens only when the agent carries a key of the door's colour. The "
                "goal is to open the door."),
    "LavaDoorKey": ("An agent is in a room whose door is locked, and a key lies somewhere in the "
                    "room. There is lava in the room: stepping on it ends the game. The agent "
                    "sees only the cells near it, so it must explore to find things. A locked door "
                    "opens only when the agent carries a key of the door's colour. The goal is to "
                    "open the door."),
    "ColoredDoorKey": ("An agent is in a room whose door is locked. Two keys of different colours "
                       "lie in the room, and only the key of the door's colour opens it. The agent "
                       "sees only the cells near it, so it must explore to find things. It can "
                       "carry one object at a time: to pick up a key it must first drop the key it "
                       "carries. The goal is to open the door."),
}
"""The tasks in words, as the language model reads them."""

EXAMPLES = ({"state": 0, "answer": "explore"}, {"state": 16, "answer": "go to the door"})
"""The worked examples of the family's default prompt (indices of abstract states)."""


UNLOCK_DESCRIPTION = (
    "An agent is in a room whose door is locked, and a key lies somewhere in the room; behind "
    "the door is a second room. The agent sees only the cells near it, so it must explore to "
    "find things. A locked door opens only when the agent carries a key of the door's colour. "
    "The goal is to open the door.")
"""MiniGrid's Unlock in words (not in the default prompt's `tasks`, whose texts the shipped
tables' prompt hash covers: the prompt reads it from the guidance)."""


def _guidance(description: str, options: tuple[str, ...], oracle) -> Guidance:
    return Guidance(name="doorkey", version=ABSTRACTION_VERSION, num_states=NUM_ABSTRACT_STATES,
                    abstract_state=abstract_state, describe=describe, options=options,
                    oracle=oracle, description=description, examples=EXAMPLES)


DOORKEY_GUIDANCE = {
    "DoorKey": _guidance(DESCRIPTIONS["DoorKey"], ONE_KEY_OPTIONS, one_key_oracle),
    "LavaDoorKey": _guidance(DESCRIPTIONS["LavaDoorKey"], ONE_KEY_OPTIONS, one_key_oracle),
    "ColoredDoorKey": _guidance(DESCRIPTIONS["ColoredDoorKey"], COLOURED_OPTIONS,
                                coloured_oracle),
    "Unlock": _guidance(UNLOCK_DESCRIPTION, ONE_KEY_OPTIONS, one_key_oracle),
}
"""The guidance each task of the family registers (one object per task: their reachable states
differ)."""
