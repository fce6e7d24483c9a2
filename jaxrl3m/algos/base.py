"""The algorithm contract (`Algorithm`), its inputs (`Inputs`) and registry; config keys every
algorithm shares.

An algorithm is built for one configuration's shapes and is a set of pure functions:

    algo = algos.make("ppo", config)           # or algos.get("ppo").make(config, ...)
    state = algo.init(key)                     # one seed (vmap it over keys)
    state, metrics = algo.update(state, inputs, num_updates)   # a jitted chunk of updates
    logits = algo.act(params, obs)             # f32[N, A]

`inputs` is an `Inputs(teacher, data, frozen)`, or the teacher alone for online algorithms.
A subclass of `Algorithm` writes its loss inside `update`, `init` and `act`, and sets `head`,
`metrics` and the class flags; the base owns the rest, which the driver, evaluation and the run
setup call (never probing attributes): `hp` (hyperparameters in force, static keys checked),
`train` (init then every update), `steps_per_update` and `num_envs`, `policy(greedy)` with
`evaluation_params(params, inputs)` and `evaluation_axes` (the evaluation policy: sampling
`act`'s logits by default; DQN-Prior acts greedily over the prior's proposals), `frozen()`,
`prepare(dataset, teacher)` (an offline algorithm's data), `check_restored`,
`divergence_hint`. Offline algorithms (`offline = True`: cql, bc, dt) count gradient steps,
and `episode_free_metrics` fills the episode statistics they have none of.

`update` returns `metrics`, a dict of `f32[num_updates]` with at least `METRICS_REQUIRED`
(`env_steps` counts the environment steps done so far, `loss` is what the divergence guard
watches). The driver (`jaxrl3m.runner.driver`) vmaps `init` and `update` over seeds, jits chunks of
updates, and takes care of checkpoints, metrics, progress and evaluation for every algorithm. The
state is a pytree with `params` (what is evaluated and what a source policy is) and `update`.

A config is a frozen `flax.struct` dataclass: static fields fix shapes and code paths, the others
are leaves (a sweep over a coefficient is a `vmap`). It inherits the shared sections
`TaskSection` and `jaxrl3m.nets.NetworkSection`, so a key means the same in every algorithm; its
`check()` raises `ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from ..core.config import ConfigError, bounded, check_keys, did_you_mean
from .optim import adam

METRICS_REQUIRED = ("env_steps", "episodes", "return", "success", "length", "loss")


@struct.dataclass
class TaskSection:
    """Config keys of the task (static)."""

    task: str = struct.field(pytree_node=False, default="ColoredDoorKey")
    """DoorKey, LavaDoorKey or ColoredDoorKey; for plain RL (no teacher or prior) also NAVIX's
    DoorKey-NxN and any id of `navix.registry()` (jaxrl3m.envs.navix_env)."""
    view_size: int | None = struct.field(pytree_node=False, default=None)
    """Side of the agent's egocentric view; None: the task's own (3; LockedRoom's 7, MiniGrid's
    default)."""
    max_steps: int | None = struct.field(pytree_node=False, default=None)
    """Episode time limit (truncation, bootstrapped); None: the task's own (150 for the DoorKey
    tasks, NAVIX's for NAVIX tasks)."""

    @property
    def guide(self):
        """The task's guidance (`jaxrl3m.envs.Guidance`); a clear error for a task without."""
        from .. import envs
        try:
            return envs.guidance(self.task)
        except ValueError as e:
            raise ConfigError(f"config key 'task': {e}") from None

    @property
    def options(self) -> tuple[str, ...]:
        """The task's skills (the columns of its prior tables)."""
        return self.guide.options

    @property
    def horizon(self) -> int:
        """The episode time limit in force (`max_steps`, or the task's own)."""
        return self.make_env().horizon

    def make_env(self, layouts: str = "all"):
        """The task's environment; `layouts` ("all", "train", "heldout") where the task has a
        train/held-out split of its maps (the DoorKey family), ignored where it has none."""
        from .. import envs
        given = dict(view_size=self.view_size, max_steps=self.max_steps, layouts=layouts)
        valid = envs.keywords(self.task)
        return envs.make(self.task, **{k: v for k, v in given.items()
                                       if k in valid and v is not None})

    def check_task(self, bad) -> None:
        """Calls `bad(key, why)` for the first invalid task key."""
        from .. import envs
        try:
            envs.keywords(self.task)
        except ValueError:
            plain = [t for t in envs.tasks() if t not in envs.guided_tasks()]
            bad("task", f"{self.task!r} is not a task; valid: {', '.join(envs.guided_tasks())} "
                        f"(with a teacher), {', '.join(plain)} and the ids of "
                        f"sorted(navix.registry()) (plain RL)")
        if self.max_steps is not None and self.max_steps < 1:
            bad("max_steps", f"must be at least 1, got {self.max_steps}")
        try:
            self.make_env()
        except ValueError as e:
            raise ConfigError(str(e)) from None


@struct.dataclass
class RolloutSection:
    """Config keys of the online algorithms (PPO, DQN): rollouts, epochs and the optimiser (sizes
    static, coefficients pytree leaves). Defaults are PPO's presets'; DQN's config overrides
    `update_epochs`, `lr` and `max_grad_norm`."""

    num_envs: int = bounded(64, static=True, at_least=1)
    """Parallel environments."""
    num_steps: int = bounded(32, static=True, at_least=1)
    """Rollout length per update; one update consumes num_envs * num_steps env steps."""
    total_steps: int = bounded(1_000_000, static=True, at_least=1)
    """Environment steps to train for (rounded down to whole updates)."""
    update_epochs: int = bounded(4, static=True, at_least=1)
    """Passes over each rollout."""
    num_minibatches: int = bounded(4, static=True, at_least=1)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    anneal_lr: bool = struct.field(pytree_node=False, default=True)
    """Decay the learning rate linearly to 0 over the run."""
    lr: float = bounded(3e-3, within="positive")
    """Adam learning rate."""
    gamma: float = bounded(0.99, within="[0, 1]")
    """Discount."""
    max_grad_norm: float = bounded(0.5, within="positive")
    """Global gradient norm clip."""

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    @property
    def optimizer_steps(self) -> int:
        """Gradient steps of the whole run (the learning rate's annealing horizon)."""
        return self.num_updates * self.update_epochs * self.num_minibatches

    def check_rollout(self, bad) -> None:
        """Calls `bad(key, why)` for sizes that do not fit together."""
        if self.batch_size % self.num_minibatches:
            bad("num_minibatches", f"{self.num_minibatches} does not divide num_envs * "
                                   f"num_steps = {self.batch_size}")
        if self.num_updates < 1:
            bad("total_steps", f"{self.total_steps} is less than one update "
                               f"(num_envs * num_steps = {self.batch_size})")


@struct.dataclass
class GradientSection:
    """Config keys of the offline algorithms' gradient steps (CQL, BC, DT)."""

    batch_size: int = bounded(128, static=True, at_least=1)
    """Samples (transitions, or context windows) per gradient step."""
    gradient_steps: int = bounded(10_000, static=True, at_least=1)
    """Gradient steps to train for (rounded down to whole updates)."""
    steps_per_update: int = bounded(100, static=True, at_least=1)
    """Gradient steps per update (one metrics row; log_every updates make a checkpoint)."""

    @property
    def num_updates(self) -> int:
        return self.gradient_steps // self.steps_per_update

    @property
    def optimizer_steps(self) -> int:
        """Gradient steps of the whole run, in whole updates (the annealing horizon)."""
        return self.num_updates * self.steps_per_update

    def check_gradient_steps(self, bad) -> None:
        if self.num_updates < 1:
            bad("gradient_steps", f"{self.gradient_steps} is less than one update "
                                  f"(steps_per_update = {self.steps_per_update})")


def config_error(key: str, why: str):
    """The `bad(key, why)` of config checks."""
    raise ConfigError(f"config key {key!r}: {why}")


def check_sections(config) -> Callable[[str, str], None]:
    """What every config's `check` starts with: the task keys, the network keys and every key's
    declared bounds (`core.config.bounded`); returns `bad(key, why)` for the checks that relate
    several keys."""
    config.check_task(config_error)
    config.check_network(config_error)
    if getattr(config, "view", None) == "allocentric" and config.network == "cnn":
        h, w = getattr(config.make_env(), "grid_shape", (0, 0))
        if h != w:
            config_error("network", f"cnn needs a square map, and {config.task}'s allocentric "
                                    f"view is {h} x {w}: use view=egocentric (a square window "
                                    f"around the agent) or network=mlp")
    check_keys(config, config_error)
    if isinstance(config, RolloutSection):
        config.check_rollout(config_error)
    if isinstance(config, GradientSection):
        config.check_gradient_steps(config_error)
    return config_error


def static_fields(config_cls: type) -> tuple[str, ...]:
    """The fields of a config class that fix shapes or code (not pytree leaves)."""
    return tuple(f.name for f in dataclasses.fields(config_cls)
                 if not f.metadata.get("pytree_node", True))


class Inputs(struct.PyTreeNode):
    """What an algorithm's `update` takes besides its state (the same for every seed): the
    teacher or prior (`jaxrl3m.teacher.teacher.Teacher` / `Prior`, None for plain RL), an
    offline algorithm's dataset on the device (`data`: `OfflineData`, `DTData`), and what an
    algorithm keeps frozen (`frozen`: a Decision Transformer's base model)."""

    teacher: Any = None
    data: Any = None
    frozen: Any = None


def as_inputs(inputs: Any) -> Inputs:
    """`inputs` as an `Inputs`: an `Inputs` as it is, a teacher or prior (or None) alone as
    `Inputs(teacher=inputs)` (so `ppo.train(key, teacher)` reads as it always did)."""
    if isinstance(inputs, Inputs):
        return inputs
    if isinstance(inputs, (tuple, list)):
        raise ConfigError("an algorithm's inputs are a jaxrl3m.algos.Inputs(teacher=..., "
                          "data=..., frozen=...) (or the teacher alone), not a tuple")
    return Inputs(teacher=inputs)


@dataclasses.dataclass(frozen=True)
class Algorithm:
    """The contract between an algorithm and the driver (see the module docstring).

    A subclass is a frozen dataclass whose first field is `config`; it sets `head` (the
    network's head: `"actor_critic"`, `"q"`) and `metrics`, and writes `init`, `update` and
    `act` (its loss and its policy); everything the driver, evaluation and the run setup need
    besides has a default here. `custom_env` replaces the task's environment (probe tasks)."""

    config: Any
    guided: bool = True
    custom_env: Any = None

    head: ClassVar[str] = "q"
    metrics: ClassVar[tuple[str, ...]] = METRICS_REQUIRED
    offline: ClassVar[bool] = False
    """Learns from a dataset: an update is `steps_per_update` gradient steps, not a rollout."""
    progress_unit: ClassVar[str] = " steps"
    evaluation_axes: ClassVar[Any] = True
    """The vmap prefix of `evaluation_params` over seeds (True: all of it per seed)."""
    evaluation_needs_data: ClassVar[bool] = False
    """Evaluation reads the dataset (a Decision Transformer's target return)."""

    @property
    def evaluation_needs_teacher(self) -> bool:
        """Evaluation reads the teacher or prior (`evaluation_params`): DQN-Prior, CQL-Prior and
        BC-Prior act with their prior; PPO's policy acts alone."""
        return False

    # -- what the algorithm is built on ---------------------------------------------------
    @property
    def env(self):
        """The environment training steps: the task's training layouts (or the environment it
        was built with)."""
        return self.custom_env if self.custom_env is not None else self.config.make_env("train")

    @property
    def eval_env(self):
        """The environment every evaluation plays: the task's held-out layouts, whose maps
        training never draws (`jaxrl3m.envs.layout.SPLIT`); a task without a split (NAVIX's,
        a custom environment) plays the same layouts as training."""
        return (self.custom_env if self.custom_env is not None
                else self.config.make_env("heldout"))

    @property
    def network(self):
        from ..nets import Network
        return Network.from_config(self.config, self.head, self.env.num_actions)

    @property
    def num_envs(self) -> int | None:
        """Environments per seed (None offline: nothing steps during training)."""
        return None if self.offline else self.config.num_envs

    @property
    def steps_per_update(self) -> int:
        """What one update counts in progress and `env_steps`: environment steps online
        (`num_envs * num_steps`), gradient steps offline (`config.steps_per_update`)."""
        c = self.config
        return c.steps_per_update if self.offline else c.batch_size

    def hp(self, config: Any = None) -> Any:
        """The hyperparameters in force: `config` (a sweep's traced values) or the built one;
        a `config` whose static keys differ is refused."""
        if config is None:
            return self.config
        for name in static_fields(type(self.config)):
            if getattr(config, name) != getattr(self.config, name):
                raise ConfigError(f"config key {name!r} is static (it fixes shapes or code); "
                                  f"build a new algorithm with jaxrl3m.algos.make to change it")
        return config

    def optimizer(self, c: Any) -> Any:
        """Adam with global-norm clipping, the learning rate annealed linearly over the run's
        `optimizer_steps` when `anneal_lr` (`algos.optim.adam`)."""
        return adam(c.lr, c.max_grad_norm, c.optimizer_steps, c.anneal_lr)

    def init_params(self, key: jax.Array) -> Any:
        """A fresh network's parameters."""
        obs = jax.tree.map(lambda x: x[None], self.env.reset(jax.random.key(0)).obs)
        return self.network.init(key, obs)

    def teacher(self, table: Any, past: tuple = ()) -> Any:
        """The teacher (or prior) this algorithm expects, from a prior table."""
        from ..teacher.teacher import Teacher
        if past:
            raise ConfigError(f"{type(self).__name__}'s prior is the table alone; past "
                              "policies (teacher=source or prior+source) need algo=ppo")
        return Teacher.create(self.config.task, table)

    # -- what every algorithm writes ------------------------------------------------------
    def init(self, key: jax.Array, params: Any = None, config: Any = None) -> Any:
        """One seed's state before the first update (`params`: start from these)."""
        raise NotImplementedError

    def update(self, state: Any, inputs: Any = None, num_updates: int = 1,
               config: Any = None) -> tuple[Any, dict]:
        """`num_updates` updates in one `lax.scan`; metrics `f32[num_updates]` each."""
        raise NotImplementedError

    def act(self, params: Any, obs: Any) -> jax.Array:
        """`f32[N, A]` logits (or Q-values) for a batch of observations."""
        raise NotImplementedError

    # -- shared -----------------------------------------------------------------------------
    def train(self, key: jax.Array, inputs: Any = None, params: Any = None,
              config: Any = None) -> tuple[Any, dict]:
        """The whole run: `init` then every update in one scan (jit it; vmap it over keys).
        `params`: start from these parameters (fine-tuning) instead of a fresh network."""
        c = self.hp(config)
        return self.update(self.init(key, params, c), inputs, c.num_updates, c)

    def policy(self, greedy: bool = True) -> Any:
        """The collector policy that evaluation plays, acting from `evaluation_params`: by
        default sampling (or the argmax of) `act`'s logits."""
        from ..core.collector import Sample
        return Sample(Act(self), greedy)

    def evaluation_params(self, params: Any, inputs: Any = None) -> Any:
        """What `policy` acts from, given the trained parameters (per seed) and the inputs."""
        return params

    def frozen(self) -> Any:
        """What the algorithm keeps frozen and shares across seeds (`Inputs.frozen`)."""
        return None

    def prepare(self, ds: Any, teacher: Any = None) -> tuple[Any, dict]:
        """An offline algorithm's dataset on the device (`Inputs.data`) and what it was."""
        raise ConfigError(f"{type(self).__name__} learns online: it takes no dataset")

    def check_restored(self, state: Any, frozen: Any) -> None:
        """Refuses a restored state that does not belong to these inputs (default: any
        fits)."""

    def divergence_hint(self, config: Any) -> str:
        """What to change when the loss diverges."""
        return (f"Lower lr (now {float(config.lr):g}), or clip gradients harder "
                "(max_grad_norm).")


def episode_free_metrics(metrics: dict, update: jax.Array, steps_per_update: int) -> dict:
    """The metrics of an update without episodes (offline): `env_steps` counts gradient steps,
    `episodes` 0 and the episode statistics NaN (no episode ended)."""
    nan = jnp.float32(jnp.nan)
    return {**metrics, "env_steps": ((update + 1) * steps_per_update).astype(jnp.float32),
            "episodes": jnp.float32(0.0), "success": nan, "length": nan, "return": nan}


@dataclasses.dataclass(frozen=True)
class Act:
    """`algo.act` as a value: equal algorithms give equal policies, so a run, its resumption
    and `python -m jaxrl3m.evaluate` share one compiled evaluation program per process (a
    bound method compares its object by identity, which made each of them trace and compile
    its own)."""

    algo: Algorithm

    def __call__(self, params: Any, obs: Any) -> jax.Array:
        return self.algo.act(params, obs)


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
