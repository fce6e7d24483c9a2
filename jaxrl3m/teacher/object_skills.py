"""Skills parameterised by object, named in words: BabyAI's bot subgoals for your own tasks.

The library's named skills (`jaxrl3m.teacher.skills.SKILLS`) are the ones its tasks' tables were
computed for, each a fixed target ("go to the key of the door's colour"). A task of yours can
instead name its options in a small grammar and pass `object_skills` as its guidance's `skills`:

    explore                               (walk to see unseen cells, opening closed doors)
    go next to the [colour] <object>      (face it: key, ball, box or door; the goal square
                                           it steps onto; "go to the ..." says the same)
    pick up the [colour] <object>         (key, ball or box, in front, hands empty)
    open the [colour] door                (toggle the door in front: closed, or locked with
                                           its key in hand)
    go through the [colour] door          (walk to it, open it, step onto it and off it)
    drop [anything]                       (put down what is carried, away from doors if it can)

Colours are MiniGrid's (red, green, blue, purple, yellow, grey); without one, any colour. Every
skill is a pure function of one `Observation` (what the agent has seen, never the true state)
returning a `SkillOutput`, built on the same pose search as the library's skills. Each option's
name is parsed once, when the teacher is traced; an unknown name fails then with the grammar.

Skills have no memory (the teacher mixes them per step, `pi_L(a|s) = sum_k P_L(k|c(s))
pi_k(a|s)`), so "go through" knows it is done by what it sees: it stops applying once the agent
stands just past a door of its colour with its back to it. Hence it also does not apply from a
pose with such a door directly behind, gone through or not; the table's next option takes over.

    from jaxrl3m.teacher.object_skills import object_skills
    Guidance(..., options=("explore", "go next to the yellow key", "pick up the yellow key",
                           "go through the yellow door", "go next to the goal"),
             skills=object_skills)
"""

from __future__ import annotations

import functools
import re
from typing import Callable

import jax
import jax.numpy as jnp

from ..envs.types import (BALL, BOX, COLOUR_NAMES, DOOR, DOOR_CLOSED, DOOR_LOCKED,
                          DOOR_OPEN, EMPTY, FORWARD, GOAL, KEY, NUM_ACTIONS, PICKUP, TOGGLE,
                          UNSEEN, Observation)
from ..envs.observation import cell_ahead, cells_of, is_object, standable
from . import skills as library

OBJECTS = {"key": KEY, "ball": BALL, "box": BOX, "door": DOOR, "goal": GOAL}
"""The objects a name may give, by word."""

GRAMMAR = ("explore", "go next to the [colour] <object>", "go to the [colour] <object>",
           "pick up the [colour] <key|ball|box>", "open the [colour] door",
           "go through the [colour] door", "drop [...]")
"""The option names `parse` reads ([colour]: one of COLOUR_NAMES, or none: any colour)."""

Skill = Callable[[Observation], library.SkillOutput]


def _one_hot(action) -> jax.Array:
    return jax.nn.one_hot(action, NUM_ACTIONS)


def walk_to(obs: Observation, cells: jax.Array) -> library.SkillOutput:
    """The shortest path to a pose facing one of `cells` (`bool[H, W]`); ties split evenly.
    Applies when such a pose is reachable over seen floor and open doors and the agent is not
    in one yet."""
    packing = library.Packing.of(*obs.grid.shape[:2])
    targets = packing.pack(library.facing_poses(cells[None]))
    found, dist, optimal = library.navigate(packing.pack(standable(obs.grid)), targets,
                                            obs.agent_pos, obs.agent_dir, packing,
                                            max_iters=4 * obs.grid[..., 0].size)
    return library.path_output(found[0], dist[0], optimal[0])


def _key_fits(obs: Observation, door_colour: jax.Array) -> jax.Array:
    """Whether the agent carries the key of doors of `door_colour` (any shape)."""
    return (obs.carrying[0] == KEY) & (obs.carrying[1] == door_colour)


def _can_open(obs: Observation, door_cells: jax.Array) -> jax.Array:
    """`bool[H, W]`: doors among `door_cells` the agent can open or pass: open or closed ones,
    and locked ones whose key (same colour) it carries."""
    grid = obs.grid
    return door_cells & ((grid[..., 2] != DOOR_LOCKED) | _key_fits(obs, grid[..., 1]))


def go_next_to(obs: Observation, tag: int, colour: int | None = None) -> library.SkillOutput:
    """Face the nearest seen object of the kind (the cell in front of the agent). The goal
    square is entered, not faced: facing it, the skill steps onto it."""
    walk = walk_to(obs, cells_of(obs, tag, colour))
    if tag != GOAL:
        return walk
    facing = is_object(cell_ahead(obs, 1), GOAL, colour)
    return library.as_output(jnp.where(facing, _one_hot(FORWARD), walk.probs),
                             facing | walk.applicable)


def pick_up(obs: Observation, tag: int, colour: int | None = None) -> library.SkillOutput:
    """Pick up the object in front when it is of the kind and the hands are empty."""
    return library.as_output(_one_hot(PICKUP), is_object(cell_ahead(obs, 1), tag, colour)
                             & (obs.carrying[0] == EMPTY))


def open_door(obs: Observation, colour: int | None = None) -> library.SkillOutput:
    """Toggle the door in front when it is closed, or locked with its key in hand."""
    front = cell_ahead(obs, 1)
    shut = (front[2] == DOOR_CLOSED) | ((front[2] == DOOR_LOCKED) & _key_fits(obs, front[1]))
    return library.as_output(_one_hot(TOGGLE), is_object(front, DOOR, colour) & shut)


def _passable(cell: jax.Array) -> jax.Array:
    """Whether the agent may walk onto the cell as far as it knows (unseen cells included)."""
    return standable(cell) | (cell[0] == UNSEEN) | (cell[0] == GOAL)


def go_through(obs: Observation, colour: int | None = None) -> library.SkillOutput:
    """Walk to a door of the colour that can be passed, open it, step onto it and off it.
    Done (not applicable) once the agent stands past such a door with its back to it; not
    applicable either where the cell past the door is seen to be taken (an object inside it)."""
    front, under, behind = cell_ahead(obs, 1), cell_ahead(obs, 0), cell_ahead(obs, -1)
    on_door = is_object(under, DOOR, colour)
    done = is_object(behind, DOOR, colour) & (behind[2] == DOOR_OPEN) & ~on_door
    facing = is_object(front, DOOR, colour)
    opening = open_door(obs, colour)
    enter = facing & (front[2] == DOOR_OPEN) & _passable(cell_ahead(obs, 2))
    walk = walk_to(obs, _can_open(obs, cells_of(obs, DOOR, colour)))
    action = jnp.where(on_door | enter, FORWARD, TOGGLE)
    probs = jnp.where(on_door | enter | opening.applicable, _one_hot(action), walk.probs)
    # On the door, on through it the way the agent faces (it walked on facing that way).
    applicable = jnp.where(on_door, _passable(front),
                           ~done & (walk.applicable | enter | opening.applicable))
    return library.as_output(probs, applicable)


def explore(obs: Observation) -> library.SkillOutput:
    """The library's "explore, opening closed doors": face an unseen cell or a closed door,
    and open such a door once faced."""
    k = library.knowledge(obs, (library.TARGETS.index("unseen or closed door"),))
    return library.explore_opening_doors(k)


def drop(obs: Observation) -> library.SkillOutput:
    """The library's "drop the key anywhere": put down what is carried, away from doors where a
    free cell allows (it applies to whatever is carried)."""
    return library.drop_anywhere(library.knowledge(obs, ()))


_COLOUR = "(?:(" + "|".join(COLOUR_NAMES) + ") )?"
_PATTERNS = (
    (re.compile(r"explore"), lambda: explore),
    (re.compile(rf"go (?:next )?to the {_COLOUR}(key|ball|box|door|goal)"),
     lambda c, o: functools.partial(go_next_to, tag=OBJECTS[o], colour=c)),
    (re.compile(rf"pick up the {_COLOUR}(key|ball|box)"),
     lambda c, o: functools.partial(pick_up, tag=OBJECTS[o], colour=c)),
    (re.compile(rf"open the {_COLOUR}door"), lambda c: functools.partial(open_door, colour=c)),
    (re.compile(rf"go through the {_COLOUR}door"),
     lambda c: functools.partial(go_through, colour=c)),
    (re.compile(r"drop(?: .*)?"), lambda: drop),
)


def parse(option: str) -> Skill:
    """The skill an option's name asks for (see the module's grammar); ValueError otherwise."""
    text = " ".join(option.lower().split())
    for pattern, build in _PATTERNS:
        m = pattern.fullmatch(text)
        if m:
            groups = [COLOUR_NAMES.index(g) if g in COLOUR_NAMES else g for g in m.groups()]
            return build(*groups)
    raise ValueError(f"option {option!r} is not a skill of jaxrl3m.teacher.object_skills; "
                     f"names it reads: {'; '.join(GRAMMAR)} (colours: {', '.join(COLOUR_NAMES)})")


def object_skills(obs: Observation, options: tuple[str, ...]) -> library.SkillOutput:
    """Every option's skill on one observation (`probs f32[K, A]`, `applicable bool[K]`): a
    guidance's `skills` function for options named in this module's grammar."""
    outs = [parse(name)(obs) for name in options]
    return library.SkillOutput(probs=jnp.stack([o.probs for o in outs]),
                               applicable=jnp.stack([o.applicable for o in outs]))
