"""Test helpers: hand-built layouts, an independent shortest-path solver, a MiniGrid reference."""

from __future__ import annotations

from collections import deque

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl3m.core import collector
from jaxrl3m.envs import Layout
from jaxrl3m.envs.types import (DIR_VEC, DOOR, EAST, EMPTY, FORWARD, KEY, LEFT, PICKUP, RIGHT,
                                TOGGLE)


# The suite's tiny guided-PPO run (DoorKey, oracle teacher, 2 seeds, 10 updates in chunks of
# 5, 8 held-out episodes every 5 updates, 16 at the end): the files that train through the command use it as it is (test_ppo,
# test_core, test_parallel), so its programs compile once per run of the suite (the persistent
# compilation cache is shared by the suite's processes). Settings a test varies come after it.
TINY_RUN = ["configs/DoorKey-oracle.yaml", "seeds=2", "num_envs=8", "num_steps=8",
            "num_minibatches=2", "update_epochs=2", "hidden=[16]", "window=5",
            "total_steps=640", "log_every=5", "eval_episodes=16", "eval_every=5",
            "curve_episodes=8", "--no-progress"]
TINY_RUN_UPDATES, TINY_RUN_CHUNK = 10, 5


def random_observations(env, n: int, steps: int, seed: int):
    """The observations of `n` environments over `steps` uniformly random actions (reset with
    key `seed`, acting with key `seed + 1`), flattened to `[steps * n]`; one program."""
    _, tr = jax.jit(lambda k: collector.rollout(env, collector.Random(7), None,
                                                collector.reset(env, k, n),
                                                jax.random.key(seed + 1), steps))(
        jax.random.key(seed))
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), tr.obs)


def make_layout(room=(10, 10), door=(0, 3), door_colour=0, keys=((2, 2),), key_colours=None,
                lava=(), agent=(1, 1), agent_dir=EAST) -> Layout:
    """A Layout from plain Python values (positions are (row, col))."""
    if key_colours is None:
        key_colours = [door_colour] + [(door_colour + 1 + i) % 6 for i in range(len(keys) - 1)]
    return Layout(
        room=jnp.asarray(room, jnp.int32), door_pos=jnp.asarray(door, jnp.int32),
        door_colour=jnp.asarray(door_colour, jnp.int32),
        key_pos=jnp.asarray(keys, jnp.int32).reshape(-1, 2),
        key_colour=jnp.asarray(key_colours, jnp.int32),
        lava_pos=jnp.asarray(lava, jnp.int32).reshape(-1, 2),
        agent_pos=jnp.asarray(agent, jnp.int32), agent_dir=jnp.asarray(agent_dir, jnp.int32))


# ---------------------------------------------------------------------------------------------
# Solver: breadth-first search over (row, col, direction), written independently of the env.
# ---------------------------------------------------------------------------------------------
def _bfs_to_face(grid_tag: np.ndarray, start: tuple[int, int, int], target: tuple[int, int]):
    """Shortest action list (left/right/forward over empty cells) to face `target`."""
    prev = {start: None}
    queue = deque([start])
    while queue:
        s = queue.popleft()
        r, c, d = s
        if (r + DIR_VEC[d][0], c + DIR_VEC[d][1]) == tuple(target):
            actions = []
            while prev[s] is not None:
                s, a = prev[s]
                actions.append(a)
            return actions[::-1], (r, c, d)
        nr, nc = r + DIR_VEC[d][0], c + DIR_VEC[d][1]
        moves = [(LEFT, (r, c, (d + 3) % 4)), (RIGHT, (r, c, (d + 1) % 4))]
        if grid_tag[nr, nc] == EMPTY:
            moves.append((FORWARD, (nr, nc, d)))
        for a, n in moves:
            if n not in prev:
                prev[n] = (s, a)
                queue.append(n)
    return None, None


def solve(grid: np.ndarray, agent_pos, agent_dir) -> list[int] | None:
    """Shortest plan that picks up the key of the door's colour and opens the door.

    Walls, keys, lava and the closed door are obstacles for walking; returns None if unsolvable.
    """
    tag, colour = grid[..., 0].copy(), grid[..., 1]
    door = tuple(np.argwhere(tag == DOOR)[0])
    matching = [tuple(p) for p in np.argwhere((tag == KEY) & (colour == colour[door]))]
    assert len(matching) == 1, "exactly one key of the door's colour"
    start = (int(agent_pos[0]), int(agent_pos[1]), int(agent_dir))
    to_key, pose = _bfs_to_face(tag, start, matching[0])
    if to_key is None:
        return None
    tag[matching[0]] = EMPTY  # picked up
    to_door, _ = _bfs_to_face(tag, pose, door)
    if to_door is None:
        return None
    return to_key + [PICKUP] + to_door + [TOGGLE]


# ---------------------------------------------------------------------------------------------
# MiniGrid reference: the same layout, MiniGrid's own rules, "door opened" as success.
# ---------------------------------------------------------------------------------------------
def minigrid_env(layout: Layout, size=10, max_steps=150, view_size=3):
    from minigrid.core.constants import IDX_TO_COLOR
    from minigrid.core.grid import Grid
    from minigrid.core.mission import MissionSpace
    from minigrid.core.world_object import Door, Key, Lava, Wall
    from minigrid.minigrid_env import MiniGridEnv

    lay = {k: np.asarray(v) for k, v in vars(layout).items()}

    class RefDoorKey(MiniGridEnv):
        def __init__(self):
            super().__init__(mission_space=MissionSpace(mission_func=lambda: "open the door"),
                             width=size, height=size, max_steps=max_steps,
                             see_through_walls=False, agent_view_size=view_size)

        def _gen_grid(self, width, height):
            self.grid = Grid(width, height)
            h, w = lay["room"]
            for r in range(height):
                for c in range(width):
                    if not (1 <= r <= h - 2 and 1 <= c <= w - 2):
                        self.grid.set(c, r, Wall())
            dr, dc = lay["door_pos"]
            self.door = Door(IDX_TO_COLOR[int(lay["door_colour"])], is_locked=True)
            self.grid.set(int(dc), int(dr), self.door)
            for (r, c), col in zip(lay["key_pos"], lay["key_colour"]):
                self.grid.set(int(c), int(r), Key(IDX_TO_COLOR[int(col)]))
            for r, c in lay["lava_pos"]:
                self.grid.set(int(c), int(r), Lava())
            self.agent_pos = (int(lay["agent_pos"][1]), int(lay["agent_pos"][0]))
            self.agent_dir = int(lay["agent_dir"])
            self.mission = "open the door"

        def step(self, action):
            was_open = self.door.is_open
            obs, reward, terminated, truncated, info = super().step(action)
            if self.door.is_open and not was_open:  # jaxrl3m's success: opening the door
                terminated, reward = True, self._reward()
            return obs, reward, terminated, truncated, info

    return RefDoorKey()


def carried_code(env) -> tuple[int, int, int]:
    return tuple(int(x) for x in env.carrying.encode()) if env.carrying else (EMPTY, 0, 0)


# ---------------------------------------------------------------------------------------------
# Resume through the driver, for every algorithm's run
# ---------------------------------------------------------------------------------------------
def resume_equals_uninterrupted(full, keys: tuple[str, ...], stop_after: int):
    """The run in folder `full` again, from its `config.yaml`, as `stopped` beside it: stopped
    after `stop_after` updates (a chunk boundary), then resumed. Asserts that its `metrics.csv`
    holds the uninterrupted run's `keys`, row for row, bit for bit (NaN equal to NaN). Returns
    the stopped run's folder and the resumed run's summary."""
    from jaxrl3m.core import metrics as curves
    from jaxrl3m.runner import driver, runs
    config, run = runs.load_config(str(full / "config.yaml"), {"name": "stopped"})
    stopped, run = runs.create_run(config, run)
    assert driver.train_run(config, run, stopped, progress=False, stop_after=stop_after) is None
    summary = driver.train_run(config, run, stopped, progress=False, resume=True)
    a, b = curves.read_csv(full / "metrics.csv"), curves.read_csv(stopped / "metrics.csv")
    table = lambda rows: np.array([[r[k] for k in keys] for r in rows], dtype=float)  # noqa: E731
    assert len(a) == len(b) and np.array_equal(table(a), table(b), equal_nan=True), (keys, a, b)
    return stopped, summary
