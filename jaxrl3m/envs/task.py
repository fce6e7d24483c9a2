"""The task API's `Guidance`: what the LLM teacher needs from a task (abstraction, texts,
options, oracle).

    guide = jaxrl3m.envs.guidance("ColoredDoorKey")
    i = jax.vmap(guide.abstract_state)(obs)        # i32[N] in [0, guide.num_states)
    guide.describe(int(i[0]))                      # "You see a locked door ... You carry nothing."
    guide.options                                  # the skills, the prior table's columns
    guide.oracle(int(i[0]))                        # the right options there (tests, the oracle)

A task registered with `jaxrl3m.envs.register(name, env, guidance=Guidance(...))` gets the
teacher, the priors (`python -m jaxrl3m.precompute_priors --task NAME`), the posterior teacher,
the transfer study and the guided presets with no other change. `docs/tasks.md` walks through one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax

from .types import Observation


@dataclasses.dataclass(frozen=True, eq=False)
class Guidance:
    """A task's guidance. Compared and hashed by identity: one object per registration, a static
    argument of jitted functions.

    Attributes:
      name: the abstraction's name ("doorkey"); tasks may share one (the DoorKey family does).
      version: bumped whenever the index space or the texts change; prior tables record it and
        a table of another version is refused.
      num_states: size of the abstract state space (rows of a prior table).
      abstract_state: `obs -> i32[]` in `[0, num_states)`, a pure function of ONE observation
        (jittable; the library vmaps it). It must read only what the agent has observed.
      describe: `index -> str`, the text `c(s)` a language model reads.
      options: the option (skill) names, the prior table's columns in order; also text the model
        reads.
      skills: `(obs, options) -> SkillOutput` (`jaxrl3m.teacher.skills`: `probs f32[K, A]`,
        `applicable bool[K]`) for one observation; None: the library's skills by name
        (`jaxrl3m.teacher.skills.SKILLS`).
      skill_names: `(option, skill)` pairs where an option's name is not the library skill it
        runs (KeyCorridor's "explore" runs "explore, opening closed doors"); with `skills=None`.
      oracle: `index -> tuple of option names`, the right options in each abstract state,
        written by hand (the oracle table, tests, agreement reports); None when the task has none.
      reachable: the abstract states that occur in the task; None: computed on first use (the
        oracle teacher with 30% random actions, `teacher.REACHABLE_BUDGET`) and kept for the
        process, or uniform-teacher rollouts when there is no oracle.
      description: the task in words, the `{task}` of the prompt's system message
        (`jaxrl3m.teacher.prompt`; a prompt file's `tasks` entry overrides it).
      examples: worked examples shown to the model before each question, as
        `{"state": index, "answer": option}` (the default prompt's for this task).
    """

    name: str
    version: int
    num_states: int
    abstract_state: Callable[[Observation], jax.Array]
    describe: Callable[[int], str]
    options: tuple[str, ...]
    skills: Callable[[Observation, tuple[str, ...]], Any] | None = None
    skill_names: tuple[tuple[str, str], ...] = ()
    oracle: Callable[[int], tuple[str, ...]] | None = None
    reachable: tuple[int, ...] | None = None
    description: str = ""
    examples: tuple[dict[str, Any], ...] = ()

    def __post_init__(self):
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.version, int) or isinstance(self.version, bool):
            problems.append(f"version must be an integer, got {self.version!r}")
        if not isinstance(self.num_states, int) or self.num_states < 1:
            problems.append(f"num_states must be a positive integer, got {self.num_states!r}")
        if not callable(self.abstract_state) or not callable(self.describe):
            problems.append("abstract_state and describe must be functions")
        opts = self.options
        if (not isinstance(opts, tuple) or not opts
                or not all(isinstance(o, str) and o for o in opts)):
            problems.append(f"options must be a non-empty tuple of names, got {opts!r}")
        elif len(set(opts)) != len(opts):
            problems.append(f"options must be distinct, got {list(opts)}")
        if self.skills is not None and not callable(self.skills):
            problems.append("skills must be a function (or None: the library's skills by name)")
        if not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(n, str) for n in p)
                   for p in self.skill_names):
            problems.append("skill_names must be (option name, skill name) pairs")
        if self.oracle is not None and not callable(self.oracle):
            problems.append("oracle must be a function (or None)")
        if self.reachable is not None and not all(
                isinstance(i, int) and 0 <= i < self.num_states for i in self.reachable):
            problems.append(f"reachable must list indices in [0, {self.num_states})")
        for ex in self.examples:
            if not (isinstance(ex, dict) and set(ex) == {"state", "answer"}
                    and isinstance(ex["state"], int) and 0 <= ex["state"] < self.num_states
                    and ex["answer"] in (opts or ())):
                problems.append(f"each example must be {{'state': index in [0, "
                                f"{self.num_states}), 'answer': one of the options}}, got {ex!r}")
        if problems:
            raise ValueError(f"Guidance {self.name!r}: " + "; ".join(problems))

    def texts(self) -> list[str]:
        """`describe(i)` for every index, in order."""
        return [self.describe(i) for i in range(self.num_states)]

    def oracle_options(self, task: str, index: int) -> tuple[str, ...]:
        """The oracle's options in `index`; a clear error when the task has no oracle."""
        if self.oracle is None:
            from ..errors import ConfigError
            raise ConfigError(f"task {task!r} has guidance but no oracle (Guidance.oracle): "
                              f"use a prior table, uniform or a shuffled table instead")
        index = int(index)
        if not 0 <= index < self.num_states:
            raise ValueError(f"abstract state index {index} is outside [0, {self.num_states}) "
                             f"of task {task!r}")
        right = tuple(self.oracle(index))
        unknown = [o for o in right if o not in self.options]
        if not right or unknown:
            raise ValueError(f"task {task!r}: the oracle's options in abstract state {index} "
                             f"are {list(right)}; each must be one of {list(self.options)}")
        return right
