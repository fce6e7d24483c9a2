"""jaxrl3m.envs.factored: abstractions built from factors of what the agent observed, their texts
generated; as the guidance of two registered tasks (Unlock with skills named in words, Fetch
with the library's skills and the mission factor)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import envs
from jaxrl3m.core.evaluation import evaluate
from jaxrl3m.envs import factored as F
from jaxrl3m.envs.types import KEY
from jaxrl3m.teacher.object_skills import object_skills
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.teacher import Teacher, reachable_states, teacher_logits

# --8<-- [start:factored]
UNLOCK = (F.carrying((KEY,)), F.seen(KEY), F.door())
WORDS = ("explore", "go next to the key", "pick up the key", "go through the door")


def unlock_oracle(v: dict[str, str]) -> tuple[str, ...]:
    if v["carrying"] == "key":
        return ("explore",) if v["the door"] == "unseen" else ("go through the door",)
    return ("go next to the key", "pick up the key") if v["seen key"] == "yes" else ("explore",)


def fetch_oracle(v: dict[str, str]) -> tuple[str, ...]:
    return {"unseen": ("explore",), "seen": ("go to the object of the mission",),
            "in front": ("pick up the object of the mission",)}[v["mission"]]


def register(task: str, base: str):
    """`task`: the world and rules of `base` (Unlock or Fetch) with a factored guidance."""
    if base == "Unlock":
        guide = F.factored("unlock-factors", 1, UNLOCK, WORDS, oracle=unlock_oracle,
                           skills=object_skills,
                           description="You are an agent in a room with a key and a locked "
                           "door. You succeed by opening the door.")
    else:
        guide = F.factored("fetch-factors", 1, (F.mission(),),
                           ("explore", "go to the object of the mission",
                            "pick up the object of the mission"), oracle=fetch_oracle,
                           description=envs.guidance("Fetch").description)
    envs.register(task, like=base, guidance=guide, replace=True)
# --8<-- [end:factored]


def test_states_texts_and_oracle_come_from_the_factors():
    guide = F.factored("unlock-factors", 1, UNLOCK, WORDS, oracle=unlock_oracle,
                       skills=object_skills)
    assert guide.num_states == 2 * 2 * 4
    # mixed radix, the first factor slowest: index 13 = carrying 1, seen 1, door 1
    assert F.factor_values(UNLOCK, 13) == {"carrying": "key", "seen key": "yes",
                                           "the door": "locked"}
    assert guide.describe(13) == "You carry a key. You have seen a key. The door is locked."
    assert guide.describe(0) == ("You carry nothing. You have not seen a key. "
                                 "You have not seen the door.")
    assert len({guide.describe(i) for i in range(guide.num_states)}) == guide.num_states
    assert guide.oracle(13) == ("go through the door",) and guide.oracle(6) == (
        "go next to the key", "pick up the key")
    # abstract_state: the factors' values of a real observation, in the same radix
    obs = envs.make("Unlock").reset(jax.random.key(0)).obs
    got = int(jax.jit(guide.abstract_state)(obs))
    want = [int(f.value(obs)) for f in UNLOCK]
    assert got == (want[0] * 2 + want[1]) * 4 + want[2]
    assert F.in_front(KEY, 2).texts == ("", "A blue key is in front of you.")


def test_bad_factors_name_the_problem():
    with pytest.raises(ValueError, match="one text per value"):
        F.Factor("x", ("a", "b"), ("A.",), lambda obs: 0)
    with pytest.raises(ValueError, match="must be distinct"):
        F.factored("dup", 1, (F.seen(KEY), F.seen(KEY)), WORDS)
    with pytest.raises(ValueError, match="like='Unlok' is not a registered task. Did you mean "
                                         "'Unlock'"):
        envs.register("test-x", like="Unlok")
    with pytest.raises(ValueError, match="give env or like, not both"):
        envs.register("test-x", envs.DoorKeyEnv, like="Unlock")
    guide = F.factored("mission-less", 1, (F.mission(),), WORDS)
    with pytest.raises(ValueError, match="needs a task with a mission"):
        jax.eval_shape(guide.abstract_state, envs.make("Unlock").reset(jax.random.key(0)).obs)


def test_a_factor_out_of_its_range_is_named_when_states_are_counted():
    """A factor of one's own whose value leaves its range would index other states' rows
    silently: the first count of the reachable states refuses it, naming the abstraction."""
    broken = F.Factor("broken", ("a", "b"), ("A.", "B."), lambda obs: jnp.int32(2))
    guide = F.factored("broken-factors", 3, UNLOCK[:1] + (broken,), WORDS,
                       oracle=lambda v: ("explore",), skills=object_skills)
    envs.register("test-BrokenFactors", like="Unlock", guidance=guide, replace=True)
    try:
        with pytest.raises(ValueError, match=r"'broken-factors' \(version 3\) gave abstract "
                                             r"state \d+, outside \[0, 4\)"):
            reachable_states("test-BrokenFactors")
    finally:
        envs._TASKS.pop("test-BrokenFactors", None)


@pytest.mark.parametrize("task, base", [("test-FactorsUnlock", "Unlock"),
                                        ("test-FactorsFetch", "Fetch")])
def test_a_factored_task_is_solved_by_its_oracle(task, base):
    """Unlock over three factors (16 states) with skills named in words, and Fetch over the
    mission factor alone (3 states) with the library's skills: each oracle teacher, alone,
    solves held-out maps."""
    register(task, base)
    try:
        env = envs.make(task, layouts="heldout")
        ev = evaluate(env, teacher_logits, Teacher.create(task, oracle_table(task)), seeds=1,
                      episodes=200, seed=3, batched=False)
        assert ev["success_mean"] >= 0.98, ev["success_mean"]
        # the oracle's rows moved to other states: far worse
        wrong = np.roll(oracle_table(task), 1, axis=0)
        ev = evaluate(env, teacher_logits, Teacher.create(task, wrong), seeds=1, episodes=200,
                      seed=3, batched=False)
        assert ev["success_mean"] < 0.5, ev["success_mean"]
    finally:
        envs._TASKS.pop(task, None)
