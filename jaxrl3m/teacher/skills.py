"""Skills `pi_k`: explore, go to an object (key, door, box, ball), pick up, drop, open the door.

Every skill is a pure function of one `Observation` (the remembered map, pose and hands; never the
true state) returning a `SkillOutput`: an action distribution `f32[NUM_ACTIONS]` and whether the
skill applies here. `jax.vmap` them over a batch of environments.

Navigation is a breadth-first search over *poses* `(row, col, direction)`: turning left or right
and moving forward each cost one step, so the path is shortest given the agent's direction. It runs
backwards from the target poses on packed bitboards of the grid interior (a 10x10 grid: two
`uint32` words per direction), so one
search step is a few dozen integer ops whatever the grid holds. The agent walks only on cells it
has seen to be empty or an open door, never through walls, closed doors, keys or lava; the cell in
front of the agent is always in view, so it never steps onto a cell it has not seen.

Applicability ("the skill says so"):
- go to X: X has been seen, a path to a pose facing X exists, and the agent is not facing it yet;
- explore: some unseen cell (or a ball next to one: it can be seen past) can still be faced
  from a reachable pose;
- pick up: facing a key of the wanted kind with empty hands;
- open the door: facing a door that is not open;
- drop: carrying something.
The teacher mixture (`jaxrl3m.teacher.mixture`) renormalises the prior over applicable skills, so
"go to the key" hands over to "pick up the key" once the agent faces the key.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ..envs.observation import next_to
from ..envs.observation import standable as standable_cells
from ..envs.types import (BALL, BOX, DIR_VEC, DOOR, DOOR_CLOSED, DOOR_LOCKED, DOOR_OPEN, DROP,
                          EMPTY, FORWARD, GOAL, KEY, LEFT, NUM_ACTIONS, PICKUP, RIGHT, TOGGLE, UNSEEN,
                          Observation, mission_of)

MAX_GRID = 32
"""Bits per packed word: grids up to 34 columns (32 inside the wall ring)."""


class SkillOutput(struct.PyTreeNode):
    probs: jax.Array  # f32[NUM_ACTIONS]: the skill's action distribution (uniform when not applicable)
    applicable: jax.Array  # bool[]


# ---------------------------------------------------------------------------------------------
# Packed bitboards
# ---------------------------------------------------------------------------------------------
class Packing(NamedTuple):
    """How the interior of an `H x W` grid is packed into `uint32` words.

    Poses are only ever on interior cells (MiniGrid-style grids have a wall ring, and the agent
    stands only on empty cells or open doors), so navigation runs over the `(H-2) x (W-2)`
    interior: `per_word` rows of `width` bits per word, `words` words. A 10x10 grid's 8x8
    interior is two words per direction and target, a fifth of one word per full row.
    """

    height: int
    width: int
    per_word: int
    words: int

    @staticmethod
    def of(h: int, w: int) -> "Packing":
        height, width = h - 2, w - 2
        if width > MAX_GRID or height < 1 or width < 1:
            raise ValueError(f"skills support grids of 3 to {MAX_GRID + 2} columns, got {w}")
        per_word = MAX_GRID // width
        return Packing(height, width, per_word, -(-height // per_word))

    def pack(self, mask: jax.Array) -> jax.Array:
        """`bool[..., H, W]` (whole grid) -> `u32[..., words]` (its interior)."""
        inner = mask[..., 1:-1, 1:-1]
        pad = self.words * self.per_word - self.height
        inner = jnp.pad(inner, [(0, 0)] * (inner.ndim - 2) + [(0, pad), (0, 0)])
        flat = inner.reshape(*inner.shape[:-2], self.words, self.per_word * self.width)
        weights = jnp.left_shift(jnp.uint32(1),
                                 jnp.arange(self.per_word * self.width, dtype=jnp.uint32))
        return jnp.sum(jnp.where(flat, weights, jnp.uint32(0)), axis=-1, dtype=jnp.uint32)

    def _masks(self):
        """Per word: valid cells; valid cells minus the first / last column of each row."""
        valid, no_first, no_last = [], [], []
        for word in range(self.words):
            v = f = l = 0
            for row in range(min(self.per_word, self.height - word * self.per_word)):
                for col in range(self.width):
                    bit = 1 << (row * self.width + col)
                    v |= bit
                    f |= bit if col > 0 else 0
                    l |= bit if col < self.width - 1 else 0
            valid.append(v)
            no_first.append(f)
            no_last.append(l)
        return tuple(np.array(m, dtype=np.uint32) for m in (valid, no_first, no_last))

    def shift_back(self, bits: jax.Array, d: int) -> jax.Array:
        """Cells `p` such that `p + DIR_VEC[d]` is set in `bits` (`u32[..., words]`)."""
        valid, no_first, no_last = self._masks()
        w, top = self.width, self.width * (self.per_word - 1)
        if d == 0:  # east: p + (0, 1)
            return jnp.right_shift(bits, 1) & no_last
        if d == 2:  # west: p + (0, -1)
            return jnp.left_shift(bits, 1) & no_first
        zero = jnp.zeros_like(bits[..., :1])
        first_row = np.uint32((1 << w) - 1)
        if d == 1:  # south: row r takes row r + 1
            nxt = jnp.concatenate([bits[..., 1:], zero], axis=-1)
            out = jnp.left_shift(nxt & first_row, top)
            if self.per_word > 1:
                out |= jnp.right_shift(bits, w)
            return out & valid
        prev = jnp.concatenate([zero, bits[..., :-1]], axis=-1)  # north: row r takes row r - 1
        out = jnp.right_shift(prev, top) & first_row
        if self.per_word > 1:
            out |= jnp.left_shift(bits, w)
        return out & valid

    def bit(self, bits: jax.Array, pos: jax.Array) -> jax.Array:
        """Whether the grid cell `pos` is set in `bits[..., words]` (False off the interior)."""
        r, c = pos[0] - 1, pos[1] - 1
        inside = (r >= 0) & (r < self.height) & (c >= 0) & (c < self.width)
        word = jnp.clip(r, 0, self.height - 1) // self.per_word
        shift = (jnp.clip(r, 0, self.height - 1) % self.per_word) * self.width + \
            jnp.clip(c, 0, self.width - 1)
        value = jnp.right_shift(jnp.take(bits, word, axis=-1), shift.astype(jnp.uint32)) & 1
        return inside & value.astype(bool)


def facing_poses(target: jax.Array) -> jax.Array:
    """`bool[..., H, W]` target cells -> `bool[..., 4, H, W]`: poses whose front cell is one."""
    def back(d):
        dr, dc = (int(x) for x in DIR_VEC[d])
        out = jnp.roll(target, (-dr, -dc), axis=(-2, -1))
        # Cells whose front is off the grid face nothing (undo the wrap-around of roll).
        if dr:
            out = out.at[..., -1 if dr > 0 else 0, :].set(False)
        if dc:
            out = out.at[..., -1 if dc > 0 else 0].set(False)
        return out
    return jnp.stack([back(d) for d in range(4)], axis=-3)


def navigate(standable: jax.Array, targets: jax.Array, pos: jax.Array, direction: jax.Array,
             packing: Packing, max_iters: int):
    """Shortest paths over poses to any target pose, for several targets at once.

    Args:
      standable: `u32[words]`, packed cells the agent may stand on.
      targets: `u32[T, 4, words]`, packed target poses per target (direction-major).
      pos, direction: the agent's pose.
      packing: the grid's `Packing` (static).
      max_iters: bound on the search depth (a static int).

    Returns:
      `(reached, distance, optimal)`: `bool[T]` a target pose is reachable, `i32[T]` its distance in
      actions (0 when the agent already is in a target pose), `bool[T, 3]` which of
      left/right/forward start a shortest path.
    """
    n_targets = targets.shape[0]
    frontier = targets & standable
    visited = frontier
    at_target = packing.bit(frontier[:, direction], pos)
    left, right = (direction + 3) % 4, (direction + 1) % 4
    ahead = pos + jnp.asarray(DIR_VEC)[direction]

    def successors_in(v):
        return jnp.stack([packing.bit(v[:, left], pos), packing.bit(v[:, right], pos),
                          packing.bit(v[:, direction], ahead)], axis=-1)

    def cond(carry):
        it, frontier, _, found, _, _ = carry
        return (it < max_iters) & jnp.any(~found & jnp.any(frontier != 0, axis=(1, 2)))

    def body(carry):
        it, frontier, visited, found, dist, optimal = carry
        turned = jnp.stack([frontier[:, (d + 1) % 4] | frontier[:, (d + 3) % 4] for d in range(4)],
                           axis=1)
        moved = jnp.stack([packing.shift_back(frontier[:, d], d) for d in range(4)], axis=1)
        new = (turned | moved) & standable & ~visited
        now = packing.bit(new[:, direction], pos) & ~found
        optimal = jnp.where(now[:, None], successors_in(visited), optimal)
        dist = jnp.where(now, it + 1, dist)
        return it + 1, new, visited | new, found | now, dist, optimal

    init = (jnp.zeros((), jnp.int32), frontier, visited, at_target,
            jnp.zeros((n_targets,), jnp.int32), jnp.zeros((n_targets, 3), bool))
    _, _, _, found, dist, optimal = jax.lax.while_loop(cond, body, init)
    return found, dist, optimal


# ---------------------------------------------------------------------------------------------
# What the agent knows, as bitboards
# ---------------------------------------------------------------------------------------------
class Knowledge(struct.PyTreeNode):
    """Bitboards of one observation and the navigation results every skill shares."""

    front: jax.Array  # u8[3]: the cell in front of the agent
    door_colour: jax.Array  # i32[]: colour of the first door seen (-1 while unseen)
    reached: jax.Array  # bool[T]
    distance: jax.Array  # i32[T]
    optimal: jax.Array  # bool[T, 3]
    drop_ok: jax.Array  # bool[4]: whether the cells in front, left, right and behind are good
    # drop spots
    drop_free: jax.Array  # bool[4]: whether they are empty (drop spots of the last resort)
    hands_empty: jax.Array  # bool[]
    ball_world: jax.Array  # bool[]: a ball seen or carried (BlockedUnlockPickup's world)
    mission_front: jax.Array  # bool[]: the object in front is the mission's (False: no mission)


# Navigation targets, in order; `go to` skills and explore index into these.
TARGETS = ("unseen", "key", "key of the door's colour", "key of another colour", "door", "box",
           "ball", "unseen or closed door", "locked door", "goal", "object of the mission")


def knowledge(obs: Observation, targets: tuple[int, ...] = tuple(range(len(TARGETS)))
              ) -> Knowledge:
    """What skills need: the front cell, drop spots, and shortest paths to the given targets.

    Only the targets listed (indices into `TARGETS`, static) are searched; the others are reported
    unreachable (so is the object of the mission where the observation has none).
    """
    mission = mission_of(obs)
    if mission is None:
        targets = tuple(t for t in targets if TARGETS[t] != "object of the mission")
    grid = obs.grid
    tag, colour, state = grid[..., 0], grid[..., 1], grid[..., 2]
    h, w = grid.shape[:2]
    door = (tag == DOOR)
    door_seen = door.any()
    door_colour = jnp.where(door_seen, colour.ravel()[jnp.argmax(door.ravel())], -1)
    key = tag == KEY
    matching = key & (colour == door_colour) & door_seen
    other = key & (colour != door_colour) & door_seen
    closed_door = door & (state != DOOR_OPEN)
    packing = Packing.of(*tag.shape)
    standable = packing.pack(standable_cells(grid))
    unseen = tag == UNSEEN
    # A ball can be seen past (MiniGrid's see_behind), and in BlockedUnlockPickup it can hide the
    # door's cell from every pose the agent can stand in: explore also goes to face a ball next to
    # an unseen cell. (Keys and boxes are left out: the DoorKey family's teacher stays as it was,
    # bit for bit.)
    frontier = unseen | ((tag == BALL) & next_to(unseen))
    all_cells = (frontier, key, matching, other, closed_door, tag == BOX, tag == BALL,
                 frontier | (door & (state == DOOR_CLOSED)), door & (state == DOOR_LOCKED),
                 tag == GOAL)
    if TARGETS.index("object of the mission") in targets:  # tasks with a mission (Fetch)
        all_cells += ((tag == mission[0]) & (colour == mission[1]),)
    found = jnp.zeros((len(TARGETS),), bool)
    dist = jnp.zeros((len(TARGETS),), jnp.int32)
    optimal = jnp.zeros((len(TARGETS), 3), bool)
    if targets:  # (skills that walk nowhere, e.g. "pick up ..." alone, need no search)
        target_poses = packing.pack(facing_poses(jnp.stack([all_cells[t] for t in targets])))
        f, d, o = navigate(standable, target_poses, obs.agent_pos, obs.agent_dir, packing,
                           max_iters=4 * tag.size)
        # Scatter back to the full target list (unsearched targets: not reached).
        slots = jnp.asarray(targets)
        found, dist, optimal = found.at[slots].set(f), dist.at[slots].set(d), \
            optimal.at[slots].set(o)

    d = obs.agent_dir
    pos = obs.agent_pos
    vec = jnp.asarray(DIR_VEC)
    cells = jnp.stack([pos + vec[d], pos + vec[(d + 3) % 4], pos + vec[(d + 1) % 4],
                       pos + vec[(d + 2) % 4]])
    cells = jnp.clip(cells, 0, jnp.asarray([h - 1, w - 1]))  # grids need not be square
    # A good drop spot: an empty cell that is not next to a door (a key there would block it).
    ok = (tag == EMPTY) & ~(door | next_to(door))
    drop_ok = ok[cells[:, 0], cells[:, 1]]
    front = grid[cells[0, 0], cells[0, 1]]
    mission_front = jnp.zeros((), bool) if mission is None else (
        (front[0] == mission[0]) & (front[1] == mission[1]))
    return Knowledge(front=front, door_colour=door_colour, reached=found, distance=dist,
                     optimal=optimal, drop_ok=drop_ok,
                     drop_free=(tag == EMPTY)[cells[:, 0], cells[:, 1]],
                     hands_empty=obs.carrying[0] == EMPTY,
                     ball_world=(tag == BALL).any() | (obs.carrying[0] == BALL),
                     mission_front=mission_front)


# ---------------------------------------------------------------------------------------------
# Skills
# ---------------------------------------------------------------------------------------------
_UNIFORM = jnp.full((NUM_ACTIONS,), 1.0 / NUM_ACTIONS)


def _one_hot(action: int | jax.Array) -> jax.Array:
    return jax.nn.one_hot(action, NUM_ACTIONS)


def as_output(probs: jax.Array, applicable: jax.Array) -> SkillOutput:
    """A skill's `SkillOutput`: `probs` where it applies, uniform where it does not."""
    return SkillOutput(probs=jnp.where(applicable, probs, _UNIFORM), applicable=applicable)


def path_output(reached: jax.Array, distance: jax.Array, optimal: jax.Array) -> SkillOutput:
    """A walk along `navigate`'s shortest paths to one target: the actions that start one,
    ties split evenly; it applies where the target can be reached and is not reached yet."""
    probs = jnp.zeros((NUM_ACTIONS,)).at[jnp.array([LEFT, RIGHT, FORWARD])].set(
        optimal.astype(jnp.float32))
    probs = probs / jnp.maximum(probs.sum(), 1.0)
    return as_output(probs, reached & (distance > 0))


def go_to(k: Knowledge, target: int) -> SkillOutput:
    """Shortest path to face `TARGETS[target]`; ties split evenly between actions."""
    return path_output(k.reached[target], k.distance[target], k.optimal[target])


def pick_up(k: Knowledge, which: str) -> SkillOutput:
    """Pick up the key in front (of the wanted kind), or the box or ball, or the object the
    mission names (`which="mission"`), when the hands are empty."""
    if which == "mission":
        return as_output(_one_hot(PICKUP), k.mission_front & k.hands_empty)
    wanted = k.front[0] == {"box": BOX, "ball": BALL}.get(which, KEY)
    if which == "door's colour":
        wanted &= (k.door_colour >= 0) & (k.front[1] == k.door_colour)
    elif which == "another colour":
        wanted &= (k.door_colour >= 0) & (k.front[1] != k.door_colour)
    return as_output(_one_hot(PICKUP), wanted & k.hands_empty)


def open_door(k: Knowledge, locked_only: bool = False) -> SkillOutput:
    """Toggle the door in front when it is not open (`locked_only`: when it is locked)."""
    shut = k.front[2] == DOOR_LOCKED if locked_only else k.front[2] != DOOR_OPEN
    return as_output(_one_hot(TOGGLE), (k.front[0] == DOOR) & shut)


def explore_opening_doors(k: Knowledge) -> SkillOutput:
    """Explore where closed doors hide the unseen (KeyCorridor's rooms): the shortest path to
    face an unseen cell or a closed (not locked) door, and open such a door once faced."""
    facing = (k.front[0] == DOOR) & (k.front[2] == DOOR_CLOSED)
    walk = go_to(k, target=TARGETS.index("unseen or closed door"))
    return as_output(jnp.where(facing, _one_hot(TOGGLE), walk.probs), facing | walk.applicable)


def go_onto_goal(k: Knowledge) -> SkillOutput:
    """Shortest path to face the goal square, then a step onto it (LockedRoom's last skill)."""
    facing = k.front[0] == GOAL
    walk = go_to(k, target=TARGETS.index("goal"))
    return as_output(jnp.where(facing, _one_hot(FORWARD), walk.probs), facing | walk.applicable)


def drop(k: Knowledge) -> SkillOutput:
    """Drop what is carried on a free cell away from the door, turning towards one if needed;
    with no such cell on any side (a corner beside the door, in BlockedUnlockPickup), step
    forward onto a free cell to look for one. That last rule applies where a ball is seen or
    carried: elsewhere (the DoorKey family) the teacher keeps turning there, as it always did,
    so that the family's published figures stay bit for bit (other options take over)."""
    front_ok, left_ok, right_ok, back_ok = k.drop_ok[0], k.drop_ok[1], k.drop_ok[2], k.drop_ok[3]
    stuck = (~(front_ok | left_ok | right_ok | back_ok) & (k.front[0] == EMPTY)
             & k.ball_world)
    action = jnp.where(front_ok, DROP, jnp.where(left_ok, LEFT, jnp.where(
        right_ok, RIGHT, jnp.where(stuck, FORWARD, LEFT))))
    return as_output(_one_hot(action), ~k.hands_empty)


def drop_anywhere(k: Knowledge) -> SkillOutput:
    """`drop`, where every free cell may be next to a door (KeyCorridor's one-cell hallway):
    a cell away from doors first, then any empty cell in front, left, right or behind, else a
    step forward onto the open door or floor in front to find one. The agent stands next to
    the door it just opened, so a key dropped beside it never walls it off from that door."""
    ok, free = k.drop_ok, k.drop_free
    best = jnp.where(ok[0], DROP, jnp.where(ok[1], LEFT, jnp.where(ok[2], RIGHT, jnp.where(
        ok[3], LEFT, -1))))
    last = jnp.where(free[0], DROP, jnp.where(free[1], LEFT, jnp.where(free[2], RIGHT, jnp.where(
        free[3], LEFT, jnp.where(standable_cells(k.front), FORWARD, LEFT)))))
    return as_output(_one_hot(jnp.where(best >= 0, best, last)), ~k.hands_empty)


# name -> function of the shared knowledge. Tasks pick their options from these by name.
SKILLS: dict[str, Callable[[Knowledge], SkillOutput]] = {
    "explore": functools.partial(go_to, target=0),
    "go to the key": functools.partial(go_to, target=1),
    "go to the key of the door's colour": functools.partial(go_to, target=2),
    "go to the key of another colour": functools.partial(go_to, target=3),
    "go to the door": functools.partial(go_to, target=4),
    "pick up the key": functools.partial(pick_up, which="any"),
    "pick up the key of the door's colour": functools.partial(pick_up, which="door's colour"),
    "pick up the key of another colour": functools.partial(pick_up, which="another colour"),
    "open the door": open_door,
    "drop the key": drop,
    "go to the box": functools.partial(go_to, target=5),
    "pick up the box": functools.partial(pick_up, which="box"),
    "go to the ball": functools.partial(go_to, target=6),
    "pick up the ball": functools.partial(pick_up, which="ball"),
    "drop the ball": drop,
    "go to the locked door": functools.partial(go_to, target=8),
    "open the locked door": functools.partial(open_door, locked_only=True),
    "explore, opening closed doors": explore_opening_doors,
    "drop the key anywhere": drop_anywhere,
    "go to the goal": go_onto_goal,
    "go to the object of the mission": functools.partial(go_to, target=10),
    "pick up the object of the mission": functools.partial(pick_up, which="mission"),
}
"""Every skill by its option name (the text the language model reads)."""

_NAV_TARGET = {"explore": 0, "go to the key": 1, "go to the key of the door's colour": 2,
               "go to the key of another colour": 3, "go to the door": 4, "go to the box": 5,
               "go to the ball": 6, "explore, opening closed doors": 7,
               "go to the locked door": 8, "go to the goal": 9,
               "go to the object of the mission": 10}


def skill_outputs(obs: Observation, names: tuple[str, ...],
                  aliases: tuple[tuple[str, str], ...] = ()) -> SkillOutput:
    """All named skills on one observation: `probs f32[K, A]`, `applicable bool[K]`.

    `aliases` maps option names to skills of another name (KeyCorridor's "explore" is
    "explore, opening closed doors")."""
    alias = dict(aliases)
    names = tuple(alias.get(n, n) for n in names)
    unknown = [n for n in names if n not in SKILLS]
    if unknown:
        raise ValueError(f"unknown skill(s) {unknown}; known skills: {sorted(SKILLS)}")
    needed = sorted({_NAV_TARGET[n] for n in names if n in _NAV_TARGET})
    k = knowledge(obs, tuple(needed))
    outs = [SKILLS[n](k) for n in names]
    return SkillOutput(probs=jnp.stack([o.probs for o in outs]),
                       applicable=jnp.stack([o.applicable for o in outs]))
