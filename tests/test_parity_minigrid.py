"""Parity with gymnasium MiniGrid: same layout, same actions -> same outcome, step by step.

MiniGrid is the reference for the rules (pickup, drop, toggle, lava, truncation), for the view
and its occlusion (`process_vis`), and, accumulated over time, for the remembered map.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import carried_code, minigrid_env, solve
from jaxrl3m import envs
from jaxrl3m.envs.observation import egocentric_view
from jaxrl3m.envs.types import BALL, EMPTY, KEY

pytest.importorskip("minigrid")

MAX_STEPS = 150
KIND_TAG = {"key": KEY, "ball": BALL}


@functools.cache
def _rollout_fn(env):
    """jit(vmap(scan(step))) from given layouts and action sequences."""

    def one(layout, actions):
        ts = env.reset_to(layout)

        def body(state, a):
            out = env.step(state, a)
            f = out.final_obs
            return out.state, (out.reward, out.terminated, out.truncated, f.grid, f.agent_pos,
                               f.agent_dir, f.carrying)

        _, trace = jax.lax.scan(body, ts.state, actions)
        return ts.obs.grid, trace

    return jax.jit(jax.vmap(one))


def _minigrid_memory(ref, memory):
    """Writes what the MiniGrid agent sees now into `memory` (world coordinates, [row, col])."""
    _, vis = ref.gen_obs_grid()
    image = ref.gen_obs()["image"]
    v = ref.agent_view_size
    for y in range(ref.height):
        for x in range(ref.width):
            vx, vy = ref.get_view_coords(x, y)
            if 0 <= vx < v and 0 <= vy < v and vis[vx, vy]:
                if (x, y) == tuple(ref.agent_pos):  # MiniGrid draws the carried object there
                    obj = ref.grid.get(x, y)
                    memory[y, x] = obj.encode() if obj else (EMPTY, 0, 0)
                else:
                    memory[y, x] = image[vx, vy]
    return memory


def _action_sequences(layouts, rng, task="ColoredDoorKey"):
    """Three kinds: uniform random, the optimal plan, and the plan with random detours."""
    seqs = []
    for i in range(len(layouts["agent_dir"])):
        env = envs.make(task)  # only used to build the true grid
        lay = jax.tree.map(lambda x: x[i], layouts["tree"])
        grid = np.asarray(env.init_state(lay, jax.random.key(0)).grid)
        plan = solve(grid, layouts["agent_pos"][i], layouts["agent_dir"][i]) or []  # None: a
        # ball blocks the door (BlockedUnlockPickup; the teacher's actions cover those layouts)
        kind = i % 3
        if kind == 0:
            seq = list(rng.choice([0, 1, 2, 2, 3, 4, 5, 6], size=MAX_STEPS))
        elif kind == 1:
            seq = list(plan)
        else:
            seq = []
            for a in plan:
                while rng.random() < 0.3:
                    seq.append(int(rng.integers(0, 7)))
                seq.append(a)
        seq = (seq + list(rng.integers(0, 7, size=MAX_STEPS)))[:MAX_STEPS]
        seqs.append(seq)
    return np.asarray(seqs, np.int32)


@pytest.mark.parametrize("task", ["DoorKey", "LavaDoorKey", "ColoredDoorKey"])
@pytest.mark.parametrize("view_size", [3, 7])
def test_same_layout_same_actions_same_outcome(task, view_size):
    env = envs.make(task, view_size=view_size, max_steps=MAX_STEPS)
    n = 12
    tree = jax.jit(jax.vmap(env.sample_layout))(jax.random.split(jax.random.key(7), n))
    layouts = {"tree": tree, "agent_pos": np.asarray(tree.agent_pos),
               "agent_dir": np.asarray(tree.agent_dir)}
    rng = np.random.default_rng(0)
    actions = _action_sequences(layouts, rng)
    first_memory, trace = _rollout_fn(env)(tree, jnp.asarray(actions))
    reward, term, trunc, memory, pos, direction, carrying = map(np.asarray, trace)

    outcomes = set()
    for i in range(n):
        ref = minigrid_env(jax.tree.map(lambda x: x[i], tree), view_size=view_size,
                           max_steps=MAX_STEPS)
        ref.reset(seed=0)
        ref_memory = _minigrid_memory(ref, np.zeros((10, 10, 3), np.uint8))
        np.testing.assert_array_equal(np.asarray(first_memory[i]), ref_memory)
        for t, a in enumerate(actions[i]):
            _, r, te, tr, _ = ref.step(int(a))
            tr = tr and not te  # jaxrl3m: termination takes precedence
            ref_memory = _minigrid_memory(ref, ref_memory)
            where = f"{task} layout {i} step {t} action {a}"
            assert bool(term[i, t]) == te, where
            assert bool(trunc[i, t]) == tr, where
            assert reward[i, t] == pytest.approx(r, abs=1e-6), where
            assert tuple(carrying[i, t]) == carried_code(ref), where
            assert (pos[i, t, 1], pos[i, t, 0]) == tuple(ref.agent_pos), where
            assert direction[i, t] == ref.agent_dir, where
            np.testing.assert_array_equal(memory[i, t], ref_memory, err_msg=where)
            if te or tr:
                outcomes.add("success" if r > 0 else ("lava" if te else "truncated"))
                break
    # The sequences exercise the interesting endings, not only time-outs.
    assert "success" in outcomes
    if task == "LavaDoorKey":
        assert "lava" in outcomes or view_size == 7


@pytest.mark.parametrize("view_size", [3, 5, 7])
def test_view_and_occlusion_match_minigrid_at_random_poses(view_size):
    """The egocentric view (cells and visibility) equals MiniGrid's for random poses."""
    env = envs.make("LavaDoorKey", view_size=view_size)
    keys = jax.random.split(jax.random.key(3), 40)
    tree = jax.jit(jax.vmap(env.sample_layout))(keys)
    rng = np.random.default_rng(1)
    view = jax.jit(functools.partial(egocentric_view, view_size=view_size))
    checked = 0
    for i in range(40):
        lay = jax.tree.map(lambda x: x[i], tree)
        grid = env.init_state(lay, jax.random.key(0)).grid
        h, w = np.asarray(lay.room)
        tags = np.asarray(grid)[..., 0]
        free = [(r, c) for r in range(1, h - 1) for c in range(1, w - 1) if tags[r, c] == EMPTY]
        for _ in range(3):
            r, c = free[rng.integers(len(free))]
            d = int(rng.integers(4))
            lay_pose = lay.replace(agent_pos=jnp.asarray([r, c]), agent_dir=jnp.asarray(d))
            ref = minigrid_env(lay_pose, view_size=view_size)
            ref.reset(seed=0)
            ref_grid, ref_vis = ref.gen_obs_grid()
            cells, visible, _ = view(grid, jnp.asarray([r, c]), jnp.asarray(d))
            np.testing.assert_array_equal(np.asarray(visible), ref_vis.T)
            image = ref_grid.encode(ref_vis).transpose(1, 0, 2)
            cells = np.asarray(cells).copy()
            cells[view_size - 1, view_size // 2] = image[view_size - 1, view_size // 2]
            np.testing.assert_array_equal(cells, image)
            checked += 1
    assert checked == 120


def _teacher_actions(env, task, tree, epsilon=0.2):
    """`i32[N, MAX_STEPS]`: what the oracle teacher does from each layout in our environment,
    with `epsilon` uniformly random actions (the episode's own steps; later ones unused)."""
    from jaxrl3m.teacher.options import oracle_table
    from jaxrl3m.teacher.teacher import Teacher
    teacher = Teacher.create(task, oracle_table(task))

    @jax.jit
    def run(tree, key):
        def one(layout, key):
            def body(state, k):
                obs = env.observe(state)
                k_a, k_r, k_e = jax.random.split(k, 3)
                a = teacher.sample(k_a, jax.tree.map(lambda x: x[None], obs), 1)[0, 0]
                a = jnp.where(jax.random.uniform(k_e) < epsilon,
                              jax.random.randint(k_r, (), 0, 7), a)
                return env.step(state, a).state, a
            return jax.lax.scan(body, env.reset_to(layout).state,
                                jax.random.split(key, MAX_STEPS))[1]
        n = tree.agent_dir.shape[0]
        return jax.vmap(one)(tree, jax.random.split(key, n))

    return np.asarray(run(tree, jax.random.key(5)), np.int32)


def _minigrid_layouts(gym_id, seeds, view_size, max_steps=MAX_STEPS):
    """Layouts drawn by gymnasium MiniGrid's own generator for `gym_id`, read into ours, and the
    MiniGrid environments they came from. The locked door is the layout's door; any other
    (closed) doors go to `closed_door_pos`, padded to the same count across seeds by repeating
    the first (writing a door twice is writing it once)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)
    from minigrid.core.constants import COLOR_TO_IDX

    refs, rows = [], []
    for seed in seeds:
        ref = gym.make(gym_id, max_steps=max_steps, agent_view_size=view_size,
                       disable_env_checker=True).unwrapped
        ref.reset(seed=seed)
        cells = {(y, x): ref.grid.get(x, y) for y in range(ref.height) for x in range(ref.width)}
        kinds = {}
        for pos, obj in cells.items():
            if obj is not None and obj.type in ("door", "key", "box", "ball", "goal"):
                kind = "closed" if obj.type == "door" and not obj.is_locked else obj.type
                kinds.setdefault(kind, []).append((list(pos), COLOR_TO_IDX[obj.color]))
        if hasattr(ref, "targetType"):  # Fetch: no door; its keys and balls are loose objects
            loose = [(p, KIND_TAG[kind], c) for kind in ("key", "ball")
                     for p, c in kinds.pop(kind, [])]
            rows.append(dict(
                room=[ref.height, ref.width], door_pos=[0, 0], door_colour=0,
                key_pos=np.zeros((0, 2)), key_colour=[], lava_pos=np.zeros((0, 2)),
                agent_pos=[ref.agent_pos[1], ref.agent_pos[0]], agent_dir=ref.agent_dir,
                object_pos=[p for p, _, _ in loose], object_tag=[t for _, t, _ in loose],
                object_colour=[c for _, _, c in loose],
                mission=[KIND_TAG[ref.targetType], COLOR_TO_IDX[ref.targetColor]]))
            refs.append(ref)
            continue
        (door, door_colour), = kinds["door"]
        rows.append(dict(
            room=[6, 6] if ref.height == 6 else [ref.height, ref.width], door_pos=door,
            door_colour=door_colour,
            key_pos=[p for p, _ in kinds["key"]], key_colour=[c for _, c in kinds["key"]],
            lava_pos=np.zeros((0, 2), np.int32),
            agent_pos=[ref.agent_pos[1], ref.agent_pos[0]], agent_dir=ref.agent_dir,
            box_pos=np.reshape([p for p, _ in kinds.get("box", [])], (-1, 2)),
            box_colour=[c for _, c in kinds.get("box", [])],
            ball_pos=np.reshape([p for p, _ in kinds.get("ball", [])], (-1, 2)),
            ball_colour=[c for _, c in kinds.get("ball", [])],
            closed_door_pos=np.reshape([p for p, _ in kinds.get("closed", [])], (-1, 2)),
            closed_door_colour=[c for _, c in kinds.get("closed", [])],
            goal_pos=np.reshape([p for p, _ in kinds.get("goal", [])], (-1, 2))))
        refs.append(ref)
    most = max(len(r.get("closed_door_colour", ())) for r in rows)
    for r in rows:
        if len(r.get("closed_door_colour", ())):
            extra = most - len(r["closed_door_colour"])
            r["closed_door_pos"] = np.concatenate([r["closed_door_pos"],
                                                   np.repeat(r["closed_door_pos"][:1], extra, 0)])
            r["closed_door_colour"] = np.concatenate([r["closed_door_colour"],
                                                      np.repeat(r["closed_door_colour"][:1],
                                                                extra)])
    tree = jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs), jnp.int32),
                        *[envs.Layout(**{k: np.asarray(v, np.int32) for k, v in r.items()})
                          for r in rows])
    return refs, tree


def _replay_in_minigrid(env, task, refs, tree, actions) -> set[str]:
    """Rolls `actions` out from `tree` in ours and in MiniGrid's environments `refs` (built on
    the same layouts) and asserts every step equal: termination, truncation, reward, hands,
    pose and the remembered map over MiniGrid's rows (the two-room tasks' grids are square,
    wall below, never seen). Returns the endings met ("success", "truncated")."""
    height, width = refs[0].height, refs[0].width
    first_memory, trace = _rollout_fn(env)(tree, jnp.asarray(actions))
    reward, term, trunc, memory, pos, direction, carrying = map(np.asarray, trace)
    assert not np.asarray(memory)[:, :, height:].any()  # below MiniGrid's grid: never seen
    outcomes = set()
    for i, ref in enumerate(refs):
        ref_memory = _minigrid_memory(ref, np.zeros((height, width, 3), np.uint8))
        np.testing.assert_array_equal(np.asarray(first_memory[i])[:height], ref_memory)
        for t, a in enumerate(actions[i]):
            _, r, te, tr, _ = ref.step(int(a))
            tr = tr and not te
            ref_memory = _minigrid_memory(ref, ref_memory)
            where = f"{task} seed {i} step {t} action {a}"
            assert (bool(term[i, t]), bool(trunc[i, t])) == (te, tr), where
            assert reward[i, t] == pytest.approx(r, abs=1e-6), where
            assert tuple(carrying[i, t]) == carried_code(ref), where
            assert (pos[i, t, 1], pos[i, t, 0]) == tuple(ref.agent_pos), where
            assert direction[i, t] == ref.agent_dir, where
            np.testing.assert_array_equal(memory[i, t, :height], ref_memory, err_msg=where)
            if te or tr:
                outcomes.add("success" if r > 0 else "truncated")
                break
    return outcomes


@pytest.mark.parametrize("task, gym_id, view_size", [
    ("Unlock", "MiniGrid-Unlock-v0", 7), ("UnlockPickup", "MiniGrid-UnlockPickup-v0", 7),
    # both view sizes on the task with every object kind (the view code is the same for all)
    ("BlockedUnlockPickup", "MiniGrid-BlockedUnlockPickup-v0", 3),
    ("BlockedUnlockPickup", "MiniGrid-BlockedUnlockPickup-v0", 7)])
def test_two_room_tasks_match_minigrid_own_generators(task, gym_id, view_size):
    """Unlock, UnlockPickup and BlockedUnlockPickup against gymnasium's own environments (their
    generators, their second room): the layouts MiniGrid draws, read into ours, then the same
    actions. MiniGrid's grid is 6 x 11; ours is 11 x 11 with wall below, never seen (the bottom
    wall hides it)."""
    env = envs.make(task, view_size=view_size, max_steps=MAX_STEPS)
    refs, tree = _minigrid_layouts(gym_id, range(12), view_size)
    layouts = {"tree": tree, "agent_pos": np.asarray(tree.agent_pos),
               "agent_dir": np.asarray(tree.agent_dir)}
    actions = _action_sequences(layouts, np.random.default_rng(1), task=task)
    if task != "Unlock":  # half the layouts: the oracle teacher's actions, 20% random
        actions[::2] = _teacher_actions(env, task, jax.tree.map(lambda x: x[::2], tree))
    outcomes = _replay_in_minigrid(env, task, refs, tree, actions)
    # Both kinds of ending: the plans (Unlock) and the teacher (the pickup tasks) succeed.
    assert outcomes == {"success", "truncated"}


@pytest.mark.parametrize("task, view_size", [
    ("KeyCorridorS3R1", 3), ("KeyCorridorS4R3", 7), ("LockedRoom", 7)])
def test_room_worlds_match_minigrid_own_generators(task, view_size):
    """KeyCorridor and LockedRoom against gymnasium's own `MiniGrid-<task>-v0`: the layouts
    its generator draws (KeyCorridor's side rooms joined by `connect_all`'s random doors,
    colours that may repeat), read into ours, then uniform random actions and, on half the
    layouts, the oracle teacher's (20% random). The grids have MiniGrid's shapes (KeyCorridor's
    is `R (S - 1) + 1` rows high: S3R1's 3 x 7)."""
    env = envs.make(task, view_size=view_size, max_steps=MAX_STEPS)
    n = 12
    refs, tree = _minigrid_layouts(f"MiniGrid-{task}-v0", range(n), view_size)
    assert env.grid_shape == (refs[0].height, refs[0].width)
    rng = np.random.default_rng(2)
    actions = rng.choice([0, 1, 2, 2, 3, 4, 5, 6], size=(n, MAX_STEPS)).astype(np.int32)
    actions[::2] = _teacher_actions(env, task, jax.tree.map(lambda x: x[::2], tree))
    outcomes = _replay_in_minigrid(env, task, refs, tree, actions)
    assert outcomes == {"success", "truncated"}


def test_fetch_matches_minigrid_own_generator():
    """Fetch against gymnasium's own `MiniGrid-Fetch-8x8-N3-v0` (MiniGrid sees through walls
    there; in its open room that is what our occluded view sees too): the layouts its generator
    draws (keys and balls of any colour, repeats included, the mission naming one), read into
    ours, then random actions. Half the layouts never pick anything up (they run to the time
    limit); the other half pick up whatever is in front now and then, the mission's object
    (success, reward) or another one (the episode ends with nothing), as MiniGrid's rules say."""
    env = envs.make("Fetch", max_steps=MAX_STEPS)
    n = 16
    refs, tree = _minigrid_layouts("MiniGrid-Fetch-8x8-N3-v0", range(n), 7)
    assert env.grid_shape == (refs[0].height, refs[0].width)
    rng = np.random.default_rng(3)
    actions = rng.choice([0, 1, 2, 2, 2, 3, 4, 5, 6], size=(n, MAX_STEPS)).astype(np.int32)
    actions[::2] = rng.choice([0, 1, 2, 2, 4, 5, 6], size=(n // 2, MAX_STEPS))
    _, trace = _rollout_fn(env)(tree, jnp.asarray(actions))
    reward, term = np.asarray(trace[0]), np.asarray(trace[1])
    outcomes = _replay_in_minigrid(env, "Fetch", refs, tree, actions)
    ended = term.any(1)
    failed = [i for i in range(n) if ended[i] and reward[i].max() == 0]
    assert outcomes == {"success", "truncated"} and failed  # all three endings met
