"""Layouts: every generated layout is solvable, and a single draw never fails where we skip retries."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import solve
from jaxrl3m import envs
from jaxrl3m.envs import layout as layout_lib
from jaxrl3m.envs.types import DOOR, KEY, LAVA, NUM_ACTIONS

N_SEEDS = 10_000


@pytest.mark.parametrize("task", ["DoorKey", "LavaDoorKey", "ColoredDoorKey"])
def test_ten_thousand_layouts_are_solvable(task):
    """A shortest-path solver (tests/helpers.py, independent of the env) solves every layout, and
    its plans, executed by the env, succeed (checked on a subset) without touching lava."""
    env = envs.make(task)
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(2024), N_SEEDS))
    grids = np.asarray(ts.state.grid)
    pos, dirs = np.asarray(ts.state.agent_pos), np.asarray(ts.state.agent_dir)
    plans = []
    for i in range(N_SEEDS):
        tags = grids[i, ..., 0]
        assert (tags == DOOR).sum() == 1 and (tags == KEY).sum() == env.n_keys
        assert (tags == LAVA).sum() == env.n_lava
        plan = solve(grids[i], pos[i], dirs[i])
        assert plan is not None, f"seed {i} of {task} is unsolvable"
        assert len(plan) <= env.max_steps
        plans.append(plan)

    # Execute the first 512 plans in the environment itself.
    n = 512
    actions = np.full((n, max(map(len, plans[:n]))), NUM_ACTIONS - 1, np.int32)  # pad with 'done'
    for i, p in enumerate(plans[:n]):
        actions[i, : len(p)] = p

    def play(state, acts):
        def body(s, a):
            out = env.step(s, a)
            return out.state, (out.terminated, out.reward)
        return jax.lax.scan(body, state, acts)[1]

    first_state = jax.tree.map(lambda x: x[:n], ts.state)
    term, reward = jax.jit(jax.vmap(play))(first_state, jnp.asarray(actions))
    term, reward = np.asarray(term), np.asarray(reward)
    for i, p in enumerate(plans[:n]):
        assert term[i, len(p) - 1] and reward[i, len(p) - 1] > 0, f"plan {i} failed"
        assert not term[i, : len(p) - 1].any(), f"plan {i} ended early (lava?)"


def test_generation_covers_the_space():
    """Rooms of every size, doors on all four sides, keys anywhere inside, all colours."""
    env = envs.make("ColoredDoorKey")
    lay = jax.jit(jax.vmap(env.sample_layout))(jax.random.split(jax.random.key(5), 20_000))
    rooms = {tuple(r) for r in np.asarray(lay.room)}
    assert rooms == {(h, w) for h in range(5, 11) for w in range(5, 11)}
    door = np.asarray(lay.door_pos)
    h, w = np.asarray(lay.room).T
    sides = {"top": door[:, 0] == 0, "bottom": door[:, 0] == h - 1,
             "left": door[:, 1] == 0, "right": door[:, 1] == w - 1}
    assert all(m.mean() > 0.15 for m in sides.values())
    corners = (sides["top"] | sides["bottom"]) & (sides["left"] | sides["right"])
    assert not corners.any()
    kc = np.asarray(lay.key_colour)
    assert (kc[:, 0] == np.asarray(lay.door_colour)).all() and (kc[:, 1] != kc[:, 0]).all()
    assert set(np.unique(kc[:, 1])) == set(range(6))
    key_cells = {tuple(k) for k in np.asarray(lay.key_pos)[:, 0]}
    assert len(key_cells) == 64  # every interior cell of the largest room gets a key sometimes


def test_single_draw_never_fails_exhaustively():
    """For every room shape up to 10x10, door, agent cell and first obstacle, the second obstacle
    has a cell to go to: sampling needs no retry loop there (see layout.needs_retry)."""
    size = layout_lib.VERIFIED_MAX_SIZE
    rows, cols = np.mgrid[0:size, 0:size]
    to_bits = layout_lib.to_bits

    def second_choices(interior, inside, agent, first, allow_holes):
        free = to_bits(interior)
        keep = to_bits(agent | inside)
        first_ok = (free & layout_lib.removable(free, allow_holes) & ~keep & to_bits(first)).any()
        obstacle = to_bits(first)
        free = free & ~obstacle
        cand = (free & layout_lib.removable(free, allow_holes) & ~keep
                & ~layout_lib._lonely_neighbours(obstacle, free))
        return first_ok, jax.lax.population_count(cand).sum()

    count = jax.jit(jax.vmap(second_choices, in_axes=(None, None, 0, 0, None)))
    checked = 0
    for h in range(5, size + 1):
        for w in range(5, size + 1):
            interior = (rows >= 1) & (rows <= h - 2) & (cols >= 1) & (cols <= w - 2)
            cells = [tuple(c) for c in np.argwhere(interior)]
            insides = {(min(max(r, 1), h - 2), min(max(c, 1), w - 2))
                       for r in range(h) for c in range(w)
                       if (r in (0, h - 1)) != (c in (0, w - 1))}
            pairs = [(a, o) for a in cells for o in cells if a != o]
            agent = np.zeros((len(pairs), size, size), bool)
            first = np.zeros_like(agent)
            for i, (a, o) in enumerate(pairs):
                agent[i][a] = first[i][o] = True
            for ins in insides:
                inside = np.zeros((size, size), bool)
                inside[ins] = True
                ok, n = count(interior, inside, agent, first, (h > 5) | (w > 5))
                ok, n = np.asarray(ok), np.asarray(n)
                # A first obstacle exists for every (agent, door) pair, and then a second one.
                assert ok.reshape(len(cells), -1).any(axis=1).all()
                assert (n[ok] >= 1).all(), (h, w, ins)
                checked += int(ok.sum())
    assert checked > 800_000
    assert not layout_lib.needs_retry(10, 1, 1) and not layout_lib.needs_retry(10, 2, 0)
    assert layout_lib.needs_retry(12, 1, 1) and layout_lib.needs_retry(10, 2, 1)


def test_retry_loop_path_still_produces_valid_layouts():
    """Outside the verified domain (3 obstacles, 12x12) the retry path yields valid layouts."""
    env = envs.make("DoorKey", size=12, min_room=6).__class__(
        name="custom", n_keys=2, n_lava=1, size=12, min_room=6)
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 300))
    grids = np.asarray(ts.state.grid)
    for i in range(300):
        assert solve(grids[i], np.asarray(ts.state.agent_pos[i]), int(ts.state.agent_dir[i]))


def test_a_held_out_draw_is_recoloured_onto_a_training_map():
    """`into_training_map`: training layouts unchanged; held-out ones keep room, positions and
    which key opens the door, change only their colours, and land on a training map."""
    keys = jax.random.split(jax.random.key(3), 4000)
    draw = jax.jit(jax.vmap(lambda k: layout_lib.sample_layout(k, 8, 5, 2, 0)))
    before = draw(keys)
    after = jax.jit(jax.vmap(layout_lib.into_training_map))(before)
    held = np.asarray(jax.vmap(layout_lib.held_out)(before))
    assert 300 < held.sum() < 700  # about 1 in 8
    assert not np.asarray(jax.vmap(layout_lib.held_out)(after)).any()
    for name in ("room", "door_pos", "key_pos", "lava_pos", "agent_pos", "agent_dir"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    same = ~held
    np.testing.assert_array_equal(np.asarray(after.door_colour)[same],
                                  np.asarray(before.door_colour)[same])
    assert (np.asarray(after.door_colour)[held] != np.asarray(before.door_colour)[held]).all()
    np.testing.assert_array_equal(after.key_colour[:, 0], after.door_colour)
    shift = (np.asarray(after.door_colour) - np.asarray(before.door_colour)) % 6
    np.testing.assert_array_equal(np.asarray(after.key_colour),
                                  (np.asarray(before.key_colour) + shift[:, None]) % 6)
