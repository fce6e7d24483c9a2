"""The task API: a task registered with its own guidance gets the teacher, prior tables, the
prior CLI and guided configs, through the same code as the DoorKey family; bad registrations and
mismatched tables fail with errors naming the task and what it lacks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import envs, precompute_priors
from jaxrl3m.core.config import ConfigError
from jaxrl3m.core.evaluation import evaluate
from jaxrl3m.envs import DoorKeyEnv, Guidance
from jaxrl3m.envs.types import DOOR, KEY
from jaxrl3m.teacher.options import oracle_table, task_options
from jaxrl3m.teacher.table import TableError, load_table, make_table, save_table
from jaxrl3m.teacher.teacher import Teacher, reachable_states, teacher_logits

TASK = "test-TwoFactorDoorKey"
OPTIONS = ("explore", "go to the key", "pick up the key", "go to the door", "open the door")
TEXTS = ("You carry nothing and have not seen the key.", "You carry nothing and see the key.",
         "You carry the key and have not seen the door.", "You carry the key and see the door.")


def two_factors(obs):
    """4 states: carrying a key (x2), and whether what to head for next has been seen."""
    tag = obs.grid[..., 0]
    carrying = obs.carrying[0] == KEY
    seen = jnp.where(carrying, (tag == DOOR).any(), (tag == KEY).any())
    return (2 * carrying + seen).astype(jnp.int32)


def two_factor_oracle(i: int) -> tuple[str, ...]:
    return (("explore",), ("go to the key", "pick up the key"), ("explore",),
            ("go to the door", "open the door"))[i]


def guide(version: int = 1, **kw) -> Guidance:
    fields = dict(name="two-factor", version=version, num_states=4, abstract_state=two_factors,
                  describe=TEXTS.__getitem__, options=OPTIONS, oracle=two_factor_oracle)
    return Guidance(**{**fields, **kw})


@pytest.fixture(scope="module")
def task():
    envs.register(TASK, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), guidance=guide(),
                  replace=True)
    yield TASK
    envs._TASKS.pop(TASK, None)


def test_registered_task_gets_the_teacher(task):
    """The oracle of a 4-state abstraction, through the production teacher and evaluation: it
    must solve DoorKey's maps. A teacher that indexed the table with the DoorKey family's 60
    states, or mixed the family's options, would fail or crash here."""
    assert task in envs.tasks() and task in envs.guided_tasks()
    assert task_options(task) == OPTIONS
    table = oracle_table(task)
    assert table.shape == (4, 5)
    env = envs.make(task, layouts="heldout")
    ev = evaluate(env, teacher_logits, Teacher.create(task, table), seeds=1, episodes=300,
                  seed=3, batched=False)
    assert ev["success_mean"] >= 0.98
    # The same rows given to the wrong states (each row moved to the next index): much worse.
    wrong = evaluate(env, teacher_logits, Teacher.create(task, np.roll(table, 1, axis=0)),
                     seeds=1, episodes=300, seed=3, batched=False)
    assert wrong["success_mean"] < 0.5
    assert set(reachable_states(task)) == {0, 1, 2, 3}  # computed: no shipped list for it
    with pytest.raises(ConfigError, match=r"needs \(4, 5\)"):
        Teacher.create(task, oracle_table("DoorKey"))


def test_prior_tables_and_cli_for_a_registered_task(task, tmp_path, capsys):
    out = tmp_path / "uniform.json"
    assert precompute_priors.main(["--task", task, "--backend", "uniform", "--out",
                                   str(out)]) == 0
    assert "of the 4 reachable abstract states" in capsys.readouterr().out
    table = load_table(out, task)
    assert table.metadata["abstraction"] == "two-factor"
    assert table.metadata["states"] == list(TEXTS)
    with pytest.raises(TableError, match=f"computed for task {TASK!r}, not 'DoorKey'"):
        load_table(out, "DoorKey")
    doorkey = save_table(make_table("DoorKey", oracle_table("DoorKey"), backend="oracle"),
                         tmp_path / "doorkey.json")
    with pytest.raises(TableError, match=f"computed for task 'DoorKey', not {TASK!r}"):
        load_table(doorkey, task)
    # The abstraction changes (a new version): tables of the old one are refused.
    envs.register(task, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), guidance=guide(version=2),
                  replace=True)
    try:
        with pytest.raises(TableError, match="abstraction version 1, task .* has version 2"):
            load_table(out, task)
    finally:
        envs.register(task, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), guidance=guide(),
                      replace=True)


def test_guided_configs_accept_a_registered_task_and_refuse_one_without(task):
    from jaxrl3m.runner.runs import load_config, setup
    c, run = load_config("guided", {"task": task, "prior": "oracle"})
    s = setup(c, run)
    assert s.algo.config.options == OPTIONS
    envs.register("test-Unguided", DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), replace=True)
    try:
        c, run = load_config("guided", {"task": "test-Unguided", "prior": "oracle"})
        with pytest.raises(ConfigError, match="'test-Unguided' has no abstract states"):
            setup(c, run)
        with pytest.raises(ConfigError, match="'test-Unguided' has no abstract states.*register"):
            envs.guidance("test-Unguided")
    finally:
        envs._TASKS.pop("test-Unguided", None)


@pytest.mark.parametrize("kw, message", [
    (dict(num_states=0), "num_states must be a positive integer"),
    (dict(options=("explore", "explore")), "options must be distinct"),
    (dict(options=[]), "options must be a non-empty tuple"),
    (dict(reachable=(0, 9)), r"reachable must list indices in \[0, 4\)"),
    (dict(describe="text"), "abstract_state and describe must be functions"),
])
def test_bad_guidance_names_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        guide(**kw)


def test_bad_registrations_and_oracles(task):
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        envs.register(task, DoorKeyEnv)
    with pytest.raises(ValueError, match="dataclass class with a `name` field"):
        envs.register("test-Bad", object)
    with pytest.raises(ValueError, match=r"has no field\(s\) \['n_doors'\]"):
        envs.register("test-Bad", DoorKeyEnv, fixed=dict(n_doors=2))
    with pytest.raises(ValueError, match="guidance must be a jaxrl3m.envs.Guidance"):
        envs.register("test-Bad", DoorKeyEnv, guidance={"options": OPTIONS})
    assert "test-Bad" not in envs.tasks()
    wrong = guide(oracle=lambda i: ("fly",))
    with pytest.raises(ValueError, match=r"oracle's options in abstract state 0 are \['fly'\]"):
        wrong.oracle_options(TASK, 0)
    no_oracle = guide(oracle=None)
    with pytest.raises(ConfigError, match="has guidance but no oracle"):
        no_oracle.oracle_options(TASK, 0)
    np.testing.assert_array_equal(
        oracle_table("DoorKey"),
        np.stack([np.isin(task_options("DoorKey"), envs.guidance("DoorKey").oracle(i))
                  / len(envs.guidance("DoorKey").oracle(i)) for i in range(60)]))


def test_the_how_to_script_runs(capsys):
    """docs/tasks.md includes docs/own_task.py: it must run as printed (without --train)."""
    import runpy
    from pathlib import Path
    try:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / "docs" / "own_task.py"),
                       run_name="__main__")
    finally:
        envs._TASKS.pop("MyDoorKey", None)
    out = capsys.readouterr().out
    assert "succeeds in 1.000 of 500 held-out episodes" in out
    assert "reachable abstract states (0, 1, 2, 3)" in out
    assert "find a key, pick it up and open a locked door" in out  # Guidance.description


def test_prompts_of_a_registered_task_use_its_description_and_examples(task):
    from jaxrl3m.teacher.prompt import load_prompt
    envs.register(task, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), replace=True,
                  guidance=guide(description="Find the key, then the door.",
                                 examples=({"state": 2, "answer": "explore"},)))
    try:
        prompt = load_prompt(task=task)
        msgs = prompt.messages(task, list(OPTIONS), TEXTS[1])
        assert "Find the key, then the door." in msgs[0]["content"]
        # ... and recorded in the prompt that tables keep (its hash covers what the model read).
        assert prompt.tasks[task] == "Find the key, then the door."
        assert [m["content"] for m in msgs[1:]] == [
            f"{TEXTS[2]} What should the agent do next?", "explore",
            f"{TEXTS[1]} What should the agent do next?"]
        envs.register(task, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), replace=True,
                      guidance=guide())
        with pytest.raises(ValueError, match="no description for task"):
            load_prompt(task=task).messages(task, list(OPTIONS), TEXTS[1])
        with pytest.raises(ValueError, match="each example must be"):
            guide(examples=({"state": 2, "answer": "fly"},))
    finally:
        envs.register(task, DoorKeyEnv, fixed=dict(n_keys=1, n_lava=0), guidance=guide(),
                      replace=True)


def test_unlock_is_a_registration_with_its_own_defaults():
    """MiniGrid's Unlock: 6x6 room, door on its east wall, 288 steps unless overridden; its map
    split and keyword checks are the DoorKey family's."""
    env = envs.make("Unlock")
    assert (env.size, env.max_room, env.door_wall, env.max_steps) == (11, 6, "east", 288)
    assert envs.make("Unlock", max_steps=100).max_steps == 100
    assert "door_wall" not in envs.keywords("Unlock") and "max_steps" in envs.keywords("Unlock")
    assert envs.guidance("Unlock").options == task_options("DoorKey")
    with pytest.raises(ValueError, match="door_wall='west' is unknown"):
        envs.make("DoorKey", door_wall="west")
    with pytest.raises(ValueError, match="at least 2 \\* max_room - 1 = 11"):
        envs.make("DoorKey", door_wall="east", max_room=6, size=10)
    with pytest.raises(ValueError, match="both fixed and defaults"):
        envs.register("test-Bad", DoorKeyEnv, fixed=dict(size=8), defaults=dict(size=9))


def test_unlockpickup_abstraction_reads_door_hands_key_and_box():
    from jaxrl3m.envs import box_abstraction as bx
    from jaxrl3m.envs.types import BOX, DOOR_LOCKED, DOOR_OPEN, EMPTY, NOTHING
    texts = [bx.describe(i) for i in range(bx.NUM_STATES)]
    assert len(set(texts)) == bx.NUM_STATES
    env = envs.make("UnlockPickup")
    obs = env.reset(jax.random.key(0)).obs
    grid = np.zeros_like(np.asarray(obs.grid))
    fn = jax.jit(bx.abstract_state)

    def index(cells, carrying=NOTHING):
        g = grid.copy()
        for (r, c), code in cells.items():
            g[r, c] = code
        return int(fn(obs.replace(grid=jnp.asarray(g), carrying=jnp.asarray(carrying))))

    assert bx.decode(index({})) == (0, 0, 0, 0)
    assert bx.decode(index({(2, 2): (KEY, 1, 0)})) == (0, 0, 1, 0)
    assert bx.decode(index({(3, 5): (DOOR, 1, DOOR_LOCKED)}, (KEY, 1, 0))) == (1, 1, 0, 0)
    i = index({(3, 5): (DOOR, 1, DOOR_OPEN), (2, 7): (BOX, 3, 0), (1, 1): (EMPTY, 0, 0)})
    assert bx.decode(i) == (2, 0, 0, 1)
    assert bx.oracle(i) == ("go to the box", "pick up the box")
    assert texts[i] == "You see an open door and a box. You carry nothing."
    # Carrying the key through an open door: drop it first (one object at a time).
    assert bx.oracle(index({(3, 5): (DOOR, 1, DOOR_OPEN)}, (KEY, 1, 0))) == ("drop the key",)
    envs.register("test-Bad", DoorKeyEnv, fixed=dict(goal="pickup"))
    try:
        with pytest.raises(ValueError, match="goal='pickup' needs a box to pick up"):
            envs.make("test-Bad")
    finally:
        envs._TASKS.pop("test-Bad", None)
    with pytest.raises(ValueError, match="boxes go in the second room"):
        envs.make("DoorKey", n_boxes=1)


def test_blockedunlockpickup_ball_blocks_the_door_until_moved():
    """BlockedUnlockPickup: the abstraction's ball flag, the oracle's order (ball away first),
    and the two skill rules the ball needs: explore faces a ball that hides an unseen cell (the
    door can be hidden from every pose the agent can stand in), and drop steps forward out of a
    corner where no side is a good drop spot (the teacher would turn forever)."""
    from jaxrl3m.envs import box_abstraction as bx
    from jaxrl3m.envs.types import BALL, DOOR_LOCKED, DOOR_OPEN, EMPTY, NOTHING, UNSEEN, WALL
    from jaxrl3m.teacher.skills import skill_outputs
    from jaxrl3m.envs.types import DROP, FORWARD, LEFT
    texts = [bx.describe(i, blocked=True) for i in range(bx.BLOCKED_NUM_STATES)]
    assert len(set(texts)) == bx.BLOCKED_NUM_STATES
    env = envs.make("BlockedUnlockPickup")
    assert env.blocked and envs.guidance("BlockedUnlockPickup").options == bx.BLOCKED_OPTIONS
    obs = env.reset(jax.random.key(0)).obs
    fn = jax.jit(functools.partial(bx.abstract_state, blocked=True))
    room = np.full(np.asarray(obs.grid).shape, (WALL, 0, 0), np.uint8)
    room[1:5, 1:5] = (EMPTY, 0, 0)  # the first room, 4 x 4 inside; the door on its east wall

    def look(cells, carrying=NOTHING, pos=(2, 2), direction=0, base=room):
        g = base.copy()
        for (r, c), code in cells.items():
            g[r, c] = code
        return obs.replace(grid=jnp.asarray(g), carrying=jnp.asarray(carrying, jnp.uint8),
                           agent_pos=jnp.asarray(pos, jnp.int32),
                           agent_dir=jnp.asarray(direction, jnp.int32))

    locked, ball = (DOOR, 1, DOOR_LOCKED), (BALL, 2, 0)
    blocked = look({(3, 5): locked, (3, 4): ball, (1, 1): (KEY, 1, 0)})
    assert bx.decode(int(fn(blocked)), True) == (1, 0, 1, 0, 1)
    assert bx.oracle(int(fn(blocked)), True) == ("go to the ball", "pick up the ball")
    assert "a ball in front of the door" in bx.describe(int(fn(blocked)), True)
    aside = look({(3, 5): locked, (2, 4): ball, (1, 1): (KEY, 1, 0)})  # diagonal: not blocking
    assert bx.decode(int(fn(aside)), True) == (1, 0, 1, 0, 0)
    assert bx.oracle(int(fn(aside)), True) == ("go to the key", "pick up the key")
    with_key = look({(3, 5): locked, (3, 4): ball}, (KEY, 1, 0))
    assert bx.oracle(int(fn(with_key)), True) == ("drop the key",)  # hands free for the ball
    assert bx.oracle(int(fn(look({(3, 5): locked}, (BALL, 2, 0)))), True) == ("drop the ball",)
    opened = look({(3, 5): (DOOR, 1, DOOR_OPEN)}, (KEY, 1, 0))
    assert bx.oracle(int(fn(opened)), True) == ("drop the key",)
    # UnlockPickup's 36 states are untouched by the flag.
    assert bx.decode(int(bx.abstract_state(blocked))) == (1, 0, 1, 0)

    def skill(o, name):
        out = skill_outputs(o, ("explore", name))
        return np.asarray(out.probs[1]), bool(out.applicable[1])

    # The door's cell (1, 5) unseen, visible only past the ball at (1, 4): explore goes to face
    # the ball (from (2, 4) facing east: turn left), not applicable without the ball rule.
    hidden = look({(1, 5): (UNSEEN, 0, 0), (1, 4): ball}, pos=(2, 4), direction=0)
    probs, applicable = skill(hidden, "explore")
    assert applicable and probs[LEFT] == 1.0
    # In the corner (1, 4) with the key on the west and the cell south next to the door: no
    # side is a drop spot, so drop steps forward (south); once there it turns to a free side.
    corner = look({(2, 5): locked, (1, 3): (KEY, 1, 0)}, (BALL, 2, 0), pos=(1, 4), direction=1)
    assert skill(corner, "drop the ball")[0][FORWARD] == 1.0
    stepped = look({(2, 5): locked, (1, 3): (KEY, 1, 0)}, (BALL, 2, 0), pos=(2, 4), direction=1)
    assert skill(stepped, "drop the ball")[0][DROP] == 1.0  # (3, 4) in front: free, not by the door
    free = look({(3, 5): locked}, (BALL, 2, 0), pos=(2, 2), direction=0)
    assert skill(free, "drop the ball")[0][DROP] == 1.0
    # Every sampled layout has the ball west of the door, the agent and the key elsewhere.
    lays = jax.vmap(env.sample_layout)(jax.random.split(jax.random.key(1), 300))
    ball_pos, door_pos = np.asarray(lays.ball_pos)[:, 0], np.asarray(lays.door_pos)
    np.testing.assert_array_equal(ball_pos, door_pos - [0, 1])
    assert not (np.asarray(lays.agent_pos) == ball_pos).all(1).any()
    assert not (np.asarray(lays.key_pos)[:, 0] == ball_pos).all(1).any()


def test_keycorridor_generator_abstraction_and_keywords():
    """KeyCorridor's maps (MiniGrid's structure: the key on the left, the ball behind the locked
    door on the right, the agent in the middle room not facing a door) and its abstraction's
    door factor, which must follow the locked door after it opens (by the key's colour, unique
    among the doors by construction)."""
    from jaxrl3m.envs import box_abstraction as bx
    from jaxrl3m.envs.layout import map_hash
    from jaxrl3m.envs.types import (BALL, DIR_VEC, DOOR, DOOR_CLOSED, DOOR_LOCKED, DOOR_OPEN,
                                    NOTHING)
    env = envs.make("KeyCorridorS4R3")
    assert (env.size, env.max_steps, env.world) == (10, 480, "corridor")
    lay = jax.jit(jax.vmap(env.sample_layout))(jax.random.split(jax.random.key(2), 2000))
    lay = jax.tree.map(np.asarray, lay)
    assert (lay.key_colour[:, 0] == lay.door_colour).all()
    assert (lay.closed_door_colour != lay.door_colour[:, None]).all()
    assert (lay.key_pos[:, 0, 1] < 3).all() and (lay.ball_pos[:, 0, 1] > 6).all()
    assert (lay.door_pos[:, 1] == 6).all()  # the locked door on the hallway's east side
    # The ball is in the locked room: the same row of rooms as the locked door.
    assert ((lay.ball_pos[:, 0, 0] - 1) // 3 == (lay.door_pos[:, 0] - 1) // 3).all()
    front = lay.agent_pos + np.asarray(DIR_VEC)[lay.agent_dir]
    doors = np.concatenate([lay.closed_door_pos, lay.door_pos[:, None]], 1)
    assert not (front[:, None] == doors).all(-1).any()
    assert set(lay.agent_pos[:, 0].tolist()) == {3, 4, 5, 6}  # the hallway's open walls too
    assert len(np.unique(np.asarray(jax.vmap(map_hash)(
        jax.tree.map(jnp.asarray, lay))))) > 1900

    texts = [bx.describe(i, corridor=True) for i in range(bx.NUM_STATES)]
    assert len(set(texts)) == bx.NUM_STATES
    obs = env.reset(jax.random.key(0)).obs
    fn = jax.jit(functools.partial(bx.abstract_state, corridor=True))

    def state(cells, carrying=NOTHING):
        g = np.zeros_like(np.asarray(obs.grid))
        for (r, c), code in cells.items():
            g[r, c] = code
        return bx.decode(int(fn(obs.replace(grid=jnp.asarray(g),
                                            carrying=jnp.asarray(carrying, jnp.uint8)))))

    key = (KEY, 2, 0)
    assert state({(1, 3): (DOOR, 4, DOOR_CLOSED)}) == (0, 0, 0, 0)  # a closed door: not it
    assert state({(4, 6): (DOOR, 2, DOOR_LOCKED), (7, 1): key}) == (1, 0, 1, 0)
    assert state({(4, 6): (DOOR, 2, DOOR_OPEN), (4, 8): (BALL, 1, 0)}, key) == (2, 1, 0, 1)
    assert state({(1, 3): (DOOR, 4, DOOR_OPEN)}, key) == (0, 1, 0, 0)  # another door open
    i = ((1 * 3 + 1) * 2 + 0) * 2 + 0  # the locked door seen, a key carried
    assert bx.decode(i) == (1, 1, 0, 0)
    assert bx.oracle(i, corridor=True) == ("go to the locked door", "open the locked door")
    assert "the locked door" in texts[i] and "You carry a key" in texts[i]
    assert envs.keywords("KeyCorridorS4R3") == ("view_size", "fully_observed", "max_steps",
                                                "layouts")
    corridor = dict(name="KeyCorridorS4R3", world="corridor", room_size=4, rows=3, size=10,
                    goal="ball", n_lava=0)
    for kw, message in [(dict(rows=4), "rows=4"), (dict(room_size=2), "room_size=2"),
                        (dict(size=11), "size=11 must be 3 \\* \\(room_size - 1\\) \\+ 1 = 10"),
                        (dict(n_keys=2), "one key, one ball")]:
        with pytest.raises(ValueError, match=message):
            envs.check_keywords(DoorKeyEnv(**{**corridor, **kw}))
    with pytest.raises(ValueError, match="goal='ball' needs the ball of the corridor world"):
        envs.make("DoorKey", goal="ball")


def test_lockedroom_generator_abstraction_and_keywords():
    """LockedRoom (MiniGrid's): six rooms of distinct door colours, the goal in the locked one,
    the key in another, the agent in the hallway; MiniGrid's 7 x 7 view and 190 steps; the
    abstraction's object is the goal square, walked onto with the key in hand."""
    from jaxrl3m.envs import box_abstraction as bx
    from jaxrl3m.envs.layout import lockedroom_rooms
    from jaxrl3m.envs.types import DOOR, DOOR_LOCKED, DOOR_OPEN, GOAL, GOAL_CELL, NOTHING
    env = envs.make("LockedRoom")
    assert (env.size, env.max_steps, env.view_size, env.world) == (19, 190, 7, "lockedroom")
    lay = jax.tree.map(np.asarray, jax.jit(jax.vmap(env.sample_layout))(
        jax.random.split(jax.random.key(4), 2000)))
    colours = np.concatenate([lay.closed_door_colour, lay.door_colour[:, None]], 1)
    assert all(len(set(c)) == 6 for c in colours.tolist())
    assert (lay.key_colour[:, 0] == lay.door_colour).all()
    rooms = lockedroom_rooms()

    def room_of(pos):
        for i, ((top, left, h, w), _) in enumerate(rooms):
            if top < pos[0] < top + h - 1 and left < pos[1] < left + w - 1:
                return i
        return -1

    for i in range(200):
        door_room = [d for _, d in rooms].index(tuple(lay.door_pos[i]))
        assert room_of(lay.goal_pos[i, 0]) == door_room
        assert room_of(lay.key_pos[i, 0]) not in (-1, door_room)
    assert set(lay.agent_pos[:, 1].tolist()) == {8, 9, 10}
    assert set(lay.agent_pos[:, 0].tolist()) == set(range(1, 18))
    grid = np.asarray(env.init_state(jax.tree.map(lambda x: jnp.asarray(x[0]), lay),
                                     jax.random.key(0)).grid)
    assert (grid[tuple(lay.goal_pos[0, 0])] == GOAL_CELL).all()

    texts = [bx.describe(i, lockedroom=True) for i in range(bx.NUM_STATES)]
    assert len(set(texts)) == bx.NUM_STATES
    obs = env.reset(jax.random.key(0)).obs
    fn = jax.jit(envs.guidance("LockedRoom").abstract_state)

    def state(cells, carrying=NOTHING):
        g = np.zeros_like(np.asarray(obs.grid))
        for (r, c), code in cells.items():
            g[r, c] = code
        return int(fn(obs.replace(grid=jnp.asarray(g),
                                  carrying=jnp.asarray(carrying, jnp.uint8))))

    oracle = envs.guidance("LockedRoom").oracle
    assert oracle(state({(10, 1): (KEY, 2, 0)})) == ("go to the key", "pick up the key")
    assert oracle(state({(3, 11): (DOOR, 2, DOOR_LOCKED)}, (KEY, 2, 0))) == (
        "go to the locked door", "open the locked door")
    opened = state({(3, 11): (DOOR, 2, DOOR_OPEN), (4, 17): (GOAL, 1, 0)}, (KEY, 2, 0))
    assert bx.decode(opened) == (2, 1, 0, 1) and oracle(opened) == ("go to the goal",)
    assert "the goal square" in texts[opened]
    # The last skill steps onto the goal once it faces it (the episode's success).
    from jaxrl3m.envs.types import FORWARD
    from jaxrl3m.teacher.skills import skill_outputs
    g = np.zeros_like(np.asarray(obs.grid))
    g[4, 17] = (GOAL, 1, 0)
    out = skill_outputs(obs.replace(grid=jnp.asarray(g), agent_pos=jnp.asarray([4, 16]),
                                    agent_dir=jnp.asarray(0)), ("go to the goal",),
                        envs.guidance("LockedRoom").skill_names)
    assert bool(out.applicable[0]) and float(out.probs[0, FORWARD]) == 1.0
    with pytest.raises(ValueError, match="size=17: LockedRoom's rooms are laid out"):
        envs.check_keywords(DoorKeyEnv(name="LockedRoom", world="lockedroom", size=17,
                                       goal="goal", n_lava=0))
    with pytest.raises(ValueError, match="goal='goal' needs LockedRoom's goal square"):
        envs.make("DoorKey", goal="goal")


def test_fetch_generator_mission_abstraction_and_keywords():
    """Fetch (MiniGrid's Fetch-8x8-N3): three keys or balls on distinct interior cells, the
    agent on another, the mission naming one of them (in the observation, the network's input
    and the flat gym observation); the abstraction reads the mission; the kind-only skills may
    pick up the wrong object, the mission's skills never do."""
    from jaxrl3m.envs import mission_abstraction as ma
    from jaxrl3m.envs.gym_api import flat_observation
    from jaxrl3m.envs.types import BALL, EMPTY_CELL, PICKUP, RED, BLUE
    from jaxrl3m.nets.encoders import NUM_CELL_CODES, cell_codes
    from jaxrl3m.teacher.skills import skill_outputs
    env = envs.make("Fetch")
    assert (env.size, env.max_steps, env.view_size, env.world) == (8, 320, 7, "fetch")
    lay = jax.tree.map(np.asarray, jax.jit(jax.vmap(env.sample_layout))(
        jax.random.split(jax.random.key(4), 2000)))
    cells = np.concatenate([lay.object_pos, lay.agent_pos[:, None]], 1)
    assert ((cells >= 1) & (cells <= 6)).all()
    assert all(len({tuple(c) for c in cs}) == 4 for cs in cells.tolist())
    named = (lay.object_tag == lay.mission[:, :1]) & (lay.object_colour == lay.mission[:, 1:])
    assert named.any(1).all()
    assert set(lay.object_tag.ravel().tolist()) == {KEY, BALL}
    assert set(lay.object_colour.ravel().tolist()) == set(range(6))
    # every object is the mission's about as often (uniform choice of the target)
    first = (lay.object_tag[:, 0] == lay.mission[:, 0]) & (
        lay.object_colour[:, 0] == lay.mission[:, 1])
    assert 0.3 < first.mean() < 0.45  # 1/3, plus look-alikes
    # A held-out draw recoloured onto a training map: objects and mission move together.
    from jaxrl3m.envs import layout as layout_lib
    held = np.asarray(jax.vmap(layout_lib.held_out)(lay))
    after = jax.tree.map(np.asarray, jax.jit(jax.vmap(layout_lib.into_training_map))(lay))
    assert 150 < held.sum() < 350 and not np.asarray(jax.vmap(layout_lib.held_out)(after)).any()
    assert (after.mission[held, 1] != lay.mission[held, 1]).all()
    np.testing.assert_array_equal(after.object_pos, lay.object_pos)
    assert ((after.object_tag == after.mission[:, :1]) & (
        after.object_colour == after.mission[:, 1:])).any(1).all()
    ts = env.reset(jax.random.key(0))
    assert ts.obs.mission.shape == (3,)
    codes, _ = cell_codes(ts.obs, window=11)
    m = np.asarray(ts.obs.mission).astype(int)
    assert codes.shape == (122,) and int(codes[-1]) == NUM_CELL_CODES + m[0] * 6 + m[1]
    assert flat_observation(ts.obs).shape == (8 * 8 * 3 + 6,)

    # the abstraction: the mission's object unseen / seen / in front, another object in front
    g = np.zeros_like(np.asarray(ts.obs.grid))
    g[1:7, 1:7] = EMPTY_CELL
    obs = ts.obs.replace(grid=jnp.asarray(g), agent_pos=jnp.asarray([3, 3]),
                         agent_dir=jnp.asarray(0), mission=jnp.asarray([KEY, RED, 0], jnp.uint8))
    fn = jax.jit(envs.guidance("Fetch").abstract_state)
    oracle = envs.guidance("Fetch").oracle

    def with_cells(cells, mission=(KEY, RED, 0)):
        grid = g.copy()
        for (r, c), code in cells.items():
            grid[r, c] = code
        return obs.replace(grid=jnp.asarray(grid), mission=jnp.asarray(mission, jnp.uint8))

    unseen = with_cells({(5, 5): (KEY, BLUE, 0)})
    assert ma.decode(int(fn(unseen))) == (0, 0, 0) and oracle(int(fn(unseen))) == ("explore",)
    seen = with_cells({(5, 5): (KEY, RED, 0), (3, 4): (BALL, RED, 0)})
    assert ma.decode(int(fn(seen))) == (0, 1, 1)
    assert oracle(int(fn(seen))) == ("go to the object of the mission",)
    front = with_cells({(3, 4): (BALL, RED, 0)}, mission=(BALL, RED, 0))
    assert ma.decode(int(fn(front))) == (1, 2, 0)
    texts = [ma.describe(i) for i in range(ma.NUM_STATES)]
    assert "ball" in texts[int(fn(front))] and "in front of you" in texts[int(fn(front))]
    # the kind-only skill picks up a wrong key in front; the mission's skill does not
    wrong = with_cells({(3, 4): (KEY, BLUE, 0), (5, 5): (KEY, RED, 0)})
    out = skill_outputs(wrong, ("pick up the key", "pick up the object of the mission",
                                "go to the object of the mission"))
    assert [bool(a) for a in out.applicable] == [True, False, True]
    assert float(out.probs[0, PICKUP]) == 1.0
    right = skill_outputs(front, ("pick up the object of the mission",))
    assert bool(right.applicable[0]) and float(right.probs[0, PICKUP]) == 1.0
    with pytest.raises(ValueError, match="goal='fetch' needs Fetch's objects"):
        envs.make("DoorKey", goal="fetch")
    with pytest.raises(ValueError, match="n_objects=40 must be between 1 and 35"):
        envs.make("Fetch", n_objects=40)
    with pytest.raises(ValueError, match="n_objects=2: loose objects are Fetch's"):
        envs.make("DoorKey", n_objects=2)
    with pytest.raises(ValueError, match="needs an observation with a mission"):
        envs.guidance("Fetch").abstract_state(envs.make("DoorKey").reset(jax.random.key(0)).obs)


def test_a_mission_leaves_the_other_tasks_states_alone_and_a_source_must_fit():
    """Fetch's mission lives in its own state and observation classes: the other tasks' states
    and observations keep their pytree structure, so their checkpoints (written before Fetch
    existed) still restore. A source policy of a task with another observation (DoorKey's, for
    Fetch: one input code fewer) is refused by name, before anything runs."""
    from jaxrl3m.algos.ppo import PPOConfig, make_ppo
    from jaxrl3m.envs.types import EnvState, MissionEnvState, Observation
    from jaxrl3m.runner.runs import check_source_fits
    ts = envs.make("DoorKey").reset(jax.random.key(0))
    assert type(ts.state) is EnvState and type(ts.obs) is Observation
    assert envs.mission_of(ts.obs) is None
    assert jax.tree.structure(ts.state).num_leaves == 7
    fetch = envs.make("Fetch").reset(jax.random.key(0))
    assert type(fetch.state) is MissionEnvState and envs.mission_of(fetch.obs).shape == (3,)
    source = make_ppo(PPOConfig(task="DoorKey", window=7))
    params = jax.eval_shape(source.init_params, jax.random.key(0))
    check_source_fits(("DoorKey", params), make_ppo(PPOConfig(task="LavaDoorKey", window=7)),
                      "LavaDoorKey")  # the same observation: fits
    with pytest.raises(ConfigError, match=r"source policy \(task 'DoorKey'\) does not fit task "
                                          r"'Fetch'.*dense0.*one more input"):
        check_source_fits(("DoorKey", params), make_ppo(PPOConfig(task="Fetch", window=7)),
                          "Fetch")


def test_the_transfer_study_refuses_a_source_that_cannot_see_the_mission(tmp_path):
    """DoorKey's policy cannot act on Fetch (one input code fewer): the study says so and which
    approaches need it before it trains anything."""
    from jaxrl3m.experiments.transfer import run_study
    with pytest.raises(ConfigError, match=r"source policy \(DoorKey\) cannot act on Fetch.*"
                                          r"approaches 3, 5 need it: run --approaches 1"):
        run_study("Fetch", "oracle", 1, ("1", "3", "5"), tmp_path / "out", tmp_path / "runs")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "out").exists()
