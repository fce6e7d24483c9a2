"""The guidance of Fetch, a task with a mission ("fetch a red key"): abstract states relative
to the mission's object.

Like the other abstractions it reads only what the agent has observed (its remembered map, its
hands) and the mission (`MissionObservation.mission`). The factors:

- the mission's kind: a key / a ball (its colour is not a factor: every colour plays alike, so
  the index stays small and one table serves every mission);
- the mission's object: not seen yet / seen (a cell of the remembered map holds an object of
  the mission's kind and colour) / in front of the agent;
- another object in front: a key or a ball that is not the mission's (picking it up would end
  the episode with nothing).

Index `(kind * 3 + target) * 2 + other`, 12 states (an object in front is either the mission's
or another, so the states with both never occur).

Options: explore, go to / pick up the object of the mission, and the kind-only skills of the
other tasks (go to / pick up the key, the ball), which ignore colours: with the mission's
colour unread they may walk to, and pick up, the wrong object.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .task import Guidance
from .types import BALL, DIR_VEC, KEY, Observation, mission_of

VERSION = 1
NUM_STATES = 12
OPTIONS = ("explore", "go to the object of the mission", "pick up the object of the mission",
           "go to the key", "pick up the key", "go to the ball", "pick up the ball")
KINDS = ("key", "ball")
DESCRIPTION = (
    "You are an agent in a small walled room holding a few keys and balls of several colours. "
    "Your mission names one kind and colour of object: you succeed by picking up an object of "
    "that kind and colour; picking up any other object ends the episode with nothing.")


def abstract_state(obs: Observation) -> jax.Array:
    """`i32[]` in `[0, 12)` (one observation; jittable, vmap for batches). Needs a mission."""
    mission = mission_of(obs)
    if mission is None:
        raise ValueError("the Fetch abstraction needs an observation with a mission "
                         "(MissionObservation): this task has none")
    tag, colour = obs.grid[..., 0], obs.grid[..., 1]
    wanted_tag, wanted_colour = mission[0], mission[1]
    kind = (wanted_tag == BALL).astype(jnp.int32)
    seen = ((tag == wanted_tag) & (colour == wanted_colour)).any()
    pos, d = obs.agent_pos, obs.agent_dir
    step = jnp.asarray(DIR_VEC)[d]
    h, w = obs.grid.shape[:2]
    front_pos = jnp.clip(pos + step, 0, jnp.asarray([h - 1, w - 1]))
    front = obs.grid[front_pos[0], front_pos[1]]
    is_object = (front[0] == KEY) | (front[0] == BALL)
    target_front = is_object & (front[0] == wanted_tag) & (front[1] == wanted_colour)
    target = jnp.where(target_front, 2, jnp.where(seen, 1, 0))
    other = is_object & ~target_front
    return ((kind * 3 + target) * 2 + other).astype(jnp.int32)


def decode(index: int) -> tuple[int, int, int]:
    """`(kind, target, other)` of an index."""
    index = int(index)
    if not 0 <= index < NUM_STATES:
        raise ValueError(f"abstract state index {index} is outside [0, {NUM_STATES})")
    rest, other = divmod(index, 2)
    kind, target = divmod(rest, 3)
    return kind, target, other


def describe(index: int) -> str:
    """The text of an abstract state, e.g. "Your mission is to fetch a key of the colour it
    names. You see such a key. In front of you is another object.\""""
    kind, target, other = decode(index)
    name = KINDS[kind]
    text = f"Your mission is to fetch a {name} of the colour it names. " + (
        f"You have not seen such a {name} yet.", f"You see such a {name}.",
        f"Such a {name} is right in front of you.")[target]
    if other and target != 2:  # (with the mission's object in front there is no other there)
        text += f" In front of you is another object, not the {name} of your mission."
    return text + " You carry nothing."


def oracle(index: int) -> tuple[str, ...]:
    """The right options, by hand: explore until the mission's object is seen, walk to it,
    pick it up."""
    _, target, _ = decode(index)
    return (("explore",), ("go to the object of the mission",),
            ("pick up the object of the mission",))[target]


GUIDANCE = Guidance(name="fetch", version=VERSION, num_states=NUM_STATES,
                    abstract_state=abstract_state, describe=describe, options=OPTIONS,
                    oracle=oracle, description=DESCRIPTION,
                    examples=({"state": 0, "answer": "explore"},))
