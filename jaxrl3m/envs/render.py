"""Plain-text rendering of a state or an observation, for logs, docs and debugging."""

from __future__ import annotations

import numpy as np

from .types import (BALL, COLOUR_NAMES, DOOR, DOOR_LOCKED, DOOR_OPEN, EMPTY, KEY, LAVA, UNSEEN,
                    WALL)

_ARROWS = ">v<^"


def render_text(grid, agent_pos=None, agent_dir=None) -> str:
    """One character per cell: `#` wall, `.` floor, `?` unseen, `~` lava, `K`/`k` key of the
    door's colour / of another colour, `D` locked door, `d` closed, `_` open, and the agent as
    an arrow. Colours are listed under the map."""
    grid = np.asarray(grid)
    tag, colour, state = grid[..., 0], grid[..., 1], grid[..., 2]
    doors = np.argwhere(tag == DOOR)
    door_colour = colour[tuple(doors[0])] if len(doors) else -1
    chars = {UNSEEN: "?", EMPTY: ".", WALL: "#", LAVA: "~"}
    rows, legend = [], []
    for r in range(tag.shape[0]):
        line = ""
        for c in range(tag.shape[1]):
            t = int(tag[r, c])
            if agent_pos is not None and (r, c) == tuple(int(x) for x in agent_pos):
                ch = _ARROWS[int(agent_dir)]
            elif t == KEY:
                ch = "K" if colour[r, c] == door_colour else "k"
                legend.append(f"key ({r},{c}) {COLOUR_NAMES[colour[r, c]]}")
            elif t == DOOR:
                ch = {DOOR_LOCKED: "D", DOOR_OPEN: "_"}.get(int(state[r, c]), "d")
                legend.append(f"door ({r},{c}) {COLOUR_NAMES[colour[r, c]]}")
            else:
                ch = chars.get(t, "o")
            line += ch
        rows.append(line)
    return "\n".join(rows) + ("\n" + "; ".join(legend) if legend else "")


# ---------------------------------------------------------------------------------------------
# Pictures (RGB), MiniGrid's look
# ---------------------------------------------------------------------------------------------
RGB = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [112, 39, 195], [255, 255, 0],
                [100, 100, 100]], np.uint8)
"""MiniGrid's colours, in `COLOUR_NAMES` order."""


def _tile_masks(t: int) -> dict[str, np.ndarray]:
    """Boolean masks of the shapes drawn in a `t x t` tile (computed once per size)."""
    y, x = (np.mgrid[0:t, 0:t] + 0.5) / t
    ring = lambda cx, cy, r0, r1: (r0 ** 2 <= (x - cx) ** 2 + (y - cy) ** 2) & (  # noqa: E731
        (x - cx) ** 2 + (y - cy) ** 2 <= r1 ** 2)
    key = (ring(0.5, 0.3, 0.0, 0.2) & ~ring(0.5, 0.3, 0.0, 0.09)) | (
        (abs(x - 0.5) < 0.06) & (y > 0.45) & (y < 0.9)) | (
        (x > 0.5) & (x < 0.68) & (((y > 0.62) & (y < 0.7)) | ((y > 0.8) & (y < 0.88))))
    border = (x < 0.06) | (x > 0.94) | (y < 0.06) | (y > 0.94)
    inner = (x > 0.12) & (x < 0.88) & (y > 0.12) & (y < 0.88)
    knob = ring(0.75, 0.5, 0.0, 0.07)
    ball = ring(0.5, 0.5, 0.0, 0.31)
    waves = np.zeros_like(border)
    for k in (0.3, 0.5, 0.7):
        waves |= abs(y - k - 0.05 * np.sin(x * 4 * np.pi)) < 0.03
    # the agent: a triangle pointing east, rotated per direction when drawn
    tri = (x > 0.15) & (abs(y - 0.5) < 0.4 * (0.9 - x) / 0.75) & (x < 0.9)
    grid_line = (x < 1.0 / t) | (y < 1.0 / t)
    return dict(key=key, border=border, inner=inner, knob=knob, ball=ball, waves=waves, tri=tri,
                grid=grid_line)


_MASKS: dict[int, dict[str, np.ndarray]] = {}


def render_rgb(grid, agent_pos=None, agent_dir=None, tile: int = 16,
               view: tuple[int, int, int] | None = None) -> np.ndarray:
    """`u8[H * tile, W * tile, 3]`: a grid of MiniGrid codes (the true grid or the agent's
    remembered map) drawn as MiniGrid draws it: black floor with grid lines, grey walls, keys,
    balls as discs, doors (filled when locked, outlined when closed, open ones as a frame),
    orange lava, the agent as a red triangle; unseen cells in dark blue.
    `view = (row, col, size)` shades the `size x size` window the agent sees (the agent at the
    middle of its back row)."""
    from .types import GOAL
    if tile not in _MASKS:
        _MASKS[tile] = _tile_masks(tile)
    m = _MASKS[tile]
    grid = np.asarray(grid)
    h, w = grid.shape[:2]
    img = np.zeros((h * tile, w * tile, 3), np.uint8)
    for r in range(h):
        for c in range(w):
            tag, col, st = (int(v) for v in grid[r, c])
            cell = img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]
            if tag == UNSEEN:
                cell[:] = (20, 20, 60)
                continue
            cell[m["grid"]] = (70, 70, 70)
            colour = RGB[col % len(RGB)]
            if tag == WALL:
                cell[:] = (100, 100, 100)
            elif tag == LAVA:
                cell[:] = (255, 128, 0)
                cell[m["waves"]] = (0, 0, 0)
            elif tag == GOAL:
                cell[:] = (0, 255, 0)
            elif tag == KEY:
                cell[m["key"]] = colour
            elif tag == BALL:  # a disc, as MiniGrid draws it (boxes stay squares)
                cell[m["ball"]] = colour
            elif tag == DOOR:
                if st == DOOR_OPEN:
                    cell[m["border"]] = colour
                else:
                    cell[m["border"] | m["inner"]] = colour
                    if st != DOOR_LOCKED:  # closed: a frame and a knob
                        cell[m["inner"]] = 0
                        cell[m["knob"]] = colour
                    else:
                        cell[m["knob"]] = 0
            elif tag not in (EMPTY,):
                cell[m["inner"]] = colour
    if view is not None:
        vr, vc, size = view
        d = int(agent_dir)
        fwd = np.array([[0, 1], [1, 0], [0, -1], [-1, 0]])[d]
        right = np.array([[1, 0], [0, -1], [-1, 0], [0, 1]])[d]
        for i in range(size):  # i steps ahead, j steps to the side
            for j in range(-(size // 2), size // 2 + 1):
                rr, cc = np.array([vr, vc]) + i * fwd + j * right
                if 0 <= rr < h and 0 <= cc < w:
                    patch = img[rr * tile:(rr + 1) * tile, cc * tile:(cc + 1) * tile]
                    patch[:] = np.minimum(255, patch.astype(np.int32) * 0.7 + 75).astype(np.uint8)
    if agent_pos is not None:
        r, c = (int(v) for v in agent_pos)
        tri = np.rot90(m["tri"], k=-int(agent_dir))
        img[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile][tri] = (255, 0, 0)
    return img
