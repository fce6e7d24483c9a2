"""Frozen Lake 4x4, not slippery (Gymnasium's map and rules), in pure JAX: a probe where Q* is known.

    env = FrozenLake()
    ts = env.reset(key)                   # the library's TimeStep and autoreset convention
    q_star = value_iteration(env, 0.99)   # f32[16, 4], exact
    describe(3)                           # the text state of cell 3 (what an LLM would read)

The map (S start, F frozen, H hole, G goal)::

    SFFF
    FHFH
    FFFH
    HFFG

Actions are Gymnasium's: 0 left, 1 down, 2 right, 3 up; moving into the edge stays put. Reaching
G gives reward 1 and ends the episode; falling into a hole ends it with 0; `max_steps` truncates.
The observation is the library's `Observation` (the map inside a wall border, holes drawn as lava,
the goal as a goal, the agent's position), so the shared encoders and the value-based algorithms
run on it unchanged; the abstract state is the agent's cell (`cell_index`), the prior a
`jaxrl3m.teacher.teacher.TablePrior` over the 16 cells.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from .types import (EMPTY_CELL, GOAL, LAVA_CELL, NOTHING, WALL_CELL, EnvState, Observation,
                    TimeStep, cell)

MAP = ("SFFF", "FHFH", "FFFH", "HFFG")
SIZE = 4
ACTIONS = ("left", "down", "right", "up")
MOVES = np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], np.int32)  # (d_row, d_col) per action


def _grid() -> np.ndarray:
    """`u8[6, 6, 3]`: the map inside a wall border."""
    grid = np.tile(WALL_CELL, (SIZE + 2, SIZE + 2, 1))
    for r, row in enumerate(MAP):
        for c, ch in enumerate(row):
            grid[r + 1, c + 1] = {"H": LAVA_CELL, "G": cell(GOAL, 1)}.get(ch, EMPTY_CELL)
    return grid


GRID = _grid()
HOLES = np.array([[ch == "H" for ch in row] for row in MAP])
GOAL_CELL = (3, 3)


def cell_index(obs: Observation) -> jax.Array:
    """`i32[]`: the agent's cell `row * 4 + col` (the abstract state) of one observation."""
    return ((obs.agent_pos[0] - 1) * SIZE + obs.agent_pos[1] - 1).astype(jnp.int32)


def describe(index: int) -> str:
    """The text state of a cell: what a language-model prior would be asked about."""
    r, c = divmod(int(index), SIZE)
    return (f"You are on a frozen lake, a 4x4 grid, at row {r}, column {c} (rows and columns "
            f"count from 0 at the top left). Holes are at (1,1), (1,3), (2,3) and (3,0); the "
            f"goal is at (3,3). Actions: left, down, right, up. Which action do you take?")


@dataclasses.dataclass(frozen=True)
class FrozenLake:
    """The environment (hashable: a static argument of jitted code)."""

    max_steps: int = 100
    name: str = "FrozenLake"

    @property
    def num_actions(self) -> int:
        return len(ACTIONS)

    def _obs(self, pos: jax.Array) -> Observation:
        return Observation(grid=jnp.asarray(GRID), agent_pos=pos + 1,
                           agent_dir=jnp.zeros((), jnp.int32), carrying=jnp.asarray(NOTHING))

    def _state(self, key: jax.Array, t: jax.Array, pos: jax.Array) -> EnvState:
        grid = jnp.asarray(GRID)
        return EnvState(key=key, t=t, grid=grid, agent_pos=pos + 1,
                        agent_dir=jnp.zeros((), jnp.int32), carrying=jnp.asarray(NOTHING),
                        memory=grid)

    def reset(self, key: jax.Array) -> TimeStep:
        pos = jnp.zeros((2,), jnp.int32)
        obs = self._obs(pos)
        return TimeStep(state=self._state(key, jnp.zeros((), jnp.int32), pos), obs=obs,
                        reward=jnp.zeros(()), terminated=jnp.zeros((), bool),
                        truncated=jnp.zeros((), bool), final_obs=obs)

    def step(self, state: EnvState, action: jax.Array) -> TimeStep:
        pos = jnp.clip(state.agent_pos - 1 + jnp.asarray(MOVES)[action], 0, SIZE - 1)
        t = state.t + 1
        hole = jnp.asarray(HOLES)[pos[0], pos[1]]
        goal = (pos[0] == GOAL_CELL[0]) & (pos[1] == GOAL_CELL[1])
        terminated = hole | goal
        truncated = ~terminated & (t >= self.max_steps)
        done = terminated | truncated
        final_obs = self._obs(pos)
        fresh = self.reset(state.key)
        new_pos = jnp.where(done, 0, pos)
        return TimeStep(state=self._state(state.key, jnp.where(done, 0, t), new_pos),
                        obs=jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh.obs,
                                         self._obs(new_pos)),
                        reward=goal.astype(jnp.float32), terminated=terminated,
                        truncated=truncated, final_obs=final_obs)


def transitions() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(next_cell i32[16, 4], reward f32[16, 4], terminal bool[16])` of the deterministic map."""
    nxt = np.zeros((SIZE * SIZE, 4), np.int32)
    rew = np.zeros((SIZE * SIZE, 4), np.float32)
    for s in range(SIZE * SIZE):
        r, c = divmod(s, SIZE)
        for a, (dr, dc) in enumerate(MOVES):
            nr, nc = min(max(r + dr, 0), SIZE - 1), min(max(c + dc, 0), SIZE - 1)
            nxt[s, a] = nr * SIZE + nc
            rew[s, a] = float((nr, nc) == GOAL_CELL)
    terminal = HOLES.reshape(-1) | (np.arange(SIZE * SIZE) == GOAL_CELL[0] * SIZE + GOAL_CELL[1])
    return nxt, rew, terminal


def value_iteration(gamma: float, allowed: np.ndarray | None = None, iters: int = 200
                    ) -> np.ndarray:
    """`f32[16, 4]`: Q* of the map (terminal cells' values are 0). `allowed` (`bool[16, 4]`)
    restricts the max to those actions, giving the fixed point of a learner that can only
    choose among them (a prior's support)."""
    nxt, rew, terminal = transitions()
    q = np.zeros((SIZE * SIZE, 4))
    mask = np.ones_like(q, bool) if allowed is None else np.asarray(allowed, bool)
    for _ in range(iters):
        v = np.where(mask, q, -np.inf).max(axis=1)
        v = np.where(terminal, 0.0, v)
        q = rew + gamma * np.where(terminal[nxt], 0.0, v[nxt])
        q[terminal] = 0.0
    return q.astype(np.float32)


def soft_value_iteration(gamma: float, log_prior: np.ndarray, tau: float, iters: int = 500
                         ) -> np.ndarray:
    """`f32[16, 4]`: the fixed point of DQN-Prior's exact (k -> infinity) target,
    `Q(s, a) = r + gamma * tau * logsumexp_a'(log p(a'|s') + Q(s', a') / tau)` (0 after a terminal
    cell), for a prior `log_prior` (`f32[16, 4]`, floored: finite)."""
    nxt, rew, terminal = transitions()
    q = np.zeros((SIZE * SIZE, 4))
    for _ in range(iters):
        z = log_prior + q / tau
        m = z.max(axis=1, keepdims=True)
        v = tau * (m[:, 0] + np.log(np.exp(z - m).sum(axis=1)))
        v = np.where(terminal, 0.0, v)
        q = rew + gamma * v[nxt]
        q[terminal] = 0.0
    return q.astype(np.float32)
