"""DoorKey, LavaDoorKey, ColoredDoorKey, Unlock, UnlockPickup, BlockedUnlockPickup,
KeyCorridor, LockedRoom and Fetch: one environment class, its configurations.

Rules follow MiniGrid (not NAVIX's defaults, see README "Design rationale"):
- `left`/`right` turn; `forward` moves onto an empty cell, lava or an open door;
- `pickup` takes the key (ball, box) in front only when the hands are empty;
- `drop` puts the carried object on the empty cell in front;
- `toggle` on a locked door opens it only while carrying a key of the door's colour (a key of
  another colour does nothing); on an unlocked door it opens or closes it;
- `toggle` on a box opens it into its contents: nothing here, so the box is gone;
- `done` does nothing.
Opening the door is success ((Blocked)UnlockPickup: picking up the box is; KeyCorridor: the
ball; LockedRoom: stepping onto the goal; Fetch: picking up an object of the mission's kind and
colour): the episode terminates with reward `1 - 0.9 * t / max_steps` (`t` counts this step).
Fetch's episode also terminates, with reward 0, when any other object is picked up. Moving onto lava
terminates with reward 0. At `t == max_steps` the episode is truncated (reward 0) unless it
terminated on that step.

`reset` and `step` are pure functions of one environment; `jax.vmap` them for a batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from . import autoreset, layout as layout_lib
from .observation import empty_memory, update_memory
from .types import (BALL, BOX, DIR_VEC, DOOR, DOOR_CLOSED, DOOR_LOCKED, DOOR_OPEN, DROP, EMPTY,
                    EMPTY_CELL, FORWARD, GOAL, GOAL_CELL, KEY, LAVA, LAVA_CELL, LEFT, NOTHING,
                    NUM_ACTIONS, NUM_COLOURS, PICKUP, RIGHT, TOGGLE, WALL_CELL, EnvState, Layout,
                    MissionEnvState, MissionObservation, Observation, TimeStep)


@dataclasses.dataclass(frozen=True)
class DoorKeyEnv:
    """A DoorKey-family task. Build one with `jaxrl3m.envs.make(name, **keywords)`.

    All fields are static (hashable), so `jax.jit(env.step)` compiles once per configuration.
    """

    name: str
    """The registered task name."""
    n_keys: int = 1
    """Keys in the room; key 0 has the door's colour, the others distinct other colours."""
    n_lava: int = 0
    """Lava cells in the room (never placed where they would cut the agent off)."""
    size: int = 10
    """The grid is `size x size`; the room is drawn inside it (the corridor world's grid is
    `size` wide and its own height: `grid_shape`)."""
    min_room: int = 5
    """Room height and width (outer walls included) are uniform in `[min_room, max_room]`."""
    max_room: int | None = None
    """The largest room side; None: `size` (Unlock: 6)."""
    door_wall: str = "any"
    """Which of the room's walls holds the door: any, or east (Unlock's: then a second room of
    the same size lies behind it, as in MiniGrid, seen once the door opens)."""
    n_boxes: int = 0
    """Boxes in the second room (UnlockPickup: 1), each of a random colour."""
    blocked: bool = False
    """A ball of a random colour on the cell inside the door (MiniGrid's BlockedUnlockPickup):
    the agent must pick it up and put it elsewhere before it can reach the door."""
    goal: str = "open"
    """What ends an episode with success: "open" the door (DoorKey, Unlock), "pickup" a box
    (UnlockPickup: picking up the box; opening the door then earns nothing), "ball": pick up
    the ball (KeyCorridor), "goal": step onto the goal square (LockedRoom), or "fetch": pick
    up an object of the mission's kind and colour (Fetch; picking up another fails)."""
    world: str = "room"
    """The map: "room" (one room, and with door_wall="east" a second behind its door) or
    "corridor": MiniGrid's KeyCorridor, `rows` x 3 rooms of side `room_size` around a hallway
    (`layout_lib.sample_corridor`); `size` is then `3 * (room_size - 1) + 1`; or
    "lockedroom": MiniGrid's LockedRoom, six rooms around a hallway on a 19 x 19 grid
    (`layout_lib.sample_lockedroom`); or "fetch": MiniGrid's Fetch, one walled `size x size`
    room with `n_objects` keys and balls and a mission naming one of them
    (`layout_lib.sample_fetch`)."""
    rows: int = 3
    """Corridor world: rows of rooms (MiniGrid's `num_rows`, the R of KeyCorridorS3R1)."""
    room_size: int = 3
    """Corridor world: side of each room, walls included (the S of KeyCorridorS3R1)."""
    n_objects: int = 3
    """Fetch world: the objects in the room (the N of MiniGrid's Fetch-8x8-N3)."""
    view_size: int = 3
    """Side of the agent's egocentric view (odd, >= 3); MiniGrid's default is 7."""
    fully_observed: bool = False
    """If True the observation grid is the true grid, not the agent's memory."""
    max_steps: int = 150
    """Episodes are truncated after this many steps."""
    layouts: str = "all"
    """Which layouts `reset` draws: all; train (the 7/8 of maps whose `layout_lib.map_hash` is
    not held out; a held-out draw is recoloured onto one, `layout_lib.into_training_map`);
    heldout (the other 1/8, drawn again until one is: exactly uniform over them). Training
    (online and offline datasets) draws `train` layouts and every evaluation `heldout` ones: no
    held-out map is ever trained on, from any start (`layout_lib.SPLIT`)."""

    # -----------------------------------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    @property
    def horizon(self) -> int:
        """The episode time limit (`max_steps`)."""
        return self.max_steps

    @property
    def grid_shape(self) -> tuple[int, int]:
        """`(height, width)`: `size x size`, but the corridor world's is MiniGrid's RoomGrid,
        `rows * (room_size - 1) + 1` high (KeyCorridorS3R1: 3 x 7)."""
        if self.world == "corridor":
            return layout_lib.corridor_shape(self.room_size, self.rows)
        return (self.size, self.size)

    def sample_layout(self, key: jax.Array) -> Layout:
        """A random solvable layout (see `jaxrl3m.envs.layout`) from the `layouts` split."""
        if self.world == "corridor":
            draw = lambda k: layout_lib.sample_corridor(k, self.room_size, self.rows)
        elif self.world == "lockedroom":
            draw = lambda k: layout_lib.sample_lockedroom(k, self.size)
        elif self.world == "fetch":
            draw = lambda k: layout_lib.sample_fetch(k, self.size, self.n_objects)
        else:
            draw = lambda k: layout_lib.sample_layout(k, self.size, self.min_room, self.n_keys,
                                                      self.n_lava, self.max_room, self.door_wall,
                                                      self.n_boxes, self.blocked)
        if self.layouts == "all":
            return draw(key)
        want = self.layouts == "heldout"
        first = draw(key)
        if not want:  # a held-out draw is recoloured: the loop below then (almost) never runs
            first = layout_lib.into_training_map(first)

        def again(carry):
            i, _ = carry
            return i + 1, draw(jax.random.fold_in(key, i))

        return jax.lax.while_loop(lambda c: layout_lib.held_out(c[1]) != want, again,
                                  (jnp.ones((), jnp.int32), first))[1]

    def init_state(self, layout: Layout, key: jax.Array) -> EnvState:
        """The first state of an episode with the given layout; `key` seeds later resets."""
        rows, cols = np.mgrid[0: self.grid_shape[0], 0: self.grid_shape[1]]
        if self.world == "corridor":
            interior = self._corridor_interior()
        elif self.world == "lockedroom":
            interior = self._lockedroom_interior()
        elif self.world == "fetch":
            interior = (rows >= 1) & (rows <= self.size - 2) & (cols >= 1) & (
                cols <= self.size - 2)
        else:
            h, w = layout.room[0], layout.room[1]
            interior = (rows >= 1) & (rows <= h - 2) & (cols >= 1) & (cols <= w - 2)
            if self.door_wall == "east":  # MiniGrid's Unlock: a second room behind the door
                interior |= (rows >= 1) & (rows <= h - 2) & (cols >= w) & (cols <= 2 * w - 3)
        grid = jnp.where(interior[..., None], jnp.asarray(EMPTY_CELL), jnp.asarray(WALL_CELL))
        door = jnp.stack([jnp.uint8(DOOR), layout.door_colour.astype(jnp.uint8),
                          jnp.uint8(DOOR_LOCKED)])
        if self.world != "fetch":  # Fetch's room has no door
            grid = grid.at[layout.door_pos[0], layout.door_pos[1]].set(door)
        closed = jnp.stack([jnp.full_like(layout.closed_door_colour, DOOR),
                            layout.closed_door_colour,
                            jnp.full_like(layout.closed_door_colour, DOOR_CLOSED)],
                           axis=-1).astype(jnp.uint8)
        grid = grid.at[layout.closed_door_pos[:, 0], layout.closed_door_pos[:, 1]].set(closed)
        keys = jnp.stack([jnp.full_like(layout.key_colour, KEY), layout.key_colour,
                          jnp.zeros_like(layout.key_colour)], axis=-1).astype(jnp.uint8)
        grid = grid.at[layout.key_pos[:, 0], layout.key_pos[:, 1]].set(keys)
        grid = grid.at[layout.lava_pos[:, 0], layout.lava_pos[:, 1]].set(jnp.asarray(LAVA_CELL))
        if self.n_boxes:
            boxes = jnp.stack([jnp.full_like(layout.box_colour, BOX), layout.box_colour,
                               jnp.zeros_like(layout.box_colour)], axis=-1).astype(jnp.uint8)
            grid = grid.at[layout.box_pos[:, 0], layout.box_pos[:, 1]].set(boxes)
        grid = grid.at[layout.goal_pos[:, 0], layout.goal_pos[:, 1]].set(
            jnp.asarray(GOAL_CELL))
        if self.blocked or self.world == "corridor":
            balls = jnp.stack([jnp.full_like(layout.ball_colour, BALL), layout.ball_colour,
                               jnp.zeros_like(layout.ball_colour)], axis=-1).astype(jnp.uint8)
            grid = grid.at[layout.ball_pos[:, 0], layout.ball_pos[:, 1]].set(balls)
        if self.world == "fetch":
            objects = jnp.stack([layout.object_tag, layout.object_colour,
                                 jnp.zeros_like(layout.object_tag)], axis=-1).astype(jnp.uint8)
            grid = grid.at[layout.object_pos[:, 0], layout.object_pos[:, 1]].set(objects)
            mission = jnp.concatenate([layout.mission, jnp.zeros((1,), layout.mission.dtype)]
                                      ).astype(jnp.uint8)
        memory = self._observe_memory(jnp.asarray(empty_memory(*self.grid_shape)), grid,
                                      layout.agent_pos, layout.agent_dir)
        fields = dict(key=key, t=jnp.zeros((), jnp.int32), grid=grid,
                      agent_pos=layout.agent_pos.astype(jnp.int32),
                      agent_dir=layout.agent_dir.astype(jnp.int32),
                      carrying=jnp.asarray(NOTHING), memory=memory)
        if self.world == "fetch":
            return MissionEnvState(**fields, mission=mission)
        return EnvState(**fields)

    def _corridor_interior(self) -> np.ndarray:
        """`bool[height, width]`: the corridor world's floor (rooms' interiors and the
        hallway)."""
        s, step = self.room_size, self.room_size - 1
        height, width = self.grid_shape
        rows, cols = np.mgrid[0: height, 0: width]
        floor = (rows % step != 0) & (cols % step != 0)
        hallway = (rows % step == 0) & (rows > 0) & (rows < height - 1) & (cols >= s) & (
            cols <= 2 * s - 3)
        return floor | hallway

    def _lockedroom_interior(self) -> np.ndarray:
        """`bool[size, size]`: LockedRoom's floor (the rooms' interiors and the hallway)."""
        floor = np.zeros((self.size, self.size), bool)
        for (top, left, h, w), _ in layout_lib.lockedroom_rooms(self.size):
            floor[top + 1: top + h - 1, left + 1: left + w - 1] = True
        left_wall, right_wall = layout_lib.lockedroom_hallway(self.size)
        floor[1: self.size - 1, left_wall + 1: right_wall] = True
        return floor

    def _observe_memory(self, memory, grid, agent_pos, agent_dir):
        if self.fully_observed:
            return grid
        return update_memory(memory, grid, agent_pos, agent_dir, self.view_size)

    def observe(self, state: EnvState) -> Observation:
        fields = dict(grid=state.memory, agent_pos=state.agent_pos, agent_dir=state.agent_dir,
                      carrying=state.carrying)
        if self.world == "fetch":
            return MissionObservation(**fields, mission=state.mission)
        return Observation(**fields)

    def _timestep(self, state: EnvState) -> TimeStep:
        obs = self.observe(state)
        return TimeStep(state=state, obs=obs, reward=jnp.zeros((), jnp.float32),
                        terminated=jnp.zeros((), bool), truncated=jnp.zeros((), bool),
                        final_obs=obs)

    def reset(self, key: jax.Array) -> TimeStep:
        """Starts an episode on a fresh random layout."""
        k_layout, k_next = jax.random.split(key)
        return self._timestep(self.init_state(self.sample_layout(k_layout), k_next))

    def reset_to(self, layout: Layout, key: jax.Array | None = None) -> TimeStep:
        """Starts an episode on the given layout (later resets draw random layouts from `key`)."""
        key = jax.random.key(0) if key is None else key
        return self._timestep(self.init_state(layout, key))

    # -----------------------------------------------------------------------------------------
    def transition(self, state: EnvState, action: jax.Array):
        """One step of MiniGrid's rules, without autoreset.

        Returns `(next_state, reward, terminated, truncated)`.
        """
        a = jnp.asarray(action, jnp.int32)
        pos, d = state.agent_pos, state.agent_dir
        fwd = pos + jnp.asarray(DIR_VEC)[d]
        # The agent is always inside the walled room, so `fwd` is inside the grid.
        front = state.grid[fwd[0], fwd[1]]
        tag, colour, door_state = front[0], front[1], front[2]
        hands_empty = state.carrying[0] == EMPTY
        is_door = tag == DOOR

        # Movement and turns.
        walkable = (tag == EMPTY) | (tag == LAVA) | (tag == GOAL) | (is_door & (door_state == DOOR_OPEN))
        moved = (a == FORWARD) & walkable
        new_pos = jnp.where(moved, fwd, pos)
        new_dir = jnp.where(a == LEFT, (d + 3) % 4, jnp.where(a == RIGHT, (d + 1) % 4, d))

        # Objects: pickup (keys, balls, boxes), drop, toggle (doors; a box opens into what it
        # holds, which in these tasks is nothing: MiniGrid's `Box.toggle`).
        picked = (a == PICKUP) & ((tag == KEY) | (tag == BALL) | (tag == BOX)) & hands_empty
        dropped = (a == DROP) & (tag == EMPTY) & ~hands_empty
        toggle_door = (a == TOGGLE) & is_door
        unlocked = toggle_door & (door_state == DOOR_LOCKED) & (state.carrying[0] == KEY) & (
            state.carrying[1] == colour)
        flipped = toggle_door & (door_state != DOOR_LOCKED)
        new_door_state = jnp.where(unlocked, DOOR_OPEN,
                                   jnp.where(flipped, DOOR_OPEN + DOOR_CLOSED - door_state,
                                             door_state)).astype(jnp.uint8)
        opened_box = (a == TOGGLE) & (tag == BOX)
        new_front = jnp.where(picked | opened_box, jnp.asarray(EMPTY_CELL),
                              jnp.where(dropped, state.carrying,
                                        front.at[2].set(new_door_state)))
        grid = state.grid.at[fwd[0], fwd[1]].set(new_front)
        carrying = jnp.where(picked, front, jnp.where(dropped, jnp.asarray(NOTHING),
                                                     state.carrying))

        # Reward, termination, truncation.
        t = state.t + 1
        opened = is_door & (door_state != DOOR_OPEN) & (new_door_state == DOOR_OPEN)
        failed = moved & (tag == LAVA)  # ends the episode with reward 0
        on_goal = moved & (tag == GOAL)
        if self.goal == "pickup":
            success = picked & (tag == BOX)
        elif self.goal == "ball":
            success = picked & (tag == BALL)
        elif self.goal == "goal":
            success = on_goal
        elif self.goal == "fetch":  # MiniGrid's Fetch: anything picked up ends the episode
            success = picked & (tag == state.mission[0]) & (colour == state.mission[1])
            failed = failed | picked
        else:
            success = opened | on_goal
        terminated = success | failed
        truncated = (t >= self.max_steps) & ~terminated
        reward = jnp.where(success, 1.0 - 0.9 * t / self.max_steps, 0.0).astype(jnp.float32)

        memory = self._observe_memory(state.memory, grid, new_pos, new_dir)
        next_state = state.replace(t=t, grid=grid, agent_pos=new_pos, agent_dir=new_dir,
                                   carrying=carrying, memory=memory)
        return next_state, reward, terminated, truncated

    def next_episode(self, state: EnvState) -> EnvState:
        """The first state of the episode that a reset after `state` starts (from its key)."""
        return self.reset(state.key).state

    def step(self, state: EnvState, action: jax.Array) -> TimeStep:
        """Applies `action` and, when the episode ends, starts the next one (see `TimeStep`;
        for a batch, `jaxrl3m.envs.autoreset.batch_step` gives the same and resets only the
        environments whose episode ended)."""
        return autoreset.step(self, state, action)


LAYOUT_SPLITS = ("all", "train", "heldout")
DOOR_WALLS = ("any", "east")
GOALS = ("open", "pickup", "ball", "goal", "fetch")
WORLDS = ("room", "corridor", "lockedroom", "fetch")


def check_keywords(env: DoorKeyEnv) -> None:
    """Raises ValueError naming the keyword and the fix when a configuration cannot work."""
    if env.world not in WORLDS:
        raise ValueError(f"world={env.world!r} is unknown; valid: {', '.join(WORLDS)}")
    if env.world == "corridor":
        if not 1 <= env.rows <= 3:
            raise ValueError(f"rows={env.rows} must be 1, 2 or 3 (MiniGrid's KeyCorridor "
                             f"sizes: S3R1 to S6R3)")
        if env.room_size < 3:
            raise ValueError(f"room_size={env.room_size} must be at least 3 (walls and one "
                             f"interior cell)")
        if env.size != layout_lib.corridor_shape(env.room_size, env.rows)[1]:
            raise ValueError(f"size={env.size} must be 3 * (room_size - 1) + 1 = "
                             f"{3 * (env.room_size - 1) + 1} in the corridor world")
        return _check_rooms_world(env, "the corridor world", "one ball to pick up", "ball")
    if env.world == "lockedroom":
        if env.size != layout_lib.LOCKEDROOM_SIZE:
            raise ValueError(f"size={env.size}: LockedRoom's rooms are laid out for MiniGrid's "
                             f"{layout_lib.LOCKEDROOM_SIZE} x {layout_lib.LOCKEDROOM_SIZE} grid")
        return _check_rooms_world(env, "LockedRoom", "a goal square to reach", "goal")
    if env.world == "fetch":
        if env.goal != "fetch":
            raise ValueError("the Fetch world's goal is goal='fetch' (pick up the mission's "
                             "object)")
        if env.size < 4 or env.size > 32:
            raise ValueError(f"size={env.size} must be between 4 and 32 in the Fetch world")
        if not 1 <= env.n_objects <= (env.size - 2) ** 2 - 1:
            raise ValueError(f"n_objects={env.n_objects} must be between 1 and "
                             f"{(env.size - 2) ** 2 - 1} (the room's cells less the agent's)")
        _check_view(env)
        return
    if env.goal == "fetch":
        raise ValueError("goal='fetch' needs Fetch's objects and mission (world='fetch')")
    if env.n_objects != 3:
        raise ValueError(f"n_objects={env.n_objects}: loose objects are Fetch's "
                         f"(world='fetch'); this task has none")
    if env.goal == "goal":
        raise ValueError("goal='goal' needs LockedRoom's goal square (world='lockedroom')")
    if env.size < 5:
        raise ValueError(f"size={env.size} is too small: the grid needs at least 5x5 cells "
                         "(a room with walls and a 3x3 interior)")
    if not 5 <= env.min_room <= env.size:
        raise ValueError(f"min_room={env.min_room} must be between 5 and size={env.size}")
    if env.max_room is not None and not env.min_room <= env.max_room <= env.size:
        raise ValueError(f"max_room={env.max_room} must be between min_room={env.min_room} and "
                         f"size={env.size}")
    if env.door_wall not in DOOR_WALLS:
        raise ValueError(f"door_wall={env.door_wall!r} is unknown; valid: {', '.join(DOOR_WALLS)}")
    if env.goal not in GOALS:
        raise ValueError(f"goal={env.goal!r} is unknown; valid: {', '.join(GOALS)}")
    if env.n_boxes and env.door_wall != "east":
        raise ValueError(f"n_boxes={env.n_boxes}: boxes go in the second room, which only "
                         f"door_wall='east' has")
    if env.blocked and env.door_wall != "east":
        raise ValueError("blocked=True puts a ball inside the door to the second room, which "
                         "only door_wall='east' has")
    if env.goal == "ball":
        raise ValueError("goal='ball' needs the ball of the corridor world (world='corridor')")
    if env.goal == "pickup" and not env.n_boxes:
        raise ValueError("goal='pickup' needs a box to pick up: set n_boxes=1")
    widest = env.size if env.max_room is None else env.max_room
    if env.door_wall == "east" and env.size < 2 * widest - 1:
        raise ValueError(f"door_wall='east' puts a second room of the same width behind the "
                         f"door: size={env.size} must be at least 2 * max_room - 1 = "
                         f"{2 * widest - 1}")
    _check_view(env)
    if not 1 <= env.n_keys <= NUM_COLOURS:
        raise ValueError(f"n_keys={env.n_keys} must be between 1 and {NUM_COLOURS} "
                         "(keys have distinct colours)")
    if env.n_keys + env.n_lava > 2 and env.min_room < 6:
        raise ValueError(f"{env.n_keys} keys and {env.n_lava} lava cells do not fit reliably in "
                         f"a {env.min_room}x{env.min_room} room: raise min_room to 6 or more")


def _check_rooms_world(env: DoorKeyEnv, world: str, thing: str, goal: str) -> None:
    """The multi-room worlds' objects (one key, `thing` as the goal) and the shared keywords."""
    if env.goal != goal or env.n_keys != 1 or env.n_lava or env.n_boxes or env.blocked:
        raise ValueError(f"{world} has one key, {thing} (goal={goal!r}) and no lava, boxes or "
                         "blocking ball")
    _check_view(env)


def _check_view(env: DoorKeyEnv) -> None:
    """The keywords every world shares: the view, the time limit, the layout split."""
    if env.view_size < 3 or env.view_size % 2 == 0:
        raise ValueError(f"view_size={env.view_size} must be odd and >= 3 (MiniGrid's rule), "
                         "e.g. 3 or 7")
    if env.max_steps < 1:
        raise ValueError(f"max_steps={env.max_steps} must be >= 1")
    if env.layouts not in LAYOUT_SPLITS:
        raise ValueError(f"layouts={env.layouts!r} is unknown; valid: {', '.join(LAYOUT_SPLITS)}")
