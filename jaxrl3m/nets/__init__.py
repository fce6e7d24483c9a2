"""Networks: one encoder of the symbolic observation, heads on it, and their shared config keys.

    net = Network.from_config(config, head="actor_critic")   # config: any NetworkSection
    params = net.init(key, obs)                               # obs: a batch of observations
    logits, value = net.apply(params, obs)

`Network` is hashable (a frozen dataclass of its settings), so it can be a static argument or a
field of a pytree's static part (a past policy inside the teacher) and compiles once per shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from flax import struct

from ..core.config import bounded
from ..envs.types import NUM_ACTIONS, Observation
from .encoders import NETWORKS, VIEWS, CellEncoder, cell_codes, door_colour, window_cells
from .heads import HEADS, ActorCritic, QNetwork



@struct.dataclass
class NetworkSection:
    """Config keys of the network (static: they fix shapes). Algorithms' configs inherit them."""

    view: str = bounded("egocentric", static=True, choices=VIEWS)
    """egocentric (a window around the agent, rotated to its heading) or allocentric (the
    whole map with the agent marked); see jaxrl3m.nets.encoders.cell_codes."""
    window: int = struct.field(pytree_node=False, default=11)
    """Side of the egocentric window (odd)."""
    network: str = bounded("mlp", static=True, choices=NETWORKS)
    """mlp or cnn torso (see jaxrl3m.nets.encoders)."""
    embed_dim: int = bounded(4, static=True, at_least=1)
    """Size of the embedding of each cell's joint (tag, colour, state, agent) code."""
    hidden: tuple[int, ...] = struct.field(pytree_node=False, default=(64, 64))
    """Widths of the dense layers."""
    channels: int = bounded(16, static=True, at_least=1)
    """Channels of the cnn torso's convolutions."""
    relative_colours: bool = struct.field(pytree_node=False, default=True)
    """Code colours relative to the door's colour (see jaxrl3m.nets.encoders)."""

    def check_network(self, bad) -> None:
        """Calls `bad(key, why)` for the first invalid network key (besides the bounds of
        `core.config.check_keys`, which the algorithm's `check` applies to every key)."""
        if self.window < 3 or self.window % 2 == 0:
            bad("window", f"must be odd and at least 3, got {self.window}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            bad("hidden", f"must be a non-empty list of positive widths, got {self.hidden}")


NETWORK_KEYS = tuple(f.name for f in dataclasses.fields(NetworkSection))
"""Keys a source policy must share with the run that uses it."""


@dataclasses.dataclass(frozen=True)
class Network:
    """A head on the cell encoder, with the observation encoding it expects."""

    head: str = "actor_critic"
    view: str = "egocentric"
    window: int = 11
    network: str = "mlp"
    embed_dim: int = 4
    hidden: tuple[int, ...] = (64, 64)
    channels: int = 16
    relative_colours: bool = True
    num_actions: int = NUM_ACTIONS

    @classmethod
    def from_config(cls, config: NetworkSection, head: str = "actor_critic",
                    num_actions: int = NUM_ACTIONS) -> "Network":
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid: {', '.join(HEADS)}")
        return cls(head, **{k: getattr(config, k) for k in NETWORK_KEYS},
                   num_actions=num_actions)._fix()

    def _fix(self) -> "Network":
        return dataclasses.replace(self, hidden=tuple(int(h) for h in self.hidden))

    @property
    def module(self):
        return HEADS[self.head](network=self.network, embed_dim=self.embed_dim,
                               hidden=tuple(self.hidden), channels=self.channels,
                               num_actions=self.num_actions)

    def encode(self, obs: Observation) -> tuple[jax.Array, jax.Array]:
        """The network's input codes for a batch of observations. They are materialised once
        (an optimisation barrier): a rollout both embeds and keeps them, and XLA would otherwise
        fuse the window's gather into each consumer and compute it twice."""
        return jax.lax.optimization_barrier(
            cell_codes(obs, self.view, self.window, self.relative_colours))

    def init(self, key: jax.Array, obs: Observation) -> Any:
        """Fresh parameters (`obs`: a batch, one observation is enough)."""
        return self.module.init(key, *self.encode(obs))

    def apply(self, params: Any, obs: Observation):
        """The head's outputs for a batch of observations."""
        return self.module.apply(params, *self.encode(obs))

    def apply_codes(self, params: Any, cells: jax.Array, carried: jax.Array):
        """The head's outputs from precomputed codes (`encode`)."""
        return self.module.apply(params, cells, carried)

    def logits(self, params: Any, obs: Observation) -> jax.Array:
        """`f32[N, A]`: the policy's logits (actor-critic) or the action values (Q head)."""
        out = self.apply(params, obs)
        return out[0] if self.head == "actor_critic" else out


__all__ = ["ActorCritic", "CellEncoder", "HEADS", "NETWORKS", "NETWORK_KEYS", "Network",
           "NetworkSection", "QNetwork", "VIEWS", "cell_codes", "door_colour", "window_cells"]
