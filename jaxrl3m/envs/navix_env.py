"""NAVIX's own goal-based DoorKey-NxN behind jaxrl3m's interface, for comparison with NAVIX.

These keep NAVIX's rules and its symbolic (fully observed) observation, with MiniGrid's reward
(`penalty_coeff = 0.9`: `1 - 0.9 * t / max_steps` at the goal) and an explicit `max_steps`
(MiniGrid's `10 * size * size` unless given). Only the autoreset is ours: NAVIX resets on the
step after a terminal step and ignores that action; here the terminal step itself starts the
next episode, as for every jaxrl3m task (see `TimeStep`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import navix as nx

from .types import TimeStep


@dataclasses.dataclass(frozen=True)
class NavixDoorKeyEnv:
    """`DoorKey-{size}x{size}` from NAVIX (`Navix-DoorKey-{size}x{size}-v0`)."""

    name: str
    size: int = 8
    max_steps: int | None = None
    """Truncation horizon; None means MiniGrid's `10 * size * size`."""

    @property
    def navix_id(self) -> str:
        return f"Navix-DoorKey-{self.size}x{self.size}-v0"

    @property
    def horizon(self) -> int:
        return self.max_steps if self.max_steps is not None else 10 * self.size * self.size

    @property
    def num_actions(self) -> int:
        return 7

    @functools.cached_property
    def navix_env(self):
        """The NAVIX environment (built once per instance)."""
        return nx.make(self.navix_id, max_steps=self.horizon, penalty_coeff=0.9,
                       disable_autoreset=True)

    def _timestep(self, ts, reward, terminated, truncated, final_obs) -> TimeStep:
        return TimeStep(state=ts, obs=ts.observation, reward=reward, terminated=terminated,
                        truncated=truncated, final_obs=final_obs)

    def reset(self, key: jax.Array) -> TimeStep:
        ts = self.navix_env.reset(key)
        false = jnp.zeros((), bool)
        return self._timestep(ts, jnp.zeros((), jnp.float32), false, false, ts.observation)

    def step(self, state, action: jax.Array) -> TimeStep:
        env = self.navix_env
        nxt = env.step(state, action)
        terminated = nxt.is_termination()
        truncated = nxt.is_truncation()
        fresh = env.reset(state.state.key)
        new = jax.tree.map(lambda a, b: jnp.where(terminated | truncated, a, b), fresh, nxt)
        return self._timestep(new, nxt.reward.astype(jnp.float32), terminated, truncated,
                              nxt.observation)
