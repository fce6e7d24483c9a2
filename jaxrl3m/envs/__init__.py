"""jaxrl3m's tasks: MiniGrid-style gridworlds that run on the accelerator.

    env = jaxrl3m.envs.make("ColoredDoorKey")            # or DoorKey, LavaDoorKey, DoorKey-8x8
    ts = env.reset(jax.random.key(0))                     # TimeStep(state, obs, reward, ...)
    ts = env.step(ts.state, action)
    guide = jaxrl3m.envs.guidance("ColoredDoorKey")       # what the LLM teacher needs of it

`reset` and `step` are pure functions of one environment: `jax.vmap` them over thousands. One
registry holds every task and, for tasks the teacher can guide, its `Guidance` (abstract states,
texts, options, oracle): `register` adds one (docs/tasks.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

from ..errors import ConfigError, did_you_mean

from .abstraction import (ABSTRACTION_VERSION, DOORKEY_GUIDANCE, NUM_ABSTRACT_STATES,
                          AbstractState, abstract_state, decode, describe, describe_all, factors)
from .box_abstraction import BLOCKED_GUIDANCE as BLOCKEDUNLOCKPICKUP_GUIDANCE
from .box_abstraction import GUIDANCE as UNLOCKPICKUP_GUIDANCE
from .box_abstraction import CORRIDOR_GUIDANCE as KEYCORRIDOR_GUIDANCE
from .box_abstraction import LOCKEDROOM_GUIDANCE
from .doorkey import DoorKeyEnv, check_keywords
from .mission_abstraction import GUIDANCE as FETCH_GUIDANCE
from .task import Guidance
from .render import render_text
from .types import (ACTION_NAMES, COLOUR_NAMES, NUM_ACTIONS, EnvState, Layout, MissionEnvState,
                    MissionObservation, Observation, TimeStep, mission_of)


KEYCORRIDOR_SIZES = ((3, 1), (3, 2), (3, 3), (4, 3), (5, 3), (6, 3))
"""`(room_size, rows)` of MiniGrid's registered KeyCorridor tasks (S3R1 ... S6R3)."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One registered task: its environment class (a dataclass whose fields are `make`'s
    keywords, "navix" for the NAVIX-backed ones), the fields the name fixes, its guidance, and
    the task's own defaults of keywords (which `make`'s arguments override)."""

    env: Any
    fixed: dict[str, Any]
    guidance: Guidance | None = None
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)


_TASKS: dict[str, TaskSpec] = {
    "DoorKey": TaskSpec(DoorKeyEnv, dict(n_keys=1, n_lava=0), DOORKEY_GUIDANCE["DoorKey"]),
    "LavaDoorKey": TaskSpec(DoorKeyEnv, dict(n_keys=1, n_lava=1),
                            DOORKEY_GUIDANCE["LavaDoorKey"]),
    "ColoredDoorKey": TaskSpec(DoorKeyEnv, dict(n_keys=2, n_lava=0),
                               DOORKEY_GUIDANCE["ColoredDoorKey"]),
    # MiniGrid's Unlock (MiniGrid-Unlock-v0): a 6x6 room, the locked door on its east wall (to a
    # second room), one key; 8 * 6^2 steps. Opening the door is success, as in DoorKey here.
    "Unlock": TaskSpec(DoorKeyEnv, dict(n_keys=1, n_lava=0, size=11, min_room=6, max_room=6,
                                        door_wall="east"),
                       DOORKEY_GUIDANCE["Unlock"], dict(max_steps=288)),
    # MiniGrid's UnlockPickup: Unlock's rooms, a box of any colour in the second room; picking
    # it up is success (the key must be dropped first: one object at a time).
    "UnlockPickup": TaskSpec(DoorKeyEnv, dict(n_keys=1, n_lava=0, size=11, min_room=6,
                                              max_room=6, door_wall="east", n_boxes=1,
                                              goal="pickup"),
                             UNLOCKPICKUP_GUIDANCE, dict(max_steps=288)),
    # MiniGrid's BlockedUnlockPickup: UnlockPickup with a ball of any colour on the cell inside
    # the door, to be moved first; 16 * 6^2 steps.
    "BlockedUnlockPickup": TaskSpec(DoorKeyEnv, dict(n_keys=1, n_lava=0, size=11, min_room=6,
                                                     max_room=6, door_wall="east", n_boxes=1,
                                                     goal="pickup", blocked=True),
                                    BLOCKEDUNLOCKPICKUP_GUIDANCE, dict(max_steps=576)),
    # MiniGrid's KeyCorridorS<S>R<R>: R x 3 rooms of side S around a hallway, the key in a left
    # room, the ball behind a locked door on the right; 30 * S^2 steps. Picking up the ball is
    # success.
    **{f"KeyCorridorS{s}R{r}": TaskSpec(
        DoorKeyEnv, dict(world="corridor", room_size=s, rows=r, size=3 * (s - 1) + 1,
                         goal="ball", n_keys=1, n_lava=0, n_boxes=0, blocked=False,
                         door_wall="any", min_room=5, max_room=None, n_objects=3),
        KEYCORRIDOR_GUIDANCE, dict(max_steps=30 * s * s))
       for s, r in KEYCORRIDOR_SIZES},
    # MiniGrid's LockedRoom: six rooms around a hallway on a 19 x 19 grid, the goal square in
    # the locked one, its key in another; MiniGrid's 10 * 19 = 190 steps and its 7 x 7 view
    # (with the 3 x 3 view the oracle teacher needs up to ~270 steps: 190 cuts a third).
    "LockedRoom": TaskSpec(DoorKeyEnv, dict(world="lockedroom", size=19, goal="goal", n_keys=1,
                                            n_lava=0, n_boxes=0, blocked=False,
                                            door_wall="any", min_room=5, max_room=None,
                                            n_objects=3),
                           LOCKEDROOM_GUIDANCE, dict(max_steps=190, view_size=7)),
    # MiniGrid's Fetch (MiniGrid-Fetch-8x8-N3-v0): one walled 8 x 8 room, three keys or balls
    # of random colours, a mission naming one kind and colour ("fetch a red key": the
    # observation's `mission`); picking it up is success, picking up anything else ends the
    # episode with nothing. MiniGrid's 5 * 8^2 = 320 steps and its 7 x 7 view.
    "Fetch": TaskSpec(DoorKeyEnv, dict(world="fetch", size=8, goal="fetch", n_keys=1, n_lava=0,
                                       n_boxes=0, blocked=False, door_wall="any", min_room=5,
                                       max_room=None, rows=3, room_size=3),
                      FETCH_GUIDANCE, dict(max_steps=320, view_size=7)),
    **{f"DoorKey-{n}x{n}": TaskSpec("navix", dict(size=n, navix_id="")) for n in (5, 6, 8, 16)},
}
"""The NAVIX-backed entries name their class "navix": `navix_env` (and NAVIX itself, seconds to
import) is imported only when one is built."""

TASKS = tuple(_TASKS)
"""Every jaxrl3m name `make` accepts (it also accepts every id of `navix.registry()`); `tasks()`
is the same after later registrations."""


def tasks() -> tuple[str, ...]:
    """Every registered task's name."""
    return tuple(_TASKS)


def guided_tasks() -> tuple[str, ...]:
    """The registered tasks with guidance (the LLM teacher, priors and tables work on them)."""
    return tuple(name for name, spec in _TASKS.items() if spec.guidance is not None)


def register(name: str, env: Any = None, *, like: str | None = None,
             fixed: dict[str, Any] | None = None, guidance: Guidance | None = None,
             defaults: dict[str, Any] | None = None, replace: bool = False) -> None:
    """Adds a task: `make(name, **kw)` builds `env(name=name, **fixed, **defaults, **kw)`.

    Args:
      name: the task's name (presets, configs and prior tables refer to it).
      env: an environment class, a dataclass with a `name` field whose other fields are its
        keywords, with `reset(key)`, `step(state, action)` and the members the collector uses
        (see `jaxrl3m.envs.doorkey.DoorKeyEnv`).
      like: instead of `env`, a registered task whose world the new one takes (its class,
        fixed fields and defaults; `fixed` and `defaults` given here are added to them): the
        same maps and rules with another guidance, `register("MyFetch", like="Fetch",
        guidance=...)`.
      fixed: fields the name fixes (not keywords of `make`).
      guidance: what the LLM teacher needs (`Guidance`); None: plain RL only.
      defaults: the task's own values of keywords (e.g. its `max_steps`), which `make`'s
        arguments override.
      replace: allow re-registering a name (a notebook redefining its task).

    Raises:
      ValueError: for a bad name, a class that is not such a dataclass, a fixed field it does not
        have, an unknown `like` (or one given with `env`), or a name already registered without
        `replace`.
    """
    global TASKS
    if like is not None:
        if env is not None:
            raise ValueError(f"register {name!r}: give env or like, not both")
        if like not in _TASKS:
            raise ValueError(f"register {name!r}: like={like!r} is not a registered task."
                             f"{did_you_mean(like, tasks())}")
        base = _TASKS[like]
        env = base.env
        fixed = {**base.fixed, **(fixed or {})}
        defaults = {k: v for k, v in {**base.defaults, **(defaults or {})}.items()
                    if k not in fixed}
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"register: the task name must be a non-empty string without "
                         f"surrounding spaces, got {name!r}")
    if name in _TASKS and not replace:
        raise ValueError(f"register: task {name!r} is already registered; pass replace=True "
                         f"to redefine it")
    if not (isinstance(env, type) and dataclasses.is_dataclass(env)
            and "name" in {f.name for f in dataclasses.fields(env)}):
        raise ValueError(f"register {name!r}: env must be a dataclass class with a `name` field "
                         f"(like jaxrl3m.envs.DoorKeyEnv), got {env!r}")
    missing = [m for m in ("reset", "step") if not callable(getattr(env, m, None))]
    if missing:
        raise ValueError(f"register {name!r}: {env.__name__} has no {', '.join(missing)} method")
    fixed, defaults = dict(fixed or {}), dict(defaults or {})
    unknown = sorted((set(fixed) | set(defaults)) - {f.name for f in dataclasses.fields(env)})
    if unknown:
        raise ValueError(f"register {name!r}: {env.__name__} has no field(s) {unknown}")
    if set(fixed) & set(defaults):
        raise ValueError(f"register {name!r}: {sorted(set(fixed) & set(defaults))} are both "
                         f"fixed and defaults; a field is one or the other")
    if guidance is not None and not isinstance(guidance, Guidance):
        raise ValueError(f"register {name!r}: guidance must be a jaxrl3m.envs.Guidance, got "
                         f"{type(guidance).__name__}")
    _TASKS[name] = TaskSpec(env, fixed, guidance, defaults)
    TASKS = tuple(_TASKS)


def guidance(name: str) -> Guidance:
    """The guidance of a task; a clear error naming the task and what it lacks.

    Raises:
      ValueError: for an unknown task.
      ConfigError: for a task without guidance.
    """
    spec = _TASKS.get(name)
    if spec is None:
        _spec(name)  # unknown names and NAVIX ids: its error, or a NAVIX id (no guidance)
    if spec is None or spec.guidance is None:
        raise ConfigError(
            f"task {name!r} has no abstract states, texts or options (no Guidance), so no LLM "
            f"teacher, prior or prior table: train it without one (prior=none, teacher=none), "
            f"pick a task with a teacher ({', '.join(guided_tasks())}), or register it with "
            f"guidance (jaxrl3m.envs.register(..., guidance=Guidance(...)), docs/tasks.md)")
    return spec.guidance


class _RegisterWhenNavixLoads(importlib.abc.MetaPathFinder):
    """Registers jaxrl3m's tasks in NAVIX's registry as soon as NAVIX is imported (by anyone:
    `navix.make("JaxRL3M-DoorKey-v0")` works after `import jaxrl3m.envs`), without importing
    NAVIX before it is needed."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "navix":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("navix")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            if f"{__name__}.navix_env" not in sys.modules:  # else it registers as it loads
                importlib.import_module(f"{__name__}.navix_env")

        spec.loader.exec_module = exec_and_register
        return spec


if "navix" in sys.modules:
    from . import navix_env  # noqa: F401  (registers as it loads)
elif not any(isinstance(f, _RegisterWhenNavixLoads) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenNavixLoads())


def __getattr__(name: str):
    if name in ("NavixEnv", "NavixTask"):
        from . import navix_env
        return getattr(navix_env, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _class(cls):
    if cls == "navix":
        from .navix_env import NavixEnv
        return NavixEnv
    return cls


def keywords(name: str) -> tuple[str, ...]:
    """The keyword arguments `make(name, ...)` accepts (a task's "options" are its skills:
    `jaxrl3m.teacher.options`)."""
    cls, fixed = _spec(name)
    return tuple(f.name for f in dataclasses.fields(cls) if f.name != "name" and f.name not in fixed)


def _spec(name: str):
    if name not in _TASKS and name.startswith("Navix-"):
        from .navix_env import NavixEnv, is_navix_id
        if is_navix_id(name):
            return NavixEnv, dict(navix_id=name, size=0)
        import navix
        raise ValueError(f"unknown NAVIX environment {name!r}."
                         f"{did_you_mean(name, tuple(navix.registry()))} "
                         f"sorted(navix.registry()) lists NAVIX's ids")
    if name not in _TASKS:
        raise ValueError(f"unknown task {name!r}.{did_you_mean(name, tasks())} Valid tasks: "
                         f"{', '.join(tasks())}, and NAVIX's ids (sorted(navix.registry()))")
    spec = _TASKS[name]
    return _class(spec.env), spec.fixed


def make(name: str, **overrides: Any):
    """Builds a task by name, with keyword arguments overriding its defaults.

    Keywords of DoorKey, LavaDoorKey and ColoredDoorKey: `size` (10), `min_room` (5),
    `max_room` (None: `size`), `door_wall` ("any"), `view_size` (3), `fully_observed` (False),
    `max_steps` (150), `layouts` ("all"). Unlock, UnlockPickup and BlockedUnlockPickup
    (MiniGrid's): `view_size` (3), `fully_observed`, `max_steps` (288; 576 blocked),
    `layouts`. KeyCorridorS3R1 ... KeyCorridorS6R3 (MiniGrid's): `view_size` (3),
    `fully_observed`, `max_steps` (30 * S * S), `layouts`. LockedRoom (MiniGrid's): the same,
    with `view_size` 7 and `max_steps` 190 (MiniGrid's). Fetch (MiniGrid's Fetch-8x8-N3): the
    same, `view_size` 7, `max_steps` 320, and `n_objects` (3). Keywords of DoorKey-NxN (NAVIX's,
    with MiniGrid's reward): `max_steps` (10 * N * N), `penalty_coeff` (0.9). Any NAVIX id
    (`"Navix-Empty-8x8-v0"`, see `jaxrl3m.envs.navix_env`): `max_steps`, `penalty_coeff`
    (NAVIX's defaults).

    Raises:
      ValueError: for an unknown task or keyword (the message lists the valid ones) or a
        value that cannot work.
    """
    cls, fixed = _spec(name)
    valid = keywords(name)
    for key, value in overrides.items():
        if key not in valid:
            raise ValueError(f"unknown keyword {key!r} for task {name!r}."
                             f"{did_you_mean(key, valid)} "
                             f"Valid keywords: {', '.join(valid)}")
        field_type = {f.name: f.type for f in dataclasses.fields(cls)}[key]
        if "bool" in str(field_type) and not isinstance(value, bool):
            raise ValueError(f"keyword {key!r} of {name!r} must be True or False, got {value!r}")
        if "int" in str(field_type) and not (isinstance(value, int) and not isinstance(value, bool)
                                             or (value is None and "None" in str(field_type))):
            raise ValueError(f"keyword {key!r} of {name!r} must be an integer, got {value!r}")
    defaults = _TASKS[name].defaults if name in _TASKS else {}
    env = cls(name=name, **fixed, **{**defaults, **overrides})
    if isinstance(env, DoorKeyEnv):
        check_keywords(env)
    return env


__all__ = [
    "ABSTRACTION_VERSION", "ACTION_NAMES", "AbstractState", "COLOUR_NAMES", "DoorKeyEnv",
    "EnvState", "Guidance", "Layout", "MissionEnvState", "MissionObservation",
    "NUM_ABSTRACT_STATES", "NUM_ACTIONS", "NavixEnv", "NavixTask", "Observation", "TASKS",
    "TaskSpec", "TimeStep", "abstract_state", "decode",
    "describe", "describe_all", "factors", "guidance", "guided_tasks", "keywords", "make",
    "mission_of", "register", "render_text", "tasks",
]
