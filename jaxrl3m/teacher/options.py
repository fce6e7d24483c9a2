"""The options (skills) each task offers the teacher, and the hand-written oracle.

Option names are the skills' names in `jaxrl3m.teacher.skills.SKILLS`, and they are also the
text the language model reads. A prior table for a task has one column per option, in this order.
"""

from __future__ import annotations

import numpy as np

from ..envs.abstraction import NUM_ABSTRACT_STATES, decode
from ..errors import ConfigError

_ONE_KEY = ("explore", "go to the key", "pick up the key", "go to the door", "open the door",
            "drop the key")
TASK_OPTIONS: dict[str, tuple[str, ...]] = {
    "DoorKey": _ONE_KEY,
    "LavaDoorKey": _ONE_KEY,
    "ColoredDoorKey": ("explore", "go to the key of the door's colour",
                       "pick up the key of the door's colour", "go to the key of another colour",
                       "pick up the key of another colour", "go to the door", "open the door",
                       "drop the key"),
}
"""Option names per task, in table-column order."""

TEACHER_TASKS = tuple(TASK_OPTIONS)


def task_options(task: str) -> tuple[str, ...]:
    """The option names of a task; a clear error for tasks without a teacher."""
    if task not in TASK_OPTIONS:
        raise ConfigError(f"task {task!r} has no abstract states, so no LLM teacher options, "
                          f"prior or prior table: train it without one (prior=none, "
                          f"teacher=none), or pick a task with a teacher: "
                          f"{', '.join(TEACHER_TASKS)}")
    return TASK_OPTIONS[task]


def oracle_options(task: str, index: int) -> tuple[str, ...]:
    """The right options in abstract state `index` of `task`, written by hand.

    A "go to X" option comes with "pick up X" / "open X": the mixture hands over from one to the
    other when the agent faces X (see `jaxrl3m.teacher.skills`).
    """
    task_options(task)
    f = decode(index)
    if task == "ColoredDoorKey":
        if f.door == 0:
            return ("explore",)  # which key opens the door is unknown until the door is seen
        if f.carrying == 2:
            return ("go to the door", "open the door")
        if f.carrying == 3:
            return ("drop the key",)
        if f.matching_on_floor:
            return ("go to the key of the door's colour", "pick up the key of the door's colour")
        return ("explore",)
    # DoorKey and LavaDoorKey: one key, of the door's colour.
    if f.carrying:
        return ("go to the door", "open the door") if f.door else ("explore",)
    if (f.door == 0 and f.floor_keys) or f.matching_on_floor:
        return ("go to the key", "pick up the key")
    return ("explore",)


def oracle_table(task: str) -> np.ndarray:
    """`f32[NUM_ABSTRACT_STATES, K]`: uniform over the oracle's options in every state."""
    names = task_options(task)
    table = np.zeros((NUM_ABSTRACT_STATES, len(names)), np.float32)
    for i in range(NUM_ABSTRACT_STATES):
        right = oracle_options(task, i)
        for name in right:
            table[i, names.index(name)] = 1.0 / len(right)
    return table


def uniform_table(task: str) -> np.ndarray:
    """`f32[NUM_ABSTRACT_STATES, K]`: every option equally likely."""
    k = len(task_options(task))
    return np.full((NUM_ABSTRACT_STATES, k), 1.0 / k, np.float32)


def past_policy_option(source_task: str) -> str:
    """The option text of a policy learned on an earlier task (what a prompt would list)."""
    return f"follow the policy that solved {source_task}"


def with_past_policies(table: np.ndarray, num_past: int, weight: float) -> np.ndarray:
    """`f32[NUM_ABSTRACT_STATES, K + P]`: a table over the K skills extended with `num_past`
    past-policy columns (see `jaxrl3m.teacher.mixture`).

    In every abstract state the past policies get `weight` of the mass (split equally) and the
    skills keep `1 - weight` of theirs: `weight = 1` makes the past policies the only teacher
    (kickstarting), `weight = 0` leaves the skills' teacher unchanged.
    """
    table = np.asarray(table, np.float32)
    if table.ndim != 2 or table.shape[0] != NUM_ABSTRACT_STATES:
        raise ValueError(f"a prior table has shape ({NUM_ABSTRACT_STATES}, K), got {table.shape}")
    if num_past < 1:
        raise ValueError(f"num_past must be at least 1, got {num_past}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the past policies' weight must be in [0, 1], got {weight}")
    past = np.full((NUM_ABSTRACT_STATES, num_past), weight / num_past, np.float32)
    return np.concatenate([(1.0 - weight) * table, past], axis=1).astype(np.float32)
