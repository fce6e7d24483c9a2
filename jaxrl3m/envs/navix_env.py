"""NAVIX both ways: any NAVIX environment behind jaxrl3m's interface, and jaxrl3m's tasks inside
NAVIX's registry.

**NAVIX in jaxrl3m.** `NavixEnv` wraps any id of `navix.registry()` (`make("Navix-Empty-8x8-v0")`,
`task=Navix-FourRooms-v0` in a config) so that the collector, every algorithm and every encoder
run on it. Its observation is jaxrl3m's `Observation`, built from NAVIX's true state: the grid as
NAVIX's `symbolic` encoding draws it without the player (fully observed, MiniGrid codes, which
equal ours), the player's position and direction, and the encoding of the object in its pocket.
NAVIX's step types map onto the library's flags: `TERMINATION` -> `terminated`, `TRUNCATION` ->
`truncated`. NAVIX resets one `step` call after an episode ends and ignores that call's action;
here, as for every jaxrl3m task, the step that ends an episode already starts the next one (from
the same `state.key` NAVIX would use), see `TimeStep`. Reward, horizon and rules stay NAVIX's,
except for the `DoorKey-NxN` names, which keep MiniGrid's reward (`penalty_coeff = 0.9`) and
horizon (`10 N^2`). Plain RL only: NAVIX tasks have no abstract states, so no teacher or prior.

**jaxrl3m in NAVIX.** Importing `jaxrl3m.envs` registers `JaxRL3M-<task>-v0` for DoorKey,
LavaDoorKey, ColoredDoorKey, Unlock, UnlockPickup and BlockedUnlockPickup (`REGISTERED`) in
`navix.register_env`, so that
`navix.make("JaxRL3M-DoorKey-v0")` returns a `navix.Environment` (`NavixTask`) with our rules and
NAVIX's conventions: `Timestep` with `step_type`, `t`, `info["return"]`, the deferred autoreset
(`disable_autoreset` honoured), `observation_space`/`action_space`. Code written for NAVIX,
`navix.agents.PPO` and `PQN` included, runs on them unchanged. Its observation is an array, as
NAVIX's agents need: `observation="window"` (default) is what jaxrl3m's encoder reads, the
agent's remembered map in an 11 x 11 window centred on it and turned to its heading, with the
carried object drawn in the agent's own cell (MiniGrid's and NAVIX's first-person convention);
`"symbolic"` is the whole remembered map with the agent drawn as `(agent, 0, direction)`;
`flatten=True` makes it a vector (NAVIX's `PPO` and `PQN` networks read flat observations).
Keyword arguments of `navix.make` other than NAVIX's are the task's keywords (`size`,
`max_steps`, `view_size`, `fully_observed`, `layouts`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import navix as nx
from flax import struct
from navix.environments.environment import StepType, Timestep

from . import autoreset
from .types import AGENT, NOTHING, NUM_ACTIONS, Observation, TimeStep
from .observation import window_cells

NAVIX_PREFIX = "Navix-"
REGISTERED = {"JaxRL3M-DoorKey-v0": "DoorKey", "JaxRL3M-LavaDoorKey-v0": "LavaDoorKey",
              "JaxRL3M-ColoredDoorKey-v0": "ColoredDoorKey", "JaxRL3M-Unlock-v0": "Unlock",
              "JaxRL3M-UnlockPickup-v0": "UnlockPickup",
              "JaxRL3M-BlockedUnlockPickup-v0": "BlockedUnlockPickup"}
"""NAVIX id -> jaxrl3m task, for the tasks registered in NAVIX."""


# ---------------------------------------------------------------------------------------------
# NAVIX in jaxrl3m
# ---------------------------------------------------------------------------------------------
def carried_cell(state) -> jax.Array:
    """`u8[3]`: the encoding of what the NAVIX player holds (`NOTHING` when its pocket is empty):
    the pickable entity whose id is in the pocket."""
    pocket = state.get_player().pocket
    found = jnp.asarray(NOTHING)
    for entity in state.entities.values():
        if not hasattr(entity, "id") or not hasattr(entity, "colour"):
            continue
        ids = jnp.atleast_1d(entity.id)
        hit = ids == pocket
        code = jnp.stack([jnp.broadcast_to(jnp.atleast_1d(entity.tag), ids.shape),
                          jnp.atleast_1d(entity.colour), jnp.zeros_like(ids)], -1).astype(jnp.uint8)
        found = jnp.where(hit.any() & (pocket >= 0), code[jnp.argmax(hit)], found)
    return found


def navix_observation(state) -> Observation:
    """jaxrl3m's `Observation` of a NAVIX `State` (fully observed)."""
    player = state.get_player()
    others = {k: v for k, v in state.entities.items() if k != "player"}
    grid = nx.observations.symbolic(state.replace(entities=others))
    return Observation(grid=grid.astype(jnp.uint8), agent_pos=player.position.astype(jnp.int32),
                       agent_dir=jnp.asarray(player.direction, jnp.int32),
                       carrying=carried_cell(state))


def _no_observation(state) -> jax.Array:
    return jnp.zeros((), jnp.uint8)


@dataclasses.dataclass(frozen=True)
class NavixEnv:
    """A NAVIX environment (`navix_id`) behind jaxrl3m's interface (see the module docstring)."""

    name: str
    navix_id: str = ""
    max_steps: int | None = None
    """Truncation horizon; None keeps NAVIX's (`DoorKey-NxN`: MiniGrid's `10 N^2`)."""
    penalty_coeff: float | None = None
    """Reward `1 - penalty_coeff * t / max_steps` at success; None keeps NAVIX's (`DoorKey-NxN`:
    MiniGrid's 0.9)."""
    size: int = 0
    """For the `DoorKey-NxN` names: N (sets `navix_id`, the reward and the horizon)."""

    def __post_init__(self):
        if self.size:
            object.__setattr__(self, "navix_id", f"Navix-DoorKey-{self.size}x{self.size}-v0")
        if self.navix_id not in nx.registry():
            import difflib
            close = difflib.get_close_matches(self.navix_id, list(nx.registry()), n=3)
            raise ValueError(f"unknown NAVIX environment {self.navix_id!r}"
                             + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + "; sorted(navix.registry()) lists them")

    @property
    def horizon(self) -> int:
        return self.navix_env.max_steps

    @property
    def num_actions(self) -> int:
        return len(self.navix_env.action_set)

    @functools.cached_property
    def navix_env(self):
        """The NAVIX environment (built once per instance), without NAVIX's autoreset."""
        kwargs: dict[str, Any] = {}
        max_steps, penalty = self.max_steps, self.penalty_coeff
        if self.size:
            max_steps = 10 * self.size * self.size if max_steps is None else max_steps
            penalty = 0.9 if penalty is None else penalty
        if max_steps is not None:
            kwargs["max_steps"] = max_steps
        if penalty is not None:
            kwargs["penalty_coeff"] = penalty
        # NAVIX's own observation is never read (ours is `navix_observation` of the state): a
        # constant, so that NAVIX does not render one per step and per reset.
        return nx.make(self.navix_id, disable_autoreset=True, observation_fn=_no_observation,
                       observation_space=nx.spaces.Discrete.create(1, (), jnp.uint8), **kwargs)

    def reset(self, key: jax.Array) -> TimeStep:
        ts = self.navix_env.reset(key)
        false = jnp.zeros((), bool)
        obs = navix_observation(ts.state)
        return TimeStep(state=ts, obs=obs, reward=jnp.zeros((), jnp.float32), terminated=false,
                        truncated=false, final_obs=obs)

    def transition(self, state, action: jax.Array):
        """NAVIX's step without its autoreset: `(next_state, reward, terminated, truncated)`."""
        nxt = self.navix_env.step(state, action)
        return nxt, nxt.reward.astype(jnp.float32), nxt.is_termination(), nxt.is_truncation()

    def next_episode(self, state):
        """The episode a reset after `state` starts, from `state.state.key` as NAVIX's own
        autoreset would. The rendering cache (NAVIX's sprites, ~10 kB per environment) is the
        same before and after a reset: kept, not rebuilt."""
        fresh = self.navix_env.reset(state.state.key)
        return fresh.replace(state=fresh.state.replace(cache=state.state.cache))

    def observe(self, state) -> Observation:
        return navix_observation(state.state)

    def step(self, state, action: jax.Array) -> TimeStep:
        """One step with the library's autoreset (`jaxrl3m.envs.autoreset`)."""
        return autoreset.step(self, state, action)


# ---------------------------------------------------------------------------------------------
# jaxrl3m in NAVIX
# ---------------------------------------------------------------------------------------------
OBSERVATIONS = ("window", "symbolic")
WINDOW = 11  # the encoder's default egocentric window (nets.encoders.CellEncoder.window)


def observation_array(obs: Observation, mode: str) -> jax.Array:
    """The array NAVIX code sees for jaxrl3m's `Observation` (see the module docstring)."""
    if mode == "window":
        cells = window_cells(obs.grid, obs.agent_pos, obs.agent_dir, WINDOW)
        return cells.at[WINDOW // 2, WINDOW // 2].set(obs.carrying)
    me = jnp.stack([jnp.asarray(AGENT, jnp.uint8), jnp.zeros((), jnp.uint8),
                    obs.agent_dir.astype(jnp.uint8)])
    return obs.grid.at[obs.agent_pos[0], obs.agent_pos[1]].set(me)


class NavixTask(nx.Environment):
    """A jaxrl3m task as a NAVIX `Environment` (see the module docstring). `Timestep.state` holds
    jaxrl3m's `EnvState`; everything else follows NAVIX."""

    task: Any = struct.field(pytree_node=False, default=None)
    observation: str = struct.field(pytree_node=False, default="window")
    flatten: bool = struct.field(pytree_node=False, default=False)

    @classmethod
    def of(cls, name: str, observation: str = "window", flatten: bool = False,
           gamma: float = 0.99, disable_autoreset: bool = False, **keywords) -> "NavixTask":
        from . import make
        if observation not in OBSERVATIONS:
            raise ValueError(f"unknown observation {observation!r}; valid: "
                             f"{', '.join(OBSERVATIONS)}")
        task = make(name, **keywords)
        h, w = task.grid_shape
        shape = (WINDOW, WINDOW, 3) if observation == "window" else (h, w, 3)
        shape = (shape[0] * shape[1] * shape[2],) if flatten else shape
        return cls(height=h, width=w, max_steps=task.max_steps,
                   observation_space=nx.spaces.Discrete.create(256, shape, jnp.uint8),
                   action_space=nx.spaces.Discrete.create(NUM_ACTIONS),
                   reward_space=nx.spaces.Continuous.create(
                       shape=(), minimum=jnp.asarray(0.0), maximum=jnp.asarray(1.0)),
                   disable_autoreset=disable_autoreset, gamma=gamma, penalty_coeff=0.9,
                   task=task, observation=observation, flatten=flatten)

    def _observe(self, state) -> jax.Array:
        x = observation_array(self.task.observe(state), self.observation)
        return x.reshape(-1) if self.flatten else x

    def _first(self, state) -> Timestep:
        return Timestep(t=jnp.zeros((), jnp.int32),
                        observation=self._observe(state),
                        action=jnp.zeros((), jnp.int32), reward=jnp.zeros((), jnp.float32),
                        step_type=jnp.zeros((), jnp.int32), state=state,
                        info={"return": jnp.zeros((), jnp.float32)})

    def _reset(self, key: jax.Array, cache=None) -> Timestep:
        return self._first(self.task.reset(key).state)

    def reset(self, key: jax.Array, cache=None) -> Timestep:
        return self._reset(key)

    def _step(self, timestep: Timestep, action: jax.Array) -> Timestep:
        action = jnp.reshape(jnp.asarray(action, jnp.int32), ())  # NAVIX's agents pass i32[1]
        state, reward, terminated, truncated = self.task.transition(timestep.state, action)
        step_type = jnp.where(terminated, StepType.TERMINATION,
                              jnp.where(truncated, StepType.TRUNCATION, StepType.TRANSITION))
        return Timestep(t=timestep.t + 1,
                        observation=self._observe(state),
                        action=action, reward=reward,
                        step_type=step_type.astype(jnp.int32), state=state,
                        info={**timestep.info, "return": timestep.info["return"] + reward})

    def step(self, timestep: Timestep, action: jax.Array) -> Timestep:
        """NAVIX's `step`: after an episode ended (and unless `disable_autoreset`), the next call
        ignores `action` and starts a new episode from `timestep.state.key`, the key jaxrl3m's
        own autoreset uses, so both see the same sequence of layouts."""
        if self.disable_autoreset:
            return self._step(timestep, action)
        return jax.lax.cond(timestep.step_type > 0,
                            lambda ts: self._reset(ts.state.key),
                            lambda ts: self._step(ts, action), timestep)


def register() -> None:
    """Registers jaxrl3m's tasks in NAVIX's registry (idempotent)."""
    for navix_id, name in REGISTERED.items():
        nx.register_env(navix_id, functools.partial(NavixTask.of, name))


def is_navix_id(name: str) -> bool:
    return name.startswith(NAVIX_PREFIX) and name in nx.registry()


register()  # whoever imports this module first (jaxrl3m.envs defers it until NAVIX loads)

__all__ = ["NavixEnv", "NavixTask", "OBSERVATIONS", "REGISTERED", "navix_observation",
           "observation_array", "register", "is_navix_id"]
