"""The algorithm interface and its registry; config keys every algorithm shares.

An algorithm is built for one configuration's shapes and is a set of pure functions:

    algo = algos.make("ppo", config)           # or algos.get("ppo").make(config, ...)
    state = algo.init(key)                     # one seed (vmap it over keys)
    state, metrics = algo.update(state, teacher, num_updates)   # a jitted chunk of updates
    logits = algo.act(params, obs)             # acting for evaluation: f32[N, A]

An algorithm whose evaluation is not "sample from (or argmax) the logits" also has
`policy(greedy)`, a collector policy, with `evaluation_params(params, teacher)` and
`evaluation_axes` (DQN-Prior: greedy over the prior's proposals; `core.evaluation.evaluate_algo`).

An offline algorithm (`cql`, `bc`) takes `(teacher or None, data)` where online ones take the
teacher (`runs.Setup.inputs`), and has `steps_per_update` (gradient steps per update, what
progress and `env_steps` count) and `progress_unit`.

`update` returns `metrics`, a dict of `f32[num_updates]` with at least `METRICS_REQUIRED`
(`env_steps` counts the environment steps done so far, `loss` is what the divergence guard
watches). The driver (`jaxrl3m.core.driver`) vmaps `init` and `update` over seeds, jits chunks of
updates, and takes care of checkpoints, metrics, progress and evaluation for every algorithm. The
state is a pytree with `params` (what is evaluated and what a source policy is) and `update`.

A config is a frozen `flax.struct` dataclass: static fields fix shapes and code paths, the others
are leaves (a sweep over a coefficient is a `vmap`). It inherits the shared sections
`TaskSection` and `jaxrl3m.nets.NetworkSection`, so a key means the same in every algorithm; its
`check()` raises `ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import jax
from flax import struct

from ..core.config import ConfigError, did_you_mean
from ..teacher.options import TASK_OPTIONS

METRICS_REQUIRED = ("env_steps", "episodes", "return", "success", "length", "loss")


@struct.dataclass
class TaskSection:
    """Config keys of the task (static)."""

    task: str = struct.field(pytree_node=False, default="ColoredDoorKey")
    """DoorKey, LavaDoorKey or ColoredDoorKey; for plain RL (no teacher or prior) also NAVIX's
    DoorKey-NxN and any id of `navix.registry()` (jaxrl3m.envs.navix_env)."""
    view_size: int = struct.field(pytree_node=False, default=3)
    """Side of the agent's egocentric view."""
    max_steps: int | None = struct.field(pytree_node=False, default=None)
    """Episode time limit (truncation, bootstrapped); None: the task's own (150 for the DoorKey
    tasks, NAVIX's for NAVIX tasks)."""

    @property
    def options(self) -> tuple[str, ...]:
        """The task's skills (the columns of its prior tables)."""
        if self.task not in TASK_OPTIONS:
            raise ConfigError(f"config key 'task': {self.task!r} has no abstract states, so no "
                              f"teacher, prior or prior table; train it without one (prior=none, "
                              f"teacher=none), or pick a task with a teacher: "
                              f"{', '.join(TASK_OPTIONS)}")
        return TASK_OPTIONS[self.task]

    @property
    def horizon(self) -> int:
        """The episode time limit in force (`max_steps`, or the task's own)."""
        return self.make_env().horizon

    def make_env(self):
        from .. import envs
        given = dict(view_size=self.view_size, max_steps=self.max_steps)
        valid = envs.options(self.task)
        return envs.make(self.task, **{k: v for k, v in given.items()
                                       if k in valid and v is not None})

    def check_task(self, bad) -> None:
        """Calls `bad(key, why)` for the first invalid task key."""
        from .. import envs
        if self.task not in TASK_OPTIONS:
            try:
                envs.options(self.task)
            except ValueError:
                bad("task", f"{self.task!r} is not a task; valid: {', '.join(TASK_OPTIONS)} "
                            f"(with a teacher), NAVIX's DoorKey-NxN and the ids of "
                            f"sorted(navix.registry()) (plain RL)")
        if self.max_steps is not None and self.max_steps < 1:
            bad("max_steps", f"must be at least 1, got {self.max_steps}")
        try:
            self.make_env()
        except ValueError as e:
            raise ConfigError(str(e)) from None


def config_error(key: str, why: str):
    """The `bad(key, why)` of config checks."""
    raise ConfigError(f"config key {key!r}: {why}")


def static_fields(config_cls: type) -> tuple[str, ...]:
    """The fields of a config class that fix shapes or code (not pytree leaves)."""
    return tuple(f.name for f in dataclasses.fields(config_cls)
                 if not f.metadata.get("pytree_node", True))


class Algorithm(Protocol):
    """What the driver needs of an algorithm (see the module docstring)."""

    config: Any
    metrics: tuple[str, ...]

    def init(self, key: jax.Array, params: Any = None) -> Any: ...

    def update(self, state: Any, teacher: Any, num_updates: int) -> tuple[Any, dict]: ...

    def act(self, params: Any, obs: Any) -> jax.Array: ...


@dataclasses.dataclass(frozen=True)
class AlgorithmSpec:
    """A registered algorithm: its name, config class and builder
    `make(config, guided=..., past_policies=..., env=...) -> Algorithm`."""

    name: str
    config: type
    make: Callable[..., Algorithm]
    summary: str = ""


REGISTRY: dict[str, AlgorithmSpec] = {}


def register(name: str, config: type, make: Callable[..., Algorithm], summary: str = "") -> None:
    """Makes `algo: <name>` valid in configs."""
    REGISTRY[name] = AlgorithmSpec(name, config, make, summary)


def get(name: str) -> AlgorithmSpec:
    """The registered algorithm `name` (a ConfigError lists the valid ones)."""
    if name not in REGISTRY:
        raise ConfigError(f"config key 'algo': {name!r} is not a registered algorithm."
                          f"{did_you_mean(name, REGISTRY)} Valid: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]
