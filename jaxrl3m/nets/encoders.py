"""Encoders: the symbolic observation as network input codes, and the shared torso.

Input (`cell_codes`): by default the remembered map in an `11 x 11` window centred on the agent
and rotated to its heading (`view="egocentric"`), or the whole map with the agent marked
(`view="allocentric"`). Egocentric input makes "the key is two cells ahead" the same input
wherever the agent stands; imitating the oracle teacher from allocentric input plateaued at a
KL of about 1.1 where egocentric input reached 0.15 with the same data and steps (see the
README's design rationale).

The codes are embedded, never fed as raw integers. Each cell has one joint code `(tag, colour,
state, agent)` (`agent` is `1 + direction` on the agent's cell in the allocentric view, else 0),
looked up in one table of `11 * 6 * 3 * 5 = 990` rows: one lookup per cell instead of one per
field makes the forward pass about 2x and the backward pass about 1.5x cheaper on CPU, which the
throughput goal on 2 cores needs. With `relative_colours` (default) colours are coded relative to
the door's colour once a door has been seen, the symmetry the abstract states use too: the tasks
do not change when colours are permuted, so the network need not learn each pair of colours.
The reference is the first door seen in raster order: in a world of several doors of different
colours (LockedRoom's six) it changes whenever a door earlier in that order comes into view, and
every colour code with it; LockedRoom's presets turn `relative_colours` off.
The carried object has its own `(tag, colour)` embedding; a mission's object (Fetch's "fetch a
red key", `MissionObservation.mission`) is one more code after the cells, embedded by the same
`(tag, colour)` table (observations without a mission have no such code). Torsos (`network`)
of `CellEncoder`:

- `mlp`: the embedded cells flattened (with the carried object) through the dense layers;
- `cnn`: two 3x3 convolutions over the embedded window, then the dense layers.

Heads (`jaxrl3m.nets.heads`) sit on the encoder's features: PPO's actor-critic, a Q head.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from ..envs.observation import window_cells, window_flat_index, window_index  # noqa: F401
from ..envs.types import DOOR, NUM_COLOURS, WALL_CELL, Observation, mission_of

NETWORKS = ("mlp", "cnn")
VIEWS = ("egocentric", "allocentric")
NUM_TAGS = 11  # MiniGrid object codes 0..10
NUM_STATES = 3  # door states 0..2
NUM_CELL_CODES = NUM_TAGS * NUM_COLOURS * NUM_STATES * 5  # 990 joint cell codes
NUM_CARRIED_CODES = NUM_TAGS * NUM_COLOURS  # 66 carried-object codes
CODE_DTYPE = jnp.int16
"""The codes' dtype: every code fits (< 990), and the rollouts and datasets that keep them per
step move half the bytes of `int32`."""


def agent_layer(obs: Observation, height: int, width: int) -> jax.Array:
    """`i32[..., H, W]`: 0 everywhere but the agent's cell, which holds `1 + direction`."""
    rows = jnp.arange(height)[:, None]
    cols = jnp.arange(width)[None, :]
    here = (rows == obs.agent_pos[..., 0, None, None]) & (cols == obs.agent_pos[..., 1, None, None])
    return jnp.where(here, 1 + obs.agent_dir[..., None, None], 0).astype(jnp.int32)


def door_colour(grid: jax.Array) -> jax.Array:
    """`i32[...]`: the colour of the first door seen in `grid` (`i32[..., H, W, 3]`), 0 if none
    has been seen (so colour codes stay absolute until a door is seen)."""
    tag = grid[..., 0].reshape(*grid.shape[:-3], -1)
    colour = grid[..., 1].reshape(*grid.shape[:-3], -1)
    is_door = tag == DOOR
    first = jnp.argmax(is_door, axis=-1)
    found = jnp.take_along_axis(colour, first[..., None], axis=-1)[..., 0]
    return jnp.where(is_door.any(axis=-1), found, 0).astype(jnp.int32)


def cell_codes(obs: Observation, view: str = "egocentric", window: int = 11,
               relative_colours: bool = True) -> tuple[jax.Array, jax.Array]:
    """The network's input: `i16[..., C]` joint codes of the map's cells and `i16[...]` the
    carried object's code (`CODE_DTYPE`). Jittable; works on one observation or a batch.

    Cell code `((tag * 6 + colour) * 3 + state) * 5 + agent`; carried code `tag * 6 + colour`.
    `view="allocentric"`: the whole `H x W` map with the agent marked (`agent = 1 + direction`
    on its cell). `view="egocentric"`: the `window x window` map around the agent, rotated to
    its heading (the agent is always at the centre facing up, so `agent = 0`); the codes are
    computed once per map cell (and once for the wall that cells outside the map read as),
    then gathered into the window (`window_index`). With `relative_colours`, colour is
    `(colour - door colour) mod 6` (unchanged while no door has been seen). With a mission
    (`mission_of(obs)` not None), the cells end with one more code, `NUM_CELL_CODES + tag * 6 +
    colour` of the mission's object (a row of the carried-object table in `embed`).
    """
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; valid: {', '.join(VIEWS)}")
    batch = obs.agent_dir.shape
    flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[len(batch):]), obs)
    h, w = flat.grid.shape[-3], flat.grid.shape[-2]
    carry_tag = flat.carrying[..., 0].astype(jnp.int32)
    carry_colour = flat.carrying[..., 1].astype(jnp.int32)
    grid = flat.grid.astype(jnp.int32).reshape(-1, h * w, 3)
    if view == "egocentric":  # the map's cells, then the wall outside it
        wall = jnp.broadcast_to(jnp.asarray(WALL_CELL, jnp.int32), (grid.shape[0], 1, 3))
        grid = jnp.concatenate([grid, wall], axis=1)
        agent = 0
    else:
        agent = agent_layer(flat, h, w).reshape(-1, h * w)
    tag, colour, state = grid[..., 0], grid[..., 1], grid[..., 2]
    if relative_colours:
        ref = door_colour(flat.grid.astype(jnp.int32))
        colour = (colour - ref[:, None]) % NUM_COLOURS
        carry_colour = (carry_colour - ref) % NUM_COLOURS
    cells = ((tag * NUM_COLOURS + colour) * NUM_STATES + state) * 5 + agent
    if view == "egocentric":
        idx = window_flat_index((h, w), flat.agent_pos, flat.agent_dir, window)
        cells = jnp.take_along_axis(cells, idx, axis=1, mode="promise_in_bounds")
    mission = mission_of(flat)
    if mission is not None:
        m_colour = mission[..., 1].astype(jnp.int32)
        if relative_colours:
            m_colour = (m_colour - ref) % NUM_COLOURS
        mission = NUM_CELL_CODES + mission[..., 0].astype(jnp.int32) * NUM_COLOURS + m_colour
        cells = jnp.concatenate([cells, mission[:, None]], axis=1)
    cells = cells.reshape(*batch, -1).astype(CODE_DTYPE)
    return cells, (carry_tag * NUM_COLOURS + carry_colour).reshape(batch).astype(CODE_DTYPE)


class Table(nn.Module):
    """A learned table of `num` rows of `dim` (named like `flax.linen.Embed`'s, `embedding`, so
    parameters and checkpoints are those of an `Embed`)."""

    num: int
    dim: int

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("embedding", nn.initializers.normal(1.0), (self.num, self.dim))


def embed(cell_table: jax.Array, carried_table: jax.Array, cells: jax.Array,
          carried: jax.Array) -> jax.Array:
    """`f32[..., C + 1, e]`: the embeddings of the cells and, last, of the carried object, in
    one gather from the two tables stacked (no concatenation of embedded values: the row
    `C + 1` is a code offset by `NUM_CELL_CODES`). Codes are valid by construction
    (`cell_codes`), so the gather skips the bounds check."""
    table = jnp.concatenate([cell_table, carried_table], axis=0)
    codes = jnp.concatenate([cells.astype(jnp.int32),
                             carried.astype(jnp.int32)[..., None] + NUM_CELL_CODES], axis=-1)
    return table.at[codes].get(mode="promise_in_bounds")


class CellEncoder(nn.Module):
    """`f32[..., hidden[-1]]` features from the codes of `cell_codes` (a batch): embeddings of the
    cells and the carried object, the torso (`mlp` or `cnn`), then the dense layers."""

    network: str = "mlp"
    embed_dim: int = 4
    hidden: Sequence[int] = (64, 64)
    channels: int = 16

    @nn.compact
    def __call__(self, cells: jax.Array, carried: jax.Array) -> jax.Array:
        if self.network not in NETWORKS:
            raise ValueError(f"unknown network {self.network!r}; valid: {', '.join(NETWORKS)}")
        x = embed(Table(NUM_CELL_CODES, self.embed_dim, name="cell")(),
                  Table(NUM_CARRIED_CODES, self.embed_dim, name="carried")(),
                  cells, carried)  # (..., C + 1, e)
        lead = x.shape[:-2]
        if self.network == "cnn":  # the square map, then any mission code and the carried one
            side = int(cells.shape[-1] ** 0.5)
            if cells.shape[-1] - side * side not in (0, 1):
                raise ValueError(
                    f"network=cnn needs a square map, got {cells.shape[-1]} cells: the "
                    f"allocentric view of a non-square grid (KeyCorridorS3R1's 3 x 7, S3R2's "
                    f"5 x 7); use view=egocentric (a square window) or network=mlp")
            grid = x[..., :side * side, :].reshape(*lead, side, side, self.embed_dim)
            grid = nn.relu(nn.Conv(self.channels, (3, 3), name="conv1")(grid))
            grid = nn.relu(nn.Conv(self.channels, (3, 3), name="conv2")(grid))
            x = jnp.concatenate([grid.reshape(*lead, -1),
                                 x[..., side * side:, :].reshape(*lead, -1)], axis=-1)
        else:  # the flattened cells, then the carried object: one reshape, no copy
            x = x.reshape(*lead, -1)
        for i, width in enumerate(self.hidden):
            x = nn.tanh(nn.Dense(width, kernel_init=nn.initializers.orthogonal(np.sqrt(2)),
                                 name=f"dense{i}")(x))
        return x
