"""Plain-text rendering of a state or an observation, for logs, docs and debugging."""

from __future__ import annotations

import numpy as np

from .types import COLOUR_NAMES, DOOR, DOOR_LOCKED, DOOR_OPEN, EMPTY, KEY, LAVA, UNSEEN, WALL

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
