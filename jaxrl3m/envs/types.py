"""Codes, constants and pytree types shared by every jaxrl3m task.

Cells are encoded as MiniGrid does, `(tag, colour, state)` in `uint8`, with NAVIX's names for the
codes: tags are `navix.entities.EntityIds` (which equal MiniGrid's `OBJECT_TO_IDX`), colours are
`navix.rendering.registry.PALETTE` (MiniGrid's `COLOR_TO_IDX`), written out here so that importing
jaxrl3m does not import NAVIX (seconds per command; a test checks them against NAVIX's), door
states are MiniGrid's
(`0` open, `1` closed, `2` locked). Positions are `(row, col)` and directions are NAVIX's and
MiniGrid's (`0` east, `1` south, `2` west, `3` north).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

# ---------------------------------------------------------------------------------------------
# Cell codes (plain Python ints, so they are static under jit).
# ---------------------------------------------------------------------------------------------
UNSEEN = 0  # a cell the agent has never seen (EntityIds.UNKNOWN)
EMPTY = 1  # EntityIds.FLOOR
WALL = 2
DOOR = 4
KEY = 5
BALL = 6
BOX = 7
GOAL = 8
LAVA = 9
AGENT = 10  # EntityIds.PLAYER

TAG_NAMES = {UNSEEN: "unseen", EMPTY: "empty", WALL: "wall", DOOR: "door", KEY: "key",
             BALL: "ball", BOX: "box", GOAL: "goal", LAVA: "lava", AGENT: "agent"}

RED, GREEN, BLUE, PURPLE, YELLOW, GREY = range(6)  # navix PALETTE, MiniGrid COLOR_TO_IDX
COLOUR_NAMES = ("red", "green", "blue", "purple", "yellow", "grey")
NUM_COLOURS = len(COLOUR_NAMES)

DOOR_OPEN, DOOR_CLOSED, DOOR_LOCKED = 0, 1, 2

# MiniGrid's seven actions.
LEFT, RIGHT, FORWARD, PICKUP, DROP, TOGGLE, DONE = range(7)
ACTION_NAMES = ("left", "right", "forward", "pickup", "drop", "toggle", "done")
NUM_ACTIONS = len(ACTION_NAMES)

EAST, SOUTH, WEST, NORTH = range(4)
# (d_row, d_col) of one step forward, per direction.
DIR_VEC = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]], dtype=np.int32)

# Encodings of whole cells, `u8[3]`.
EMPTY_CELL = np.array([EMPTY, 0, 0], dtype=np.uint8)
WALL_CELL = np.array([WALL, GREY, 0], dtype=np.uint8)
UNSEEN_CELL = np.array([UNSEEN, 0, 0], dtype=np.uint8)
LAVA_CELL = np.array([LAVA, RED, 0], dtype=np.uint8)  # MiniGrid's lava is red
GOAL_CELL = np.array([GOAL, GREEN, 0], dtype=np.uint8)  # MiniGrid's goal is green
# What `carrying` holds when the agent's hands are empty: the encoding of an empty cell.
NOTHING = EMPTY_CELL


def cell(tag: int, colour: int = 0, state: int = 0) -> np.ndarray:
    """The `u8[3]` encoding of one cell."""
    return np.array([tag, colour, state], dtype=np.uint8)


# ---------------------------------------------------------------------------------------------
# Pytrees
# ---------------------------------------------------------------------------------------------
class Layout(struct.PyTreeNode):
    """Everything random about an episode's start: where the room, door, keys, lava, boxes, balls,
    other doors and the agent are.

    `reset` samples one; tests and the MiniGrid parity check build them by hand. Keys are ordered:
    key 0 always has the door's colour. Shapes are for one environment (add a leading batch axis
    when vmapped).
    """

    room: jax.Array  # i32[2]: (height, width) of the room, outer walls included; anchored at (0, 0)
    door_pos: jax.Array  # i32[2]: a non-corner cell of the room's wall
    door_colour: jax.Array  # i32[]
    key_pos: jax.Array  # i32[K, 2]
    key_colour: jax.Array  # i32[K]; key_colour[0] == door_colour
    lava_pos: jax.Array  # i32[L, 2] (L = 0 for tasks without lava)
    agent_pos: jax.Array  # i32[2]
    agent_dir: jax.Array  # i32[]
    # Boxes (UnlockPickup's, in the room behind the door; B = 0 for the other tasks).
    box_pos: jax.Array = struct.field(default_factory=lambda: np.zeros((0, 2), np.int32))
    box_colour: jax.Array = struct.field(default_factory=lambda: np.zeros((0,), np.int32))
    # Balls (BlockedUnlockPickup's, on the cell inside the door; N = 0 for the other tasks).
    ball_pos: jax.Array = struct.field(default_factory=lambda: np.zeros((0, 2), np.int32))
    ball_colour: jax.Array = struct.field(default_factory=lambda: np.zeros((0,), np.int32))
    # Closed, unlocked doors (KeyCorridor's, between its rooms; D = 0 for the other tasks), each
    # of a colour other than the locked door's.
    closed_door_pos: jax.Array = struct.field(
        default_factory=lambda: np.zeros((0, 2), np.int32))
    closed_door_colour: jax.Array = struct.field(
        default_factory=lambda: np.zeros((0,), np.int32))
    # Goal squares (LockedRoom's, inside the locked room; G = 0 for the other tasks).
    goal_pos: jax.Array = struct.field(default_factory=lambda: np.zeros((0, 2), np.int32))
    # Loose objects of any kind (Fetch's keys and balls; M = 0 for the other tasks): their
    # cells, tags (KEY, BALL) and colours.
    object_pos: jax.Array = struct.field(default_factory=lambda: np.zeros((0, 2), np.int32))
    object_tag: jax.Array = struct.field(default_factory=lambda: np.zeros((0,), np.int32))
    object_colour: jax.Array = struct.field(default_factory=lambda: np.zeros((0,), np.int32))
    # The mission's object, `(tag, colour)` (Fetch: "fetch a red key"; shape (0,) for the
    # tasks without a mission).
    mission: jax.Array = struct.field(default_factory=lambda: np.zeros((0,), np.int32))


class EnvState(struct.PyTreeNode):
    """The true state of one environment (hidden from the agent, which sees `Observation`)."""

    key: jax.Array  # PRNG key used for the next automatic reset
    t: jax.Array  # i32[]: steps taken in this episode
    grid: jax.Array  # u8[H, W, 3]: true cells (the agent is not drawn in it)
    agent_pos: jax.Array  # i32[2]: (row, col)
    agent_dir: jax.Array  # i32[]: 0 east, 1 south, 2 west, 3 north
    carrying: jax.Array  # u8[3]: encoding of the carried object, NOTHING when hands are empty
    memory: jax.Array  # u8[H, W, 3]: the last seen content of every cell, UNSEEN where never seen


class MissionEnvState(EnvState):
    """The state of a task with a mission (Fetch). Its own class, so that the other tasks'
    states (and their checkpoints) are exactly as they were."""

    mission: jax.Array  # u8[3]: the mission's object, `(tag, colour, 0)`


class Observation(struct.PyTreeNode):
    """What the agent observes: its remembered map plus its own pose and hands.

    `grid` holds, for every cell, what the agent saw there the last time it was in view
    (MiniGrid `(tag, colour, state)` codes; `UNSEEN` = 0 where never seen). With
    `fully_observed=True` it is the true grid.
    """

    grid: jax.Array  # u8[H, W, 3]
    agent_pos: jax.Array  # i32[2]
    agent_dir: jax.Array  # i32[]
    carrying: jax.Array  # u8[3]


class MissionObservation(Observation):
    """The observation of a task with a mission (Fetch): an `Observation` plus `mission`,
    `u8[3]`, the encoding `(tag, colour, 0)` of the object the mission names ("fetch a red
    key": `(KEY, RED, 0)`), which MiniGrid gives as text. The other tasks' observations (and
    their checkpoints) are unchanged; read it with `mission_of`."""

    mission: jax.Array


def mission_of(x) -> jax.Array | None:
    """The mission of an observation or state (`u8[..., 3]`), None for tasks without one."""
    return getattr(x, "mission", None)


class TimeStep(struct.PyTreeNode):
    """What `reset` and `step` return.

    Autoreset convention (one for the whole library): when a step ends an episode
    (`terminated | truncated`), the same call already starts the next one. `state` and `obs` are
    then the new episode's first state and observation, while `reward`, `terminated` and
    `truncated` describe the transition that just ended, and `final_obs` is the observation of
    the state the episode ended in (use it to bootstrap values at truncation). When the episode
    continues, `final_obs` equals `obs`.
    """

    state: EnvState
    obs: Observation
    reward: jax.Array  # f32[]
    terminated: jax.Array  # bool[]: the episode reached an absorbing state (success or lava)
    truncated: jax.Array  # bool[]: the time limit cut the episode (and it did not terminate)
    final_obs: Observation

    @property
    def done(self) -> jax.Array:
        return jnp.logical_or(self.terminated, self.truncated)
