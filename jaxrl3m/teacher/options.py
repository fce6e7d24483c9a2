"""A task's options (skills) and the hand-written oracle, as tables over its abstract states.

Everything here reads the task's `Guidance` (`jaxrl3m.envs.guidance`): option names are the
skills' names (`jaxrl3m.teacher.skills.SKILLS` unless the task brings its own skills) and also the
text the language model reads. A prior table for a task has one column per option, in this order,
and one row per abstract state.
"""

from __future__ import annotations

import numpy as np

from .. import envs


def teacher_tasks() -> tuple[str, ...]:
    """The tasks with a teacher (registered with guidance)."""
    return envs.guided_tasks()


def task_options(task: str) -> tuple[str, ...]:
    """The option names of a task; a clear error for tasks without guidance."""
    return envs.guidance(task).options


def num_states(task: str) -> int:
    """The number of abstract states of a task (rows of its prior tables)."""
    return envs.guidance(task).num_states


def oracle_options(task: str, index: int) -> tuple[str, ...]:
    """The right options in abstract state `index` of `task`, written by hand (`Guidance.oracle`).

    A "go to X" option comes with "pick up X" / "open X": the mixture hands over from one to the
    other when the agent faces X (see `jaxrl3m.teacher.skills`).
    """
    return envs.guidance(task).oracle_options(task, index)


def oracle_table(task: str) -> np.ndarray:
    """`f32[S, K]`: uniform over the oracle's options in every abstract state."""
    guide = envs.guidance(task)
    names = guide.options
    table = np.zeros((guide.num_states, len(names)), np.float32)
    for i in range(guide.num_states):
        right = guide.oracle_options(task, i)
        for name in right:
            table[i, names.index(name)] = 1.0 / len(right)
    return table


def uniform_table(task: str) -> np.ndarray:
    """`f32[S, K]`: every option equally likely."""
    guide = envs.guidance(task)
    k = len(guide.options)
    return np.full((guide.num_states, k), 1.0 / k, np.float32)


def past_policy_option(source_task: str) -> str:
    """The option text of a policy learned on an earlier task (what a prompt would list)."""
    return f"follow the policy that solved {source_task}"


def with_past_policies(table: np.ndarray, num_past: int, weight: float) -> np.ndarray:
    """`f32[S, K + P]`: a table over the K skills extended with `num_past`
    past-policy columns (see `jaxrl3m.teacher.mixture`).

    In every abstract state the past policies get `weight` of the mass (split equally) and the
    skills keep `1 - weight` of theirs: `weight = 1` makes the past policies the only teacher
    (kickstarting), `weight = 0` leaves the skills' teacher unchanged.
    """
    table = np.asarray(table, np.float32)
    if table.ndim != 2:
        raise ValueError(f"a prior table has shape (abstract states, K), got {table.shape}")
    if num_past < 1:
        raise ValueError(f"num_past must be at least 1, got {num_past}")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"the past policies' weight must be in [0, 1], got {weight}")
    past = np.full((table.shape[0], num_past), weight / num_past, np.float32)
    return np.concatenate([(1.0 - weight) * table, past], axis=1).astype(np.float32)
