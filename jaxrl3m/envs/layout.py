"""Random layouts for the DoorKey family, solvable by construction.

A layout is a room of random height and width (outer walls included) anchored at the top-left of
a square grid (everything outside the room is wall), a locked door at a random non-corner cell of
the room's wall, keys (the first of the door's colour), optional lava cells and the agent.

Solvability. The agent, the cell just inside the door and every empty interior cell form the
*free region*; keys and lava are obstacles. Obstacles are placed one at a time, each on a cell
whose removal keeps the free region connected, checked locally: the free 4-neighbours of the cell
must be connected to each other through its 8-neighbourhood (Yokoi's 4-connectivity number
`N4 <= 1` with at least one free 4-neighbour). Any path through such a cell can be rerouted around
it, so the free region stays connected, and the agent can reach the door. An obstacle may also
not take the last free neighbour of a key (the agent must be able to stand next to every key),
nor the cell in front of the door, nor the agent's cell. In a 5x5 room (3x3 interior) the
centre cell is not used for obstacles: the ring left around it would have no removable cell.
If no cell qualifies all the same (never seen for the shipped tasks), the whole layout is drawn
again (`lax.while_loop`; its body does not run when the first draw succeeds).

Every sampling choice is uniform over the cells that qualify.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from .types import NUM_COLOURS, Layout

# Offsets of the 8-neighbourhood in the order E, NE, N, NW, W, SW, S, SE (counter-clockwise).
_RING = ((0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1))
_FOUR = ((0, 1), (-1, 0), (0, -1), (1, 0))


def _shifted(mask: jax.Array, dr: int, dc: int) -> jax.Array:
    """`out[r, c] = mask[r + dr, c + dc]`, False outside the grid."""
    h, w = mask.shape
    padded = jnp.pad(mask, 1)
    return padded[1 + dr: 1 + dr + h, 1 + dc: 1 + dc + w]


def removable(free: jax.Array, allow_holes: jax.Array | bool = True) -> jax.Array:
    """`bool[H, W]`: cells whose removal from `free` keeps `free` locally connected.

    True where the cell's free 4-neighbours are connected to each other inside its
    8-neighbourhood (Yokoi's connectivity number `N4 = sum_k x_k - x_k x_{k+1} x_{k+2}` over the
    4-neighbours `k` is 1, or 0 with all 8 neighbours free). A cell with all 8 neighbours free
    becomes a hole when removed; `allow_holes=False` excludes those.
    """
    x = [_shifted(free, dr, dc) for dr, dc in _RING]
    n4 = sum(
        (x[k] & ~(x[k + 1] & x[(k + 2) % 8])).astype(jnp.int32) for k in (0, 2, 4, 6)
    )
    all8 = functools.reduce(jnp.logical_and, x)
    return (n4 == 1) | (all8 & allow_holes)


def free_neighbours(free: jax.Array) -> jax.Array:
    """`i32[H, W]`: number of free 4-neighbours of every cell."""
    return sum(_shifted(free, dr, dc).astype(jnp.int32) for dr, dc in _FOUR)


def _dilate4(mask: jax.Array) -> jax.Array:
    out = mask
    for dr, dc in _FOUR:
        out = out | _shifted(mask, dr, dc)
    return out


def _choose(u: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Uniform choice of a True cell of `mask` from the random word `u` (`u32[]`).

    Returns the flat index and whether `mask` had any True cell. Modulo bias is below 2**-25 for
    grids up to 128 cells per side.
    """
    flat = mask.ravel()
    count = flat.sum(dtype=jnp.uint32)
    r = u % jnp.maximum(count, 1)
    idx = jnp.argmax(jnp.cumsum(flat, dtype=jnp.uint32) > r).astype(jnp.int32)
    return idx, count > 0


def _rc(idx: jax.Array, size: int) -> jax.Array:
    return jnp.stack([idx // size, idx % size]).astype(jnp.int32)


def _sample_once(key: jax.Array, size: int, min_room: int, n_keys: int, n_lava: int):
    n_words = 7 + n_keys + n_lava
    u = jax.random.bits(key, (n_words,), dtype=jnp.uint32)
    rows, cols = jnp.mgrid[0:size, 0:size]

    # Room: height and width uniform in [min_room, size], anchored at (0, 0).
    span = size - min_room + 1
    h = (min_room + u[0] % span).astype(jnp.int32)
    w = (min_room + u[1] % span).astype(jnp.int32)
    interior = (rows >= 1) & (rows <= h - 2) & (cols >= 1) & (cols <= w - 2)

    # Door: a non-corner cell of the room's wall; `inside` is the interior cell in front of it.
    on_rows = (rows == 0) | (rows == h - 1)
    on_cols = (cols == 0) | (cols == w - 1)
    in_box = (rows < h) & (cols < w)
    door_cells = in_box & (on_rows ^ on_cols)
    door_idx, _ = _choose(u[2], door_cells)
    door = _rc(door_idx, size)
    inside = jnp.stack([
        jnp.clip(door[0], 1, h - 2), jnp.clip(door[1], 1, w - 2)]).astype(jnp.int32)
    door_colour = (u[3] % NUM_COLOURS).astype(jnp.int32)

    # Agent: any interior cell, any direction.
    agent_idx, _ = _choose(u[4], interior)
    agent = _rc(agent_idx, size)
    agent_dir = (u[5] % 4).astype(jnp.int32)

    at_agent = (rows == agent[0]) & (cols == agent[1])
    at_inside = (rows == inside[0]) & (cols == inside[1])
    keep_free = at_agent | at_inside

    # In a 3x3 interior a hole in the centre would leave a ring with no removable cell.
    allow_holes = (h > 5) | (w > 5)

    # Obstacles, one at a time: keys first (key 0 has the door's colour), then lava.
    free = interior
    keys = jnp.zeros((size, size), bool)
    ok = jnp.asarray(True)
    placed = []
    for i in range(n_keys + n_lava):
        lonely_keys = keys & (free_neighbours(free) <= 1)
        candidates = free & removable(free, allow_holes) & ~keep_free & ~_dilate4(lonely_keys)
        idx, found = _choose(u[6 + i], candidates)
        ok = ok & found
        here = (rows == idx // size) & (cols == idx % size)
        free = free & ~here
        if i < n_keys:
            keys = keys | here
        placed.append(_rc(idx, size))

    # Other keys: distinct colours, none the door's (uniform over the 5 others for one extra key).
    offset = u[6 + n_keys + n_lava] % (NUM_COLOURS - 1)
    key_colour = jnp.stack([door_colour] + [
        (door_colour + 1 + (offset + i) % (NUM_COLOURS - 1)) % NUM_COLOURS
        for i in range(n_keys - 1)]).astype(jnp.int32)

    layout = Layout(
        room=jnp.stack([h, w]),
        door_pos=door,
        door_colour=door_colour,
        key_pos=jnp.stack(placed[:n_keys]).reshape(n_keys, 2),
        key_colour=key_colour,
        lava_pos=(jnp.stack(placed[n_keys:]) if n_lava else jnp.zeros((0, 2), jnp.int32)),
        agent_pos=agent,
        agent_dir=agent_dir,
    )
    return layout, ok


def sample_layout(key: jax.Array, size: int, min_room: int, n_keys: int, n_lava: int) -> Layout:
    """Draws a solvable layout (see the module docstring). Jittable and vmappable."""
    key, sub = jax.random.split(key)
    first, ok = _sample_once(sub, size, min_room, n_keys, n_lava)

    def again(carry):
        key, _, _ = carry
        key, sub = jax.random.split(key)
        layout, ok = _sample_once(sub, size, min_room, n_keys, n_lava)
        return key, layout, ok

    _, layout, _ = jax.lax.while_loop(lambda c: ~c[2], again, (key, first, ok))
    return layout
