"""Random layouts for the DoorKey family, solvable by construction.

A layout is a room of random height and width (outer walls included) anchored at the top-left of
a square grid (everything outside the room is wall), a locked door at a random non-corner cell of
the room's wall, keys (the first of the door's colour), optional lava cells and the agent.

Solvability. The agent, the cell just inside the door and every empty interior cell form the
*free region*; keys and lava are obstacles. Obstacles are placed one at a time, each on a cell
whose removal keeps the free region connected, checked locally: the free 4-neighbours of the
cell must be connected to each other through its 8-neighbourhood (Yokoi's 4-connectivity number
`N4 == 1`, or all 8 neighbours free). Any path through such a cell can be rerouted around it, so
the free region stays connected, and the agent can reach the door. An obstacle may also
not take the last free neighbour of a key (the agent must be able to stand next to every key),
nor the cell in front of the door, nor the agent's cell. In a 5x5 room (3x3 interior) the
centre cell is not used for obstacles: the ring left around it would have no removable cell.
For rooms up to 10x10 with at most two obstacles an exhaustive test proves that some cell always
qualifies; outside that domain, a failed draw is drawn again (`lax.while_loop`).

Every sampling choice is uniform over the cells that qualify.

KeyCorridor's maps (`sample_corridor`) have a fixed structure, MiniGrid's RoomGrid of rooms
around a hallway; they are solvable by construction (the argument is in its docstring).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .types import BALL, KEY, NUM_COLOURS, Layout

# Masks are bitboards: `u32[size]`, bit `c` of word `r` is cell `(r, c)` (so `size <= 32`).
# Working on 10 words instead of 100 cells makes a layout about ten times cheaper, and a layout is
# sampled on every vmapped step (autoreset runs as a select).


def _east(m):  # out[r, c] = m[r, c + 1]
    return m >> 1


def _west(m):  # out[r, c] = m[r, c - 1]
    return m << 1


def _north(m):  # out[r, c] = m[r - 1, c]
    return jnp.concatenate([jnp.zeros_like(m[:1]), m[:-1]])


def _south(m):  # out[r, c] = m[r + 1, c]
    return jnp.concatenate([m[1:], jnp.zeros_like(m[:1])])


def to_bits(mask: jax.Array) -> jax.Array:
    """`bool[H, W]` -> bitboard `u32[H]`."""
    weights = jnp.left_shift(jnp.uint32(1), jnp.arange(mask.shape[1], dtype=jnp.uint32))
    return (mask.astype(jnp.uint32) * weights).sum(axis=1, dtype=jnp.uint32)


def from_bits(bits: jax.Array, width: int) -> jax.Array:
    """Bitboard `u32[H]` -> `bool[H, width]`."""
    return ((bits[:, None] >> jnp.arange(width, dtype=jnp.uint32)) & 1).astype(bool)


def _at_most_one(*xs):
    pairs = jnp.zeros_like(xs[0])
    for i in range(len(xs)):
        for j in range(i + 1, len(xs)):
            pairs = pairs | (xs[i] & xs[j])
    return ~pairs


def removable(free: jax.Array, allow_holes: jax.Array | bool = True) -> jax.Array:
    """Bitboard of the cells whose removal from `free` keeps it locally connected.

    A cell qualifies when its free 4-neighbours are connected to each other inside its
    8-neighbourhood: Yokoi's connectivity number `N4 = sum_k x_k - x_k x_{k+1} x_{k+2}` over the
    4-neighbours `k` (ring order E, NE, N, NW, W, SW, S, SE) is 1, or 0 with all 8 neighbours
    free. A cell with all 8 neighbours free becomes a hole when removed; `allow_holes=False`
    excludes those.
    """
    n, s = _north(free), _south(free)
    x = [_east(free), _east(n), n, _west(n), _west(free), _west(s), s, _east(s)]
    terms = [x[k] & ~(x[k + 1] & x[(k + 2) % 8]) for k in (0, 2, 4, 6)]
    exactly_one = (terms[0] ^ terms[1] ^ terms[2] ^ terms[3]) & _at_most_one(*terms)
    all8 = functools.reduce(jnp.bitwise_and, x)
    holes = jnp.where(allow_holes, all8, jnp.zeros_like(all8))
    return exactly_one | holes


def _lonely_neighbours(keys: jax.Array, free: jax.Array) -> jax.Array:
    """Cells 4-adjacent to a key that has at most one free 4-neighbour."""
    lonely = keys & _at_most_one(_east(free), _west(free), _north(free), _south(free))
    return lonely | _east(lonely) | _west(lonely) | _north(lonely) | _south(lonely)


def _choose_bit(u: jax.Array, bits: jax.Array, width: int) -> tuple[jax.Array, jax.Array]:
    """Uniform choice of a set cell of a bitboard from the random word `u` (`u32[]`).

    Returns `(row, col)` and whether any cell was set. Modulo bias is below 2**-25.
    """
    per_row = jax.lax.population_count(bits)
    cum = jnp.cumsum(per_row)
    count = cum[-1]
    r = (u % jnp.maximum(count, 1).astype(jnp.uint32)).astype(jnp.int32)
    row = jnp.argmax(cum > r)
    within = r - (cum[row] - per_row[row])
    cells = (bits[row] >> jnp.arange(width, dtype=jnp.uint32)) & 1
    col = jnp.argmax(jnp.cumsum(cells) > within)
    return jnp.stack([row, col]).astype(jnp.int32), count > 0


def _below(u: jax.Array, n: jax.Array) -> jax.Array:
    """A uniform integer in `[0, n)` from the random word `u` (modulo bias below 2**-25)."""
    return (u % n.astype(jnp.uint32)).astype(jnp.int32)


def _sample_once(key: jax.Array, size: int, min_room: int, n_keys: int, n_lava: int,
                 max_room: int | None = None, door_wall: str = "any", n_boxes: int = 0,
                 blocked: bool = False):
    u = jax.random.bits(key, (7 + n_keys + n_lava + 2 * n_boxes + blocked,), dtype=jnp.uint32)
    rows = jnp.arange(size, dtype=jnp.int32)

    # Room: height and width uniform in [min_room, max_room], anchored at (0, 0).
    span = jnp.asarray((size if max_room is None else max_room) - min_room + 1)
    h = min_room + _below(u[0], span)
    w = min_room + _below(u[1], span)
    ih, iw = h - 2, w - 2  # interior size

    # Door: a non-corner cell of the room's wall, numbered top, bottom, left, right (only the
    # right, east, wall with door_wall="east": MiniGrid's Unlock, whose second room lies there).
    if door_wall == "east":
        k = 2 * iw + ih + _below(u[2], ih)
    else:
        k = _below(u[2], 2 * (ih + iw))
    side_col = jnp.where(k < 2 * iw, 1 + k % iw, jnp.where(k < 2 * iw + ih, 0, w - 1))
    side_row = jnp.where(k < iw, 0, jnp.where(k < 2 * iw, h - 1, 1 + (k - 2 * iw) % ih))
    door = jnp.stack([side_row, side_col])
    inside = jnp.stack([jnp.clip(door[0], 1, ih), jnp.clip(door[1], 1, iw)])
    door_colour = _below(u[3], jnp.asarray(NUM_COLOURS))

    # Agent: any interior cell, any direction (blocked: not the cell inside the door, where the
    # ball stands; uniform over the others).
    if blocked:
        a = _below(u[4], ih * iw - 1)
        a = a + (a >= (inside[0] - 1) * iw + inside[1] - 1)
    else:
        a = _below(u[4], ih * iw)
    agent = jnp.stack([1 + a // iw, 1 + a % iw])
    agent_dir = _below(u[5], jnp.asarray(4))

    one = jnp.uint32(1)
    interior_row = jnp.left_shift(one, iw.astype(jnp.uint32)) - one << one  # bits 1..w-2
    free = jnp.where((rows >= 1) & (rows <= ih), interior_row, jnp.uint32(0))

    def cell_bits(rc):
        return jnp.where(rows == rc[0], jnp.left_shift(one, rc[1].astype(jnp.uint32)),
                         jnp.uint32(0))

    keep_free = cell_bits(agent) | cell_bits(inside)
    # In a 3x3 interior a hole in the centre would leave a ring with no removable cell.
    allow_holes = (h > 5) | (w > 5)

    # Obstacles, one at a time: keys first (key 0 has the door's colour), then lava.
    keys = jnp.zeros_like(free)
    ok = jnp.asarray(True)
    placed = []
    for i in range(n_keys + n_lava):
        candidates = free & removable(free, allow_holes) & ~keep_free & ~_lonely_neighbours(keys, free)
        pos, found = _choose_bit(u[6 + i], candidates, size)
        ok = ok & found
        here = cell_bits(pos)
        free = free & ~here
        if i < n_keys:
            keys = keys | here
        placed.append(pos)

    # Other keys: distinct colours, none the door's (uniform over the 5 others for one extra key).
    offset = u[6 + n_keys + n_lava] % (NUM_COLOURS - 1)
    key_colour = jnp.stack([door_colour] + [
        (door_colour + 1 + (offset + i) % (NUM_COLOURS - 1)) % NUM_COLOURS
        for i in range(n_keys - 1)]).astype(jnp.int32)

    # Boxes: cells of the second room behind an east door (rows 1..h-2, columns w..2w-3; the
    # room is empty, so any cell will do), any colour each.
    box_pos, box_colour = [], []
    for i in range(n_boxes):
        b = _below(u[7 + n_keys + n_lava + 2 * i], ih * iw)
        box_pos.append(jnp.stack([1 + b // iw, w + b % iw]))
        box_colour.append(_below(u[8 + n_keys + n_lava + 2 * i], jnp.asarray(NUM_COLOURS)))

    # The ball that blocks the door (MiniGrid's BlockedUnlockPickup): on the cell inside it, kept
    # free of keys and the agent above, any colour.
    if blocked:
        ball_pos = inside[None].astype(jnp.int32)
        ball_colour = _below(u[7 + n_keys + n_lava + 2 * n_boxes],
                             jnp.asarray(NUM_COLOURS))[None].astype(jnp.int32)
    else:
        ball_pos, ball_colour = jnp.zeros((0, 2), jnp.int32), jnp.zeros((0,), jnp.int32)

    layout = Layout(
        room=jnp.stack([h, w]).astype(jnp.int32),
        door_pos=door.astype(jnp.int32),
        door_colour=door_colour,
        key_pos=jnp.stack(placed[:n_keys]).reshape(n_keys, 2),
        key_colour=key_colour,
        lava_pos=(jnp.stack(placed[n_keys:]) if n_lava else jnp.zeros((0, 2), jnp.int32)),
        agent_pos=agent.astype(jnp.int32),
        agent_dir=agent_dir,
        box_pos=(jnp.stack(box_pos).astype(jnp.int32) if n_boxes else
                 jnp.zeros((0, 2), jnp.int32)),
        box_colour=(jnp.stack(box_colour).astype(jnp.int32) if n_boxes else
                    jnp.zeros((0,), jnp.int32)),
        ball_pos=ball_pos,
        ball_colour=ball_colour,
    )
    return layout, ok


# Configurations for which an exhaustive test (tests/test_layout.py) proves a single draw never
# fails: rooms up to 10x10 with at most two obstacles. Others keep the retry loop.
VERIFIED_MAX_SIZE = 10
VERIFIED_MAX_OBSTACLES = 2


def needs_retry(size: int, n_keys: int, n_lava: int) -> bool:
    """Whether draws of rooms up to `size` x `size` with these obstacles may fail (and retry)."""
    return size > VERIFIED_MAX_SIZE or n_keys + n_lava > VERIFIED_MAX_OBSTACLES


def sample_layout(key: jax.Array, size: int, min_room: int, n_keys: int, n_lava: int,
                  max_room: int | None = None, door_wall: str = "any",
                  n_boxes: int = 0, blocked: bool = False) -> Layout:
    """Draws a solvable layout (see the module docstring) in a `size` x `size` grid, the room's
    sides in `[min_room, max_room]` (default `size`), the door on any wall or `door_wall="east"`,
    `n_boxes` boxes in the second room, a ball blocking the door when `blocked`.
    Jittable and vmappable."""
    draw = functools.partial(_sample_once, size=size, min_room=min_room, n_keys=n_keys,
                             n_lava=n_lava, max_room=max_room, door_wall=door_wall,
                             n_boxes=n_boxes, blocked=blocked)
    if not needs_retry(size if max_room is None else max_room, n_keys, n_lava):
        return draw(key)[0]

    first, ok = draw(key)

    def again(carry):
        key, _, _ = carry
        key, sub = jax.random.split(key)
        layout, ok = draw(sub)
        return key, layout, ok

    _, layout, _ = jax.lax.while_loop(lambda c: ~c[2], again, (jax.random.fold_in(key, 1), first, ok))
    return layout


def corridor_shape(room_size: int, rows: int) -> tuple[int, int]:
    """`(height, width)` of a KeyCorridor grid: `rows` x 3 rooms of side `room_size` (walls
    shared), MiniGrid's RoomGrid."""
    return rows * (room_size - 1) + 1, 3 * (room_size - 1) + 1


def _corridor_start(u: jax.Array, s: int, n: int, doors: jax.Array):
    """MiniGrid's `RoomGrid.place_agent` for KeyCorridor's middle room: a pose uniform over the
    empty cells of the room's square (the hallway's open wall cells included) and the four
    directions, such that the cell in front is empty or a wall (not a door). `doors`:
    `i32[D, 2]`, every door. Returns `(pos i32[2], dir i32[])`."""
    top, left = (n // 2) * (s - 1), s - 1
    r, c = np.mgrid[top: top + s, left: left + s]
    inside = (r > top) & (r < top + s - 1) & (c > left) & (c < left + s - 1)
    hall = (c > left) & (c < left + s - 1) & (((r == top) & (n // 2 > 0))
                                               | ((r == top + s - 1) & (n // 2 < n - 1)))
    cells = np.stack([r[inside | hall], c[inside | hall]], -1)  # empty: no object goes here
    front = cells[:, None, :] + np.asarray([[0, 1], [1, 0], [0, -1], [-1, 0]])[None]
    is_door = (front[:, :, None, :] == doors[None, None]).all(-1).any(-1)  # [C, 4]
    ok = ~is_door.reshape(-1)
    k = _below(u, ok.sum())
    pick = jnp.argmax(jnp.cumsum(ok) > k)
    return jnp.asarray(cells)[pick // 4], (pick % 4).astype(jnp.int32)


def sample_corridor(key: jax.Array, room_size: int, rows: int) -> Layout:
    """A KeyCorridor layout (MiniGrid's `KeyCorridorEnv`): `rows` x 3 rooms of side
    `room_size`; the middle column is a hallway (the walls between its rooms removed), the
    agent in its middle room (`_corridor_start`: MiniGrid's rule); one room of the right column, drawn
    uniformly, is locked (its door on the hallway, any colour) and holds a ball (any colour);
    the key, of the locked door's colour, lies in a room of the left column. Every other side
    room has a closed, unlocked door onto the hallway, of a colour other than the locked
    door's. Objects are uniform over their room's interior, doors over their wall (corners
    excluded).

    Solvable by construction: every room opens onto the hallway; a room holds at most one
    object, and an object in front of a door is picked up from the door's cell; the key can be
    dropped on the hallway side of the locked door or, when every cell there is taken (a one-cell
    hallway), behind the left room's door. Departure from MiniGrid: its `connect_all` joins
    rooms with random doors (side rooms may open onto each other, door colours may repeat); ours
    opens each side room onto the hallway and keeps the locked door's colour unique, so that
    "the door of the key's colour" names it. Jittable and vmappable."""
    s, n, inner = room_size, rows, room_size - 2
    u = jax.random.bits(key, (4 * n + 8,), dtype=jnp.uint32)
    below = lambda i, m: _below(u[i], jnp.asarray(m))
    locked = below(0, n)
    door_colour = below(1, NUM_COLOURS)
    # One door per side room, on its wall shared with the hallway: left rooms' east walls
    # (column s - 1), right rooms' west walls (column 2 (s - 1)).
    left = [jnp.stack([j * (s - 1) + 1 + below(2 + j, inner), jnp.asarray(s - 1)])
            for j in range(n)]
    right = jnp.stack([jnp.stack([j * (s - 1) + 1 + below(2 + n + j, inner),
                                  jnp.asarray(2 * (s - 1))]) for j in range(n)])
    others = left + [right[i + (i >= locked)] for i in range(n - 1)]
    closed_colour = jnp.stack([(door_colour + 1 + below(2 + 2 * n + i, NUM_COLOURS - 1))
                               % NUM_COLOURS for i in range(2 * n - 1)])
    i = 4 * n + 1

    def in_room(col_room, row_room, first):
        return jnp.stack([row_room * (s - 1) + 1 + below(first, inner),
                          col_room * (s - 1) + 1 + below(first + 1, inner)])

    key_pos = in_room(0, below(i, n), i + 1)
    ball_pos = in_room(2, locked, i + 3)
    agent, agent_dir = _corridor_start(u[i + 5], s, n, jnp.concatenate(
        [jnp.stack(others), right[locked][None]]))
    return Layout(
        room=jnp.asarray(corridor_shape(s, n), jnp.int32),
        door_pos=right[locked].astype(jnp.int32),
        door_colour=door_colour,
        key_pos=key_pos[None].astype(jnp.int32),
        key_colour=door_colour[None],
        lava_pos=jnp.zeros((0, 2), jnp.int32),
        agent_pos=agent.astype(jnp.int32),
        agent_dir=agent_dir,
        ball_pos=ball_pos[None].astype(jnp.int32),
        ball_colour=below(i + 6, NUM_COLOURS)[None],
        closed_door_pos=jnp.stack(others).astype(jnp.int32),
        closed_door_colour=closed_colour.astype(jnp.int32),
    )


LOCKEDROOM_SIZE = 19
"""MiniGrid's LockedRoom grid side (its only registered size)."""


def lockedroom_hallway(size: int = LOCKEDROOM_SIZE) -> tuple[int, int]:
    """The columns of the two walls either side of LockedRoom's hallway (MiniGrid's
    `lWallIdx`, `rWallIdx`): its floor is the three columns between them, rows 1 to size - 2."""
    return size // 2 - 2, size // 2 + 2


def lockedroom_rooms(size: int = LOCKEDROOM_SIZE) -> tuple[tuple[int, int, int, int], ...]:
    """The six rooms of MiniGrid's `LockedRoomEnv` as `(top, left, height, width)`, walls
    included, in MiniGrid's order (left, right, per row of rooms), and their doors' cells
    `(row, col)` on the hallway walls: `((top, left, h, w), (door_row, door_col))` each."""
    (left_wall, right_wall), third = lockedroom_hallway(size), size // 3
    rooms = []
    for n in range(3):
        j = n * third
        rooms.append(((j, 0, third + 1, left_wall + 1), (j + 3, left_wall)))
        rooms.append(((j, right_wall, third + 1, left_wall + 1), (j + 3, right_wall)))
    return tuple(rooms)


def sample_lockedroom(key: jax.Array, size: int = LOCKEDROOM_SIZE) -> Layout:
    """A LockedRoom layout, MiniGrid's `LockedRoomEnv` draw for draw in distribution: a
    hallway three cells wide down the middle, three rooms on each side behind closed doors of
    six distinct colours; one room, uniform, is locked and holds the goal square (uniform over
    its interior); the key, of the locked door's colour, lies in one of the other five rooms
    (uniform, then uniform over its interior); the agent anywhere in the hallway, facing any way.

    Solvable by construction: every room's door opens onto the hallway, rooms are empty but
    for the key or the goal, and the locked door opens with the key; nothing needs dropping
    (the goal square is walked onto carrying the key). Jittable and vmappable."""
    rooms = lockedroom_rooms(size)
    tops = jnp.asarray([r[0] for r in rooms], jnp.int32)
    doors = jnp.asarray([r[1] for r in rooms], jnp.int32)
    u = jax.random.bits(key, (12,), dtype=jnp.uint32)
    below = lambda i, m: _below(u[i], jnp.asarray(m))
    locked = below(0, 6)
    key_room = (locked + 1 + below(1, 5)) % 6

    def inside(room, first):
        top, left, h, w = tops[room]
        return jnp.stack([top + 1 + _below(u[first], h - 2), left + 1 + _below(u[first + 1],
                                                                               w - 2)])

    # Six distinct colours, one per room: a uniform permutation by sorting random words.
    colours = jnp.argsort(jax.random.bits(jax.random.fold_in(key, 1), (6,), jnp.uint32))
    colours = colours.astype(jnp.int32) % NUM_COLOURS
    others = (locked + 1 + jnp.arange(5)) % 6
    left_wall, right_wall = lockedroom_hallway(size)
    agent = jnp.stack([1 + below(6, size - 2), left_wall + 1 + below(7, right_wall - left_wall
                                                                       - 1)])
    return Layout(
        room=jnp.asarray([size, size], jnp.int32),
        door_pos=doors[locked], door_colour=colours[locked],
        key_pos=inside(key_room, 2)[None], key_colour=colours[locked][None],
        lava_pos=jnp.zeros((0, 2), jnp.int32),
        agent_pos=agent.astype(jnp.int32), agent_dir=below(8, 4),
        closed_door_pos=doors[others], closed_door_colour=colours[others],
        goal_pos=inside(locked, 4)[None].astype(jnp.int32))


FETCH_TAGS = (KEY, BALL)  # the kinds of object MiniGrid's Fetch draws


def sample_fetch(key: jax.Array, size: int, n_objects: int) -> Layout:
    """A Fetch layout, MiniGrid's `FetchEnv` draw for draw in distribution: one walled
    `size x size` room; `n_objects` objects, each a key or a ball (uniform) of a uniform colour
    (repeats allowed), on distinct uniform interior cells; the agent on another, facing any
    way; the mission names the kind and colour of one object, uniform.

    Solvable unless the mission's object (or the agent) is walled in by other objects in a
    corner: with 3 objects in an 8 x 8 room that is 27 layouts in 100,000
    (`python bench/fetch_solvable.py`), which MiniGrid draws too (we keep its distribution).
    No door, no key to use: picking up anything ends the episode. Jittable and vmappable."""
    inner = size - 2
    u = jax.random.bits(key, (2 * n_objects + 2,), dtype=jnp.uint32)
    # distinct cells: a uniform permutation of the interior, by sorting random words
    order = jnp.argsort(jax.random.bits(jax.random.fold_in(key, 1), (inner * inner,),
                                        jnp.uint32))[: n_objects + 1].astype(jnp.int32)
    cells = jnp.stack([1 + order // inner, 1 + order % inner], axis=-1)
    tags = jnp.asarray(FETCH_TAGS, jnp.int32)[_below(u[:n_objects], jnp.asarray(2))]
    colours = _below(u[n_objects: 2 * n_objects], jnp.asarray(NUM_COLOURS))
    target = _below(u[2 * n_objects], jnp.asarray(n_objects))
    return Layout(
        room=jnp.asarray([size, size], jnp.int32), door_pos=jnp.zeros((2,), jnp.int32),
        door_colour=jnp.zeros((), jnp.int32), key_pos=jnp.zeros((0, 2), jnp.int32),
        key_colour=jnp.zeros((0,), jnp.int32), lava_pos=jnp.zeros((0, 2), jnp.int32),
        agent_pos=cells[n_objects], agent_dir=_below(u[2 * n_objects + 1], jnp.asarray(4)),
        object_pos=cells[:n_objects], object_tag=tags, object_colour=colours,
        mission=jnp.stack([tags[target], colours[target]]))


# A fixed odd multiplier per hashed integer (drawn once; changing them changes every split).
_HASH_MULT = np.random.default_rng(0x1A70).integers(1, 2**31, size=64, dtype=np.int64) * 2 + 1
HELD_OUT_SHARE = 8  # one map in 8 is held out
SPLIT = "map-v2"
"""The split's version, recorded by datasets and evaluations: `map-v2` hashes the map alone
(room, door, keys, lava), so a held-out map is never seen in training from any start; `v1`
(before 2026-12-05) also hashed the agent's start, so most held-out layouts shared their map
with a training layout."""


def map_hash(layout: Layout) -> jax.Array:
    """`u32[]`: a hash of the map (room, doors, keys, lava, boxes, balls, loose objects), not of
    where the agent starts or of the mission. One environment (vmap for batches)."""
    parts = jnp.concatenate([jnp.ravel(x).astype(jnp.uint32) for x in (
        layout.room, layout.door_pos, layout.door_colour, layout.key_pos, layout.key_colour,
        layout.lava_pos, layout.box_pos, layout.box_colour, layout.ball_pos,
        layout.ball_colour, layout.closed_door_pos, layout.closed_door_colour,
        layout.goal_pos, layout.object_pos, layout.object_tag, layout.object_colour)])
    mult = jnp.asarray(_HASH_MULT[: parts.shape[0]].astype(np.uint32))
    h = jnp.sum(parts * mult, dtype=jnp.uint32)
    h = (h ^ (h >> 16)) * jnp.uint32(0x45D9F3B)
    return h ^ (h >> 16)


def held_out(layout: Layout) -> jax.Array:
    """`bool[]`: the layout's map belongs to the held-out split (1 map in `HELD_OUT_SHARE`),
    which `layouts="train"` never draws and `layouts="heldout"` always does."""
    return map_hash(layout) % HELD_OUT_SHARE == 0


def recoloured(layout: Layout, shift: jax.Array) -> Layout:
    """The layout with every colour (doors, keys) moved `shift` steps around the colour wheel:
    the same room, positions and solution (key 0 still opens the door; Fetch's mission names
    the same object), another map."""
    shifted = lambda c: (c + shift) % NUM_COLOURS  # noqa: E731
    mission = layout.mission
    if mission.shape[0]:
        mission = mission.at[1].set(shifted(mission[1]))
    return layout.replace(door_colour=shifted(layout.door_colour),
                          key_colour=shifted(layout.key_colour),
                          closed_door_colour=shifted(layout.closed_door_colour),
                          object_colour=shifted(layout.object_colour), mission=mission)


def into_training_map(layout: Layout) -> Layout:
    """A training-map layout from any draw without drawing again: the layout itself when its
    map is a training map, else it recoloured (`recoloured`) by the first of the
    `NUM_COLOURS - 1` shifts whose map is one. Only when every shift is held out (about 1 draw
    in 8^6) is the result still held out; the caller draws again then. Training maps are thus
    not drawn exactly uniformly (a map that recolours of held-out maps land on is drawn more
    often, by at most the held-out share, 1/8): the price of a reset without a retry loop,
    which under `vmap` runs as long as the unluckiest environment of the batch."""
    shifts = jnp.arange(NUM_COLOURS, dtype=jnp.int32)
    held = jax.vmap(lambda s: held_out(recoloured(layout, s)))(shifts)
    return recoloured(layout, shifts[jnp.argmin(held)])  # the first training shift, else 0
