"""jaxrl3m.teacher.object_skills: skills named in words and parameterised by object, checked
against the library's own skills, and as the whole teacher of a task registered with them."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import random_observations

from jaxrl3m import envs
from jaxrl3m.core.evaluation import evaluate
from jaxrl3m.envs import Guidance
from jaxrl3m.envs.types import (BALL, BOX, DIR_VEC, DOOR, DOOR_OPEN, EMPTY, GOAL, KEY, WALL)
from jaxrl3m.teacher import object_skills as osk
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.skills import skill_outputs
from jaxrl3m.teacher.teacher import Teacher, teacher_logits


def _observations(task: str, **kw):
    """Observations of 32 environments along 16 uniformly random actions (pickups, drops and
    toggles included), flattened to one batch."""
    return random_observations(envs.make(task, **kw), 32, 16, seed=0)


# word name -> the library skill that computes the same thing
SAME = {"go next to the key": "go to the key", "go next to the ball": "go to the ball",
        "go to the box": "go to the box", "pick up the key": "pick up the key",
        "pick up the ball": "pick up the ball", "pick up the box": "pick up the box",
        "explore": "explore, opening closed doors", "drop the ball": "drop the key anywhere"}


def test_words_give_the_library_skills_they_name():
    """Every object BlockedUnlockPickup has (a key, a ball, a box, a locked door), along random
    play: the word-named skills equal the library's skills of the same meaning exactly, and
    a colour keeps only that colour's objects (as if the others were walls)."""
    obs = _observations("BlockedUnlockPickup")
    # The box is behind the locked door and the ball: the same maps seen whole, with their doors
    # open and every other ball lifted out of the way, too.
    whole = _observations("BlockedUnlockPickup", fully_observed=True)
    grid = np.asarray(whole.grid).copy()
    grid[..., 2][grid[..., 0] == DOOR] = DOOR_OPEN
    balls = np.argwhere(grid[..., 0] == BALL)
    grid[tuple(balls[::2].T)] = (EMPTY, 0, 0)
    # ... and with a box put in front of the agent (random play never faces one).
    front = np.asarray(obs.agent_pos) + DIR_VEC[np.asarray(obs.agent_dir)]
    boxed = np.asarray(obs.grid).copy()
    boxed[np.arange(len(front)), front[:, 0], front[:, 1]] = (BOX, 2, 0)
    obs = jax.tree.map(lambda *a: jnp.concatenate(a), obs, whole.replace(grid=grid),
                       obs.replace(grid=boxed))
    words, named = tuple(SAME), tuple(SAME.values())

    @jax.jit
    def both(o):
        return (jax.vmap(lambda x: osk.object_skills(x, words))(o),
                jax.vmap(lambda x: skill_outputs(x, named))(o))
    mine, theirs = both(obs)
    np.testing.assert_array_equal(np.asarray(mine.applicable), np.asarray(theirs.applicable))
    np.testing.assert_array_equal(np.asarray(mine.probs), np.asarray(theirs.probs))
    applicable = np.asarray(mine.applicable).mean(0)
    assert (applicable > 0).all(), dict(zip(words, applicable))  # every skill was exercised

    # "go next to the <colour> key" on ColoredDoorKey (two keys of two colours).
    obs = _observations("ColoredDoorKey")
    grid = np.asarray(obs.grid)
    colour = int(np.bincount(grid[..., 1][grid[..., 0] == KEY]).argmax())
    hidden = grid.copy()
    hidden[(grid[..., 0] == KEY) & (grid[..., 1] != colour)] = (WALL, 0, 0)
    go = jax.jit(jax.vmap(lambda o, c: osk.go_next_to(o, KEY, c), in_axes=(0, None)))
    coloured = go(obs, colour)
    masked = jax.jit(jax.vmap(lambda o: osk.go_next_to(o, KEY)))(obs.replace(grid=hidden))
    np.testing.assert_array_equal(np.asarray(coloured.applicable), np.asarray(masked.applicable))
    np.testing.assert_array_equal(np.asarray(coloured.probs), np.asarray(masked.probs))
    assert (np.asarray(coloured.applicable) != np.asarray(
        jax.jit(jax.vmap(lambda o: osk.go_next_to(o, KEY)))(obs).applicable)).any()


def test_names_are_parsed_once_and_bad_names_say_what_is_read():
    assert osk.parse("Go  next to the RED key").keywords == {"tag": KEY, "colour": 0}
    assert osk.parse("go to the goal").keywords == {"tag": GOAL, "colour": None}
    assert osk.parse("go through the yellow door").keywords == {"colour": 4}
    assert osk.parse("drop whatever you carry") is osk.drop
    for bad in ("fly to the moon", "go next to the magenta key", "pick up the door", "open"):
        with pytest.raises(ValueError, match="names it reads: explore; go next to"):
            osk.parse(bad)


# --8<-- [start:words]
# UnlockPickup (the key, the locked door on the east wall, the box in the room past it) guided by
# options named in words, over an abstraction of eight states.
WORDS = ("explore", "go next to the key", "pick up the key", "go through the door",
         "drop the key", "go next to the box", "pick up the box")
ORACLE = (("explore",), ("go next to the key", "pick up the key"), ("explore",),
          ("go through the door",), ("go through the door",), ("drop the key",), ("explore",),
          ("go next to the box", "pick up the box", "explore"))


def _states(obs):
    """0-3, the door not open: carrying nothing and the key unseen / seen; carrying the key and
    the door unseen / seen. The door open: 4 carrying, the box unseen and the agent not past the
    door or on it; 5 carrying, past it or the box seen, off the door (the key goes down first:
    the box may stand just inside the door); 6 hands empty and the box unseen; 7 the box seen
    (explore still helps where the box was glimpsed through the door but no path to it has
    been seen)."""
    grid = obs.grid
    tag = grid[..., 0]
    door = tag == DOOR
    door_open = (door & (grid[..., 2] == DOOR_OPEN)).any()
    past = obs.agent_pos[1] > jnp.argmax(door.any(0))
    box = (tag == BOX).any()
    before = jnp.where(obs.carrying[0] == KEY, 2 + door.any(), (tag == KEY).any())
    on_door = tag[obs.agent_pos[0], obs.agent_pos[1]] == DOOR  # no key dropped into the doorway
    after = jnp.where(obs.carrying[0] != EMPTY, jnp.where((past | box) & ~on_door, 5, 4),
                      6 + box)
    return jnp.where(door_open, after, before).astype(jnp.int32)


TEXTS = ("You carry nothing and have not seen the key.", "You carry nothing and see the key.",
         "You carry the key and have not seen the door.",
         "You carry the key and see the locked door.",
         "The door is open. You carry the key and stand before the door or on it.",
         "The door is open and you carry the key. You are past the door, or you see the box.",
         "The door is open. You carry nothing and have not seen the box.",
         "The door is open. You carry nothing and see the box.")


def _register(name: str, options=WORDS):
    guide = Guidance(name="words", version=1, num_states=8, abstract_state=_states,
                     describe=TEXTS.__getitem__, options=options,
                     oracle=ORACLE.__getitem__, skills=osk.object_skills,
                     description="You are an agent in two rooms joined by a locked door. A key "
                     "lies in your room and a box in the other. You succeed by picking up the "
                     "box; you can carry one object at a time.")
    envs.register(name, like="UnlockPickup", guidance=guide, replace=True)
# --8<-- [end:words]


def test_a_task_guided_by_words_is_solved():
    """The oracle over the word skills solves UnlockPickup's held-out maps: the key, through the
    locked door (unlock, step on, step off), the key dropped, the box found and picked up."""
    try:
        _register("test-WordsUnlockPickup")
        env = envs.make("test-WordsUnlockPickup", layouts="heldout")
        table = oracle_table("test-WordsUnlockPickup")
        ev = evaluate(env, teacher_logits, Teacher.create("test-WordsUnlockPickup", table),
                      seeds=1, episodes=200, seed=3, batched=False)
        assert ev["success_mean"] >= 0.98, ev["success_mean"]
        # A name the grammar does not read fails when the teacher is built, naming it.
        _register("test-WordsUnlockPickup-bad", WORDS[:-1] + ("fly to the box",))
        with pytest.raises(ValueError, match="'fly to the box' is not a skill"):
            evaluate(env, teacher_logits, Teacher.create("test-WordsUnlockPickup-bad",
                                                         np.full((8, 7), 1 / 7, np.float32)),
                     seeds=1, episodes=8, seed=3, batched=False)
    finally:
        for name in ("test-WordsUnlockPickup", "test-WordsUnlockPickup-bad"):
            envs._TASKS.pop(name, None)


def test_going_through_a_locked_door_with_its_key():
    """Greedy play of the word skills alone on UnlockPickup: the key (go next to it, pick it
    up), then "go through the door" while it applies. It stops applying exactly once the agent
    stands past the door (east of it), the door unlocked behind it; never before. Where the box
    stands just inside the door, it stops in front of the door it opened."""
    env = envs.make("UnlockPickup")
    n, steps = 64, 150

    def act(obs):
        pick, near, look = osk.pick_up(obs, KEY), osk.go_next_to(obs, KEY), osk.explore(obs)
        through = osk.go_through(obs)

        def first(*outs):  # the first applicable skill's likeliest action
            return functools.reduce(
                lambda a, o: jnp.where(o.applicable, jnp.argmax(o.probs), a), outs[::-1], 0)
        carrying = obs.carrying[0] == KEY
        return jnp.where(carrying, first(through, look), first(pick, near, look)), \
            carrying & through.applicable

    @jax.jit
    def play(key):
        ts = jax.vmap(env.reset)(jax.random.split(key, n))

        def step(carry, _):
            state, obs, was, first = carry
            a, now = jax.vmap(act)(obs)
            ended = was & ~now & (first[:, 0] < 0)  # "go through" has just stopped applying
            door = jax.vmap(lambda g: jnp.argwhere(g[..., 0] == DOOR, size=1)[0])(state.grid)
            door_state = state.grid[jnp.arange(n), door[:, 0], door[:, 1], 2]
            inside = state.grid[jnp.arange(n), door[:, 0], door[:, 1] + 1, 0]  # past the door
            row = jnp.stack([state.agent_pos[:, 0], state.agent_pos[:, 1], door[:, 0],
                             door[:, 1], door_state, state.t, inside], -1)
            first = jnp.where(ended[:, None], row, first)
            out = jax.vmap(env.step)(state, a)
            return (out.state, out.obs, now | was, first), None
        init = (ts.state, ts.obs, jnp.zeros(n, bool), jnp.full((n, 7), -1))
        return jax.lax.scan(step, init, None, length=steps)[0][3]
    first = np.asarray(play(jax.random.key(5)))
    through = first[:, 0] >= 0
    assert through.mean() >= 0.95, through.mean()
    row, col, door_row, door_col, door_state, t, inside = first[through].T
    assert (door_state == DOOR_OPEN).all() and (t > 0).all() and (row == door_row).all()
    # Past the door; or, where the box stands just inside it, in front of it, never on it.
    free = inside == EMPTY
    assert free.mean() >= 0.9 and (col[free] == door_col[free] + 1).all(), first[through]
    assert (col[~free] == door_col[~free] - 1).all(), first[through]
