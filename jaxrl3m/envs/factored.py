"""Abstractions built from factors of what the agent has observed, with their texts generated.

A hand-written abstraction (`jaxrl3m.envs.abstraction`, `box_abstraction`) is a function into
`[0, num_states)` and a text per index. For a MiniGrid/BabyAI-style task of your own you may
instead list *factors*, each a small function of one observation with a few named values and
a sentence per value, and let `factored` make the `Guidance`: the abstract state is the factors'
values in mixed radix (the first factor varies slowest), its text their sentences in order, and
the oracle, if you give one, is written over factor values by name.

    from jaxrl3m.envs import factored as F
    guide = F.factored("my-unlock", 1, [F.carrying(), F.seen(KEY), F.door()], options=...,
                       oracle=lambda v: ("go through the door",) if v["carrying"] == "key"
                       else ...)

Factors provided (each reads only the remembered map, the pose, the hands and the mission):

- `carrying(objects)`: what is carried ("nothing" or one of the object words);
- `seen(tag, colour)`: whether an object of the kind (and colour) is on the remembered map;
- `in_front(tag, colour)`: whether one is in the cell in front of the agent;
- `door(colour)`: the first such door's state as last seen ("unseen", "locked", "closed",
  "open");
- `mission()`: the mission's object, relative to what was seen ("unseen", "seen", "in front";
  tasks with a mission, `jaxrl3m.envs.mission_of`).

A factor of your own is a `Factor(name, values, texts, value)`. Bump the guidance's version
when the factors or their texts change: prior tables record it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import jax
import jax.numpy as jnp

from .observation import cell_ahead, cells_of, is_object
from .task import Guidance
from .types import (BALL, BOX, COLOUR_NAMES, DOOR, DOOR_CLOSED, DOOR_LOCKED, EMPTY, GOAL, KEY,
                    Observation, mission_of)

WORDS = {KEY: "key", BALL: "ball", BOX: "box", DOOR: "door", GOAL: "goal"}
"""The object words factors use in their values and texts."""


@dataclasses.dataclass(frozen=True)
class Factor:
    """One factor: `value(obs) -> i32[]` in `[0, len(values))`, jittable, of one observation;
    `values` name its values (the oracle reads them), `texts` the sentence for each (the
    state's text is its factors' sentences joined; an empty sentence says nothing)."""

    name: str
    values: tuple[str, ...]
    texts: tuple[str, ...]
    value: Callable[[Observation], jax.Array]

    def __post_init__(self):
        if not self.values or len(self.values) != len(self.texts):
            raise ValueError(f"factor {self.name!r}: one text per value, got {len(self.values)} "
                             f"values and {len(self.texts)} texts")
        if len(set(self.values)) != len(self.values):
            raise ValueError(f"factor {self.name!r}: values must be distinct, got {self.values}")


def _words(tag: int, colour: int | None) -> str:
    return (f"{COLOUR_NAMES[colour]} " if colour is not None else "") + WORDS[tag]


def carrying(objects: Sequence[int] = (KEY, BALL, BOX)) -> Factor:
    """What the agent carries: "nothing", or the word of one of `objects` (tags; another
    object reads as the first)."""
    objects = tuple(objects)

    def value(obs):
        held = obs.carrying[0]
        index = jnp.argmax(jnp.asarray(objects) == held) + 1
        return jnp.where(held == EMPTY, 0, index).astype(jnp.int32)
    names = ("nothing",) + tuple(WORDS[t] for t in objects)
    return Factor("carrying", names, tuple(f"You carry {'nothing' if n == 'nothing' else 'a ' + n}."
                                           for n in names), value)


def seen(tag: int, colour: int | None = None) -> Factor:
    """Whether an object of the kind (and colour) is on the remembered map."""
    words = _words(tag, colour)
    return Factor(f"seen {words}", ("no", "yes"),
                  (f"You have not seen a {words}.", f"You have seen a {words}."),
                  lambda obs: cells_of(obs, tag, colour).any().astype(jnp.int32))


def in_front(tag: int, colour: int | None = None) -> Factor:
    """Whether an object of the kind (and colour) is in the cell in front of the agent."""
    words = _words(tag, colour)

    return Factor(f"{words} in front", ("no", "yes"), ("", f"A {words} is in front of you."),
                  lambda obs: is_object(cell_ahead(obs), tag, colour).astype(jnp.int32))


def door(colour: int | None = None) -> Factor:
    """The state of the first door of the colour on the remembered map (raster order), as last
    seen: "unseen", "locked", "closed" or "open"."""
    words = _words(DOOR, colour)

    def value(obs):
        cells = cells_of(obs, DOOR, colour).ravel()
        state = obs.grid[..., 2].ravel()[jnp.argmax(cells)]
        code = jnp.where(state == DOOR_LOCKED, 1, jnp.where(state == DOOR_CLOSED, 2, 3))
        return jnp.where(cells.any(), code, 0).astype(jnp.int32)
    return Factor(f"the {words}", ("unseen", "locked", "closed", "open"),
                  (f"You have not seen the {words}.", f"The {words} is locked.",
                   f"The {words} is closed.", f"The {words} is open."), value)


def mission() -> Factor:
    """The mission's object relative to what was seen: "unseen", "seen" (on the remembered
    map) or "in front" (tasks with a mission; it fails when traced on a task without one)."""
    def value(obs):
        m = mission_of(obs)
        if m is None:
            raise ValueError("the mission factor needs a task with a mission "
                             "(an observation with `mission`)")
        ahead = is_object(cell_ahead(obs), m[0], m[1])
        return jnp.where(ahead, 2, cells_of(obs, m[0], m[1]).any()).astype(jnp.int32)
    return Factor("mission", ("unseen", "seen", "in front"),
                  ("You have not seen the object of your mission.",
                   "You have seen the object of your mission.",
                   "The object of your mission is in front of you."), value)


def factored(name: str, version: int, factors: Sequence[Factor], options: tuple[str, ...],
             oracle: Callable[[dict[str, str]], tuple[str, ...]] | None = None,
             **guidance) -> Guidance:
    """A `Guidance` whose abstract states are the factors' values (mixed radix, the first
    factor slowest) and whose texts are their sentences; `oracle`, if given, maps the factor
    values by name (`{"carrying": "key", "the door": "open", ...}`) to the right options.
    Other keywords go to `Guidance` (`skills`, `description`, `examples`, ...)."""
    factors = tuple(factors)
    if not factors:
        raise ValueError("factored needs at least one factor")
    names = [f.name for f in factors]
    if len(set(names)) != len(names):
        raise ValueError(f"factor names must be distinct, got {names}")
    strides = _strides(factors)

    def abstract_state(obs: Observation) -> jax.Array:
        return sum(f.value(obs) * s for f, s in zip(factors, strides)).astype(jnp.int32)

    def describe(i: int) -> str:
        said = (f.texts[d] for f, d in zip(factors, _digits(factors, i)))
        return " ".join(t for t in said if t)

    return Guidance(name=name, version=version, num_states=strides[0] * len(factors[0].values),
                    abstract_state=abstract_state, describe=describe, options=options,
                    oracle=None if oracle is None else (
                        lambda i: oracle(factor_values(factors, i))),
                    **guidance)


def _strides(factors: Sequence[Factor]) -> list[int]:
    """Each factor's place value in the index (mixed radix, the first factor slowest)."""
    radix = [len(f.values) for f in factors]
    return [math.prod(radix[i + 1:]) for i in range(len(radix))]


def _digits(factors: Sequence[Factor], index: int) -> list[int]:
    """Each factor's value (its position in `values`) in abstract state `index`."""
    return [index // s % len(f.values) for f, s in zip(factors, _strides(factors))]


def factor_values(factors: Sequence[Factor], index: int) -> dict[str, str]:
    """The factor values (by name) of abstract state `index` of `factored(..., factors)`."""
    return {f.name: f.values[d] for f, d in zip(factors, _digits(factors, index))}
