"""jaxrl3m's tasks through the APIs other libraries' agents speak: gymnax and Gymnasium.

    from jaxrl3m.envs.gym_api import GymnaxEnv
    env = GymnaxEnv("DoorKey")                      # gymnax 1.x: PureJaxRL- and rejax-style agents
    obs, state = env.reset(key)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action)

    import gymnasium as gym, jaxrl3m.envs.gym_api   # registers jaxrl3m/DoorKey-v0, ...
    env = gym.make("jaxrl3m/DoorKey-v0")           # one environment, numpy in and out
    envs = gym.make_vec("jaxrl3m/DoorKey-v0", num_envs=4096)  # one jitted step for all of them

The observation is one flat vector, `flat_observation(obs)`: the remembered map (`u8[H, W, 3]`
MiniGrid codes) with the agent drawn in its cell (`(AGENT, 0, direction)`, as MiniGrid's
`grid.encode` draws it), then the carried object's code (3 values): `u8[H * W * 3 + 3]`
(float32 for gymnax, whose agents feed it to dense layers); a task with a mission (Fetch) adds
the mission's object code last (3 more values). The transitions are exactly
`jaxrl3m.envs.make(task)`'s (tested step by step):
- gymnax (`GymnaxEnv`): the same-step autoreset of gymnax 1.x (`info["final_observation"]` is
  the observation the episode ended in); the step's `key` is not used: an episode's randomness
  (the next layout) is in its state, as in `jaxrl3m.envs`. Needs neither gymnax nor its spaces
  (`action_space`/`observation_space` are gymnax's when it is installed, else look-alikes).
- Gymnasium `Env` (`GymnasiumEnv`): no autoreset (call `reset` after an episode ends); passes
  `gymnasium.utils.env_checker.check_env`; `render_mode="ansi"` draws the true grid as text.
- Gymnasium `VectorEnv` (`GymnasiumVectorEnv`): `num_envs` environments stepped by one jitted
  `vmap`, same-step autoreset (`AutoresetMode.SAME_STEP`: `infos["final_obs"]` and the mask
  `infos["_final_obs"]`).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from .types import AGENT, NUM_ACTIONS, Observation, mission_of

GYM_TASKS = ("DoorKey", "LavaDoorKey", "ColoredDoorKey", "Unlock", "UnlockPickup",
             "BlockedUnlockPickup", "KeyCorridorS3R1", "KeyCorridorS3R2", "KeyCorridorS3R3",
             "KeyCorridorS4R3", "KeyCorridorS5R3", "KeyCorridorS6R3", "LockedRoom", "Fetch")
"""The tasks registered with Gymnasium as `jaxrl3m/<task>-v0`."""


def flat_observation(obs: Observation) -> jax.Array:
    """`u8[H * W * 3 + 3]`: the remembered map with the agent drawn in, then the carried object
    (and the mission's object, `+ 3`, for a task with a mission; one environment, vmap it for
    a batch)."""
    grid = obs.grid.astype(jnp.uint8)
    agent = jnp.stack([jnp.uint8(AGENT), jnp.uint8(0), obs.agent_dir.astype(jnp.uint8)])
    grid = grid.at[obs.agent_pos[0], obs.agent_pos[1]].set(agent)
    mission = () if mission_of(obs) is None else (mission_of(obs).astype(jnp.uint8),)
    return jnp.concatenate([grid.reshape(-1), obs.carrying.astype(jnp.uint8), *mission])


def _make(task: str, **keywords: Any):
    from . import make
    return make(task, **keywords)


@functools.cache
def _obs_size(env) -> int:
    """The flat observation's length (traced once per environment, not run: any task, with or
    without a mission)."""
    obs = jax.eval_shape(lambda k: flat_observation(env.reset(k).obs), jax.random.key(0))
    return obs.shape[0]


# ---------------------------------------------------------------------------------------------
# gymnax
# ---------------------------------------------------------------------------------------------
class _Discrete:
    """gymnax's `spaces.Discrete` look-alike (when gymnax is not installed)."""

    def __init__(self, n: int):
        self.n, self.shape, self.dtype = n, (), jnp.int32

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.randint(key, (), 0, self.n, jnp.int32)

    def contains(self, x) -> jax.Array:
        return jnp.logical_and(x >= 0, x < self.n)


class _Box:
    """gymnax's `spaces.Box` look-alike (when gymnax is not installed)."""

    def __init__(self, low, high, shape, dtype):
        self.low, self.high, self.shape, self.dtype = low, high, shape, dtype

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.uniform(key, self.shape, self.dtype, self.low, self.high)

    def contains(self, x) -> jax.Array:
        return jnp.all(jnp.logical_and(x >= self.low, x <= self.high))


@struct.dataclass
class GymnaxParams:
    """gymnax's `EnvParams`: the episode's time limit (the task's `max_steps`, fixed)."""

    max_steps_in_episode: int = 150


@struct.dataclass
class GymnaxState:
    """The environment's state and gymnax's step counter (`time`)."""

    env_state: Any
    time: jax.Array  # i32[]


class GymnaxEnv:
    """A jaxrl3m task as a gymnax 1.x `Environment` (`reset(key, params)`, `step(key, state,
    action, params)` returning `(obs, state, reward, terminated, truncated, info)`)."""

    def __init__(self, task: str = "DoorKey", **keywords: Any):
        self.env = _make(task, **keywords)
        self.task = task

    @property
    def name(self) -> str:
        return f"jaxrl3m/{self.task}"

    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    @property
    def default_params(self) -> GymnaxParams:
        return GymnaxParams(max_steps_in_episode=self.env.horizon)

    def action_space(self, params: GymnaxParams | None = None):
        try:
            from gymnax.environments import spaces
            return spaces.Discrete(NUM_ACTIONS)
        except ImportError:
            return _Discrete(NUM_ACTIONS)

    def observation_space(self, params: GymnaxParams | None = None):
        shape = (_obs_size(self.env),)
        try:
            from gymnax.environments import spaces
            return spaces.Box(0.0, 255.0, shape, jnp.float32)
        except ImportError:
            return _Box(0.0, 255.0, shape, jnp.float32)

    @functools.partial(jax.jit, static_argnums=0)
    def reset(self, key: jax.Array, params: GymnaxParams | None = None):
        ts = self.env.reset(key)
        return (flat_observation(ts.obs).astype(jnp.float32),
                GymnaxState(env_state=ts.state, time=jnp.zeros((), jnp.int32)))

    @functools.partial(jax.jit, static_argnums=0)
    def step(self, key: jax.Array, state: GymnaxState, action, params: GymnaxParams | None = None):
        ts = self.env.step(state.env_state, jnp.asarray(action, jnp.int32))
        done = jnp.logical_or(ts.terminated, ts.truncated)
        obs = flat_observation(ts.obs).astype(jnp.float32)
        info = {"terminated": ts.terminated, "truncated": ts.truncated,
                "final_observation": flat_observation(ts.final_obs).astype(jnp.float32)}
        time = jnp.where(done, 0, state.time + 1)
        return (obs, GymnaxState(env_state=ts.state, time=time), ts.reward, ts.terminated,
                ts.truncated, info)


# ---------------------------------------------------------------------------------------------
# Gymnasium
# ---------------------------------------------------------------------------------------------
def _seed_key(seed: int | None, rng: np.random.Generator) -> jax.Array:
    return jax.random.key(int(rng.integers(2**31)) if seed is None else int(seed))


try:
    import gymnasium as _gym
except ImportError:  # the Gymnasium classes need it; the gymnax one does not
    _gym = None


if _gym is not None:
    from gymnasium import spaces as _spaces

    class GymnasiumEnv(_gym.Env):
        """One jaxrl3m task as a `gymnasium.Env` (numpy in and out, no autoreset)."""

        metadata = {"render_modes": ["ansi"]}

        def __init__(self, task: str = "DoorKey", render_mode: str | None = None,
                     **keywords: Any):
            if render_mode not in (None, "ansi"):
                raise ValueError(f"render_mode {render_mode!r}: jaxrl3m's Gymnasium env renders "
                                 "'ansi' (text) or nothing")
            self.env = _make(task, **keywords)
            self.render_mode = render_mode
            self.action_space = _spaces.Discrete(NUM_ACTIONS)
            self.observation_space = _spaces.Box(0, 255, (_obs_size(self.env),), np.uint8)
            self._reset = jax.jit(lambda k: _flat(self.env.reset(k)))
            self._step = jax.jit(lambda s, a: _flat(self.env.step(s, a)))
            self._state = None

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            ts, obs, _ = self._reset(_seed_key(seed, self.np_random))
            self._state = ts.state
            return np.asarray(obs), {}

        def step(self, action):
            if self._state is None:
                raise RuntimeError("call reset() before step()")
            ts, obs, final = self._step(self._state, jnp.int32(int(action)))
            self._state = ts.state
            terminated, truncated = bool(ts.terminated), bool(ts.truncated)
            # The episode that ended is observed as it ended; reset() starts the next.
            out = final if terminated or truncated else obs
            return np.asarray(out), float(ts.reward), terminated, truncated, {}

        def render(self):
            if self.render_mode != "ansi" or self._state is None:
                return None
            from .render import render_text
            s = self._state
            return render_text(np.asarray(s.grid), np.asarray(s.agent_pos),
                               int(s.agent_dir))

    class GymnasiumVectorEnv(_gym.vector.VectorEnv):
        """`num_envs` environments of a jaxrl3m task stepped by one jitted `vmap`, as a
        Gymnasium `VectorEnv` (numpy in and out, same-step autoreset)."""

        metadata = {"autoreset_mode": _gym.vector.AutoresetMode.SAME_STEP}

        def __init__(self, task: str = "DoorKey", num_envs: int = 1, **keywords: Any):
            if not isinstance(num_envs, int) or num_envs < 1:
                raise ValueError(f"num_envs must be a positive integer, got {num_envs!r}")
            self.env = _make(task, **keywords)
            self.num_envs = num_envs
            self.single_action_space = _spaces.Discrete(NUM_ACTIONS)
            self.single_observation_space = _spaces.Box(0, 255, (_obs_size(self.env),),
                                                        np.uint8)
            self.action_space = _gym.vector.utils.batch_space(self.single_action_space,
                                                              num_envs)
            self.observation_space = _gym.vector.utils.batch_space(
                self.single_observation_space, num_envs)
            self._reset = jax.jit(jax.vmap(lambda k: _flat(self.env.reset(k))))
            self._step = jax.jit(jax.vmap(lambda s, a: _flat(self.env.step(s, a))))
            self._state = None

        def reset(self, *, seed: int | None = None, options: dict | None = None):
            super().reset(seed=seed)
            keys = jax.random.split(_seed_key(seed, self.np_random), self.num_envs)
            ts, obs, _ = self._reset(keys)
            self._state = ts.state
            return np.asarray(obs), {}

        def step(self, actions):
            if self._state is None:
                raise RuntimeError("call reset() before step()")
            actions = np.asarray(actions, np.int32).reshape(self.num_envs)
            ts, obs, final = self._step(self._state, jnp.asarray(actions))
            self._state = ts.state
            terminated, truncated = np.asarray(ts.terminated), np.asarray(ts.truncated)
            done = terminated | truncated
            infos = {"final_obs": np.asarray(final), "_final_obs": done} if done.any() else {}
            return (np.asarray(obs), np.asarray(ts.reward), terminated, truncated, infos)

    def register_gymnasium() -> None:
        """Registers `jaxrl3m/<task>-v0` for every task in `GYM_TASKS` (idempotent)."""
        for task in GYM_TASKS:
            env_id = f"jaxrl3m/{task}-v0"
            if env_id in _gym.registry:
                continue
            _gym.register(env_id, entry_point=f"{__name__}:GymnasiumEnv",
                          vector_entry_point=f"{__name__}:GymnasiumVectorEnv",
                          kwargs={"task": task})

    register_gymnasium()


def _flat(ts):
    """`(timestep, flat obs, flat final obs)` of one environment's `TimeStep`."""
    return ts, flat_observation(ts.obs), flat_observation(ts.final_obs)
