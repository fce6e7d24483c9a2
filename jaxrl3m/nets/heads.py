"""Heads on the shared encoder (`CellEncoder`): PPO's actor-critic, a Q head.

Each is a flax module whose `encoder` submodule holds the embeddings and the torso, so parameter
trees of different heads share the encoder's names (`params["encoder"]`).
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from ..envs.types import NUM_ACTIONS
from .encoders import CellEncoder


class _Head(nn.Module):
    """The encoder's settings, shared by every head."""

    network: str = "mlp"
    embed_dim: int = 4
    hidden: Sequence[int] = (64, 64)
    channels: int = 16
    num_actions: int = NUM_ACTIONS

    def encoder(self) -> CellEncoder:
        return CellEncoder(self.network, self.embed_dim, self.hidden, self.channels,
                           name="encoder")


class ActorCritic(_Head):
    """`(logits f32[..., A], value f32[...])`: two linear heads on the encoder's features."""

    @nn.compact
    def __call__(self, cells: jax.Array, carried: jax.Array) -> tuple[jax.Array, jax.Array]:
        x = self.encoder()(cells, carried)
        logits = nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01),
                          name="policy")(x)
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), name="value")(x)
        return logits, value[..., 0]


class QNetwork(_Head):
    """`f32[..., A]`: action values, one linear head on the encoder's features."""

    @nn.compact
    def __call__(self, cells: jax.Array, carried: jax.Array) -> jax.Array:
        x = self.encoder()(cells, carried)
        # Small initial values: rewards are at most 1, and large random initial Q-values are
        # bootstrapped through the max into overestimates (plain DQN reached Q ~ 2.5 at once).
        return nn.Dense(self.num_actions, kernel_init=nn.initializers.orthogonal(0.01),
                        name="q")(x)


HEADS = {"actor_critic": ActorCritic, "q": QNetwork}
