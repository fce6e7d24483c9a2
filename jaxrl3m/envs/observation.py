"""The agent's egocentric view, MiniGrid's occlusion rule and the remembered map.

The view is MiniGrid's: a `v x v` square (`v` odd) in front of the agent, the agent in the middle
of its back row. View cell `(y, x)` (row `y = 0` farthest, column `x` from the agent's left) lies
`v - 1 - y` cells ahead and `x - v // 2` cells to the right of the agent. Visibility follows
MiniGrid's `Grid.process_vis` exactly (walls and closed doors block what is behind them); a test
checks it against MiniGrid cell by cell. Visible cells overwrite the agent's memory of the grid.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .types import DIR_VEC, DOOR, DOOR_OPEN, EMPTY, UNSEEN_CELL, WALL, WALL_CELL


def view_coordinates(agent_pos: jax.Array, agent_dir: jax.Array, view_size: int) -> jax.Array:
    """`i32[v, v, 2]`: the world `(row, col)` of every view cell (possibly outside the grid)."""
    ahead = jnp.arange(view_size - 1, -1, -1)[:, None, None]  # row y is v-1-y cells ahead
    lateral = (jnp.arange(view_size) - view_size // 2)[None, :, None]
    fwd = jnp.asarray(DIR_VEC)[agent_dir]
    right = jnp.asarray(DIR_VEC)[(agent_dir + 1) % 4]
    return agent_pos + ahead * fwd + lateral * right


def process_vis(see_behind: jax.Array) -> jax.Array:
    """MiniGrid's `Grid.process_vis`, in view coordinates `[y, x]`.

    Args:
      see_behind: `bool[v, v]`, whether each view cell lets sight through (not a wall, not a
        closed door).

    Returns:
      `bool[v, v]`: the visible cells. The sweep order is MiniGrid's, unrolled at trace time
      (`v` is static), so the result is identical to MiniGrid's, quirks included.
    """
    v = see_behind.shape[0]
    false = jnp.zeros((), bool)
    mask = [[false] * v for _ in range(v)]
    mask[v - 1][v // 2] = jnp.ones((), bool)
    for j in reversed(range(v)):
        row = mask[j]
        up = mask[j - 1] if j > 0 else None
        for i in range(v - 1):  # left to right
            go = row[i] & see_behind[j, i]
            row[i + 1] = row[i + 1] | go
            if up is not None:
                up[i + 1] = up[i + 1] | go
                up[i] = up[i] | go
        for i in reversed(range(1, v)):  # right to left
            go = row[i] & see_behind[j, i]
            row[i - 1] = row[i - 1] | go
            if up is not None:
                up[i - 1] = up[i - 1] | go
                up[i] = up[i] | go
    return jnp.stack([jnp.stack(r) for r in mask])


def egocentric_view(grid: jax.Array, agent_pos: jax.Array, agent_dir: jax.Array,
                    view_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The cells in view, which of them are visible, and their world coordinates.

    Returns:
      cells: `u8[v, v, 3]`, the true cells in view (walls outside the grid), unseen where hidden.
      visible: `bool[v, v]`.
      coords: `i32[v, v, 2]` world coordinates.
    """
    h, w = grid.shape[:2]
    coords = view_coordinates(agent_pos, agent_dir, view_size)
    r, c = coords[..., 0], coords[..., 1]
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    cells = grid[jnp.clip(r, 0, h - 1), jnp.clip(c, 0, w - 1)]
    cells = jnp.where(inside[..., None], cells, jnp.asarray(WALL_CELL))
    tag, state = cells[..., 0], cells[..., 2]
    see_behind = ~((tag == WALL) | ((tag == DOOR) & (state != DOOR_OPEN)))
    visible = process_vis(see_behind)
    cells = jnp.where(visible[..., None], cells, jnp.asarray(UNSEEN_CELL))
    return cells, visible, coords


def update_memory(memory: jax.Array, grid: jax.Array, agent_pos: jax.Array,
                  agent_dir: jax.Array, view_size: int) -> jax.Array:
    """Writes the currently visible cells into `memory` (`u8[H, W, 3]`)."""
    h, w = grid.shape[:2]
    cells, visible, coords = egocentric_view(grid, agent_pos, agent_dir, view_size)
    r, c = coords[..., 0], coords[..., 1]
    inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
    # Cells that are hidden or outside the grid are sent out of bounds and dropped.
    keep = visible & inside
    r = jnp.where(keep, r, h)
    c = jnp.where(keep, c, w)
    return memory.at[r, c].set(cells, mode="drop")


def next_to(mask: jax.Array) -> jax.Array:
    """`bool[H, W]`: the cells 4-adjacent to a cell set in `mask` (`bool[H, W]`). The grid's
    edges wrap, which never matters: a MiniGrid grid's edge cells are walls."""
    return (jnp.roll(mask, 1, 0) | jnp.roll(mask, -1, 0) | jnp.roll(mask, 1, 1)
            | jnp.roll(mask, -1, 1))


def is_object(cells: jax.Array, tag: int, colour=None) -> jax.Array:
    """`bool[...]`: which of `cells` (`u8[..., 3]`: one cell or a whole map) hold an object of
    the kind `tag` (and colour; any colour if None)."""
    match = cells[..., 0] == tag
    return match if colour is None else match & (cells[..., 1] == colour)


def cells_of(obs, tag: int, colour=None) -> jax.Array:
    """`bool[H, W]`: the cells of an observation's remembered map holding an object of the kind
    `tag` (and colour; any colour if None)."""
    return is_object(obs.grid, tag, colour)


def standable(cells: jax.Array) -> jax.Array:
    """`bool[...]`: which of `cells` (`u8[..., 3]`) the agent may stand on: floor or an open
    door."""
    return (cells[..., 0] == EMPTY) | ((cells[..., 0] == DOOR) & (cells[..., 2] == DOOR_OPEN))


def cell_ahead(obs, offset: int = 1) -> jax.Array:
    """`u8[3]`: the remembered cell `offset` steps along the agent's direction (1: in front, 0:
    under the agent, -1: behind it), clipped to the grid."""
    h, w = obs.grid.shape[:2]
    p = obs.agent_pos + offset * jnp.asarray(DIR_VEC)[obs.agent_dir]
    return obs.grid[jnp.clip(p[0], 0, h - 1), jnp.clip(p[1], 0, w - 1)]


def empty_memory(height: int, width: int) -> np.ndarray:
    return np.broadcast_to(UNSEEN_CELL, (height, width, 3)).copy()


# ---------------------------------------------------------------------------------------------
# The network's egocentric window (jaxrl3m.nets.encoders reads the map through it)
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def window_index(height: int, width: int, window: int) -> np.ndarray:
    """`i32[4, H, W, window * window]`: for an agent at `(r, c)` heading `d`, the flat index
    (`r * W + c`) of the grid cell seen at each window cell, `H * W` for cells outside the grid.

    Row 0 of the window is farthest ahead, the agent is at the centre `(window // 2, window //
    2)` facing row 0. A constant table (48 kB for a 10 x 10 grid and an 11 x 11 window): the
    window is then one gather with looked-up indices, where computing the rotated coordinates
    of every cell per step cost as much as the network's first layer.
    """
    c = window // 2
    ahead = (c - np.arange(window))[:, None]  # (window, 1)
    lateral = (np.arange(window) - c)[None, :]  # (1, window)
    rows, cols = np.mgrid[0:height, 0:width]
    out = np.empty((4, height, width, window, window), np.int64)
    for d in range(4):
        fwd, right = np.asarray(DIR_VEC[d]), np.asarray(DIR_VEC[(d + 1) % 4])
        r = rows[..., None, None] + ahead * fwd[0] + lateral * right[0]
        col = cols[..., None, None] + ahead * fwd[1] + lateral * right[1]
        inside = (r >= 0) & (r < height) & (col >= 0) & (col < width)
        out[d] = np.where(inside, r * width + col, height * width)
    return out.reshape(4, height, width, window * window).astype(np.int32)


def window_flat_index(shape: tuple[int, int], agent_pos: jax.Array, agent_dir: jax.Array,
                       window: int) -> jax.Array:
    """`i32[..., window * window]`: `window_index` looked up for agents (batched or not)."""
    table = jnp.asarray(window_index(shape[0], shape[1], window))
    return table[agent_dir, agent_pos[..., 0], agent_pos[..., 1]]


def window_cells(grid: jax.Array, agent_pos: jax.Array, agent_dir: jax.Array,
                 window: int) -> jax.Array:
    """`u8[window, window, 3]`: the map around the agent, rotated so that it faces up.

    Row 0 is farthest ahead, the agent is at the centre `(window // 2, window // 2)` facing
    row 0; cells outside the grid read as walls. One environment (vmap for batches).
    """
    h, w = grid.shape[:2]
    flat = jnp.concatenate([grid.reshape(h * w, 3), jnp.asarray(WALL_CELL, grid.dtype)[None]])
    return flat[window_flat_index((h, w), agent_pos, agent_dir, window)].reshape(
        window, window, 3)
