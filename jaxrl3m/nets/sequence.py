"""The Decision Transformer's flax modules: token embeddings of returns-to-go, states (the cell
encoder's features) and actions, a decoder from `jaxrl3m.llm.decoder` over the interleaved
tokens, and the action head (`jaxrl3m.algos.dt` trains it)."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from ..llm.decoder import Decoder, DecoderConfig
from .encoders import CellEncoder


class TokenEmbedding(nn.Module):
    """`mlp`: `h = Dense(x); h + Dense(gelu(h))` (LaMo's, with the residual from the first
    layer's output); `linear`: `Dense(x)`."""

    dim: int
    kind: str

    @nn.compact
    def __call__(self, x):
        h = nn.Dense(self.dim, name="in")(x)
        if self.kind == "mlp":
            h = h + nn.Dense(self.dim, name="out")(nn.gelu(h))
        return h


class DecisionTransformer(nn.Module):
    """`logits f32[B, K, A]` of the action at each step of a window (see the module docstring)."""

    decoder: DecoderConfig
    num_actions: int
    max_timestep: int
    embedding: str
    network: str
    embed_dim: int
    hidden: tuple[int, ...]
    channels: int
    dropout: float
    deterministic: bool = True

    def setup(self):
        d = self.decoder.dim
        # the same state encoder for both embeddings: the ablation changes the embedding only
        self.state_encoder = CellEncoder(self.network, self.embed_dim, self.hidden, self.channels)
        self.embed_return = TokenEmbedding(d, self.embedding)
        self.embed_state = TokenEmbedding(d, self.embedding)
        self.embed_action = TokenEmbedding(d, self.embedding)
        self.embed_time = nn.Embed(self.max_timestep + 1, d)
        self.norm = nn.LayerNorm()
        self.drop = nn.Dropout(self.dropout)
        self.transformer = Decoder(self.decoder, self.deterministic)
        self.head_hidden = nn.Dense(d)
        self.head_out = nn.Dense(self.num_actions)

    def __call__(self, rtg, cells, carried, actions, timesteps, valid):
        """`rtg f32[B, K]`, `cells i32[B, K, C]`, `carried i32[B, K]`, `actions i32[B, K]`,
        `timesteps i32[B, K]`, `valid bool[B, K]` (padding is masked out of attention)."""
        B, K = rtg.shape
        time = self.embed_time(jnp.clip(timesteps, 0, self.max_timestep))
        r = self.embed_return(rtg[..., None]) + time
        s = self.embed_state(self.state_encoder(cells, carried)) + time
        a = self.embed_action(jax.nn.one_hot(actions, self.num_actions)) + time
        x = jnp.stack([r, s, a], axis=2).reshape(B, 3 * K, -1)
        x = self.drop(self.norm(x), deterministic=self.deterministic)
        ok = jnp.repeat(valid, 3, axis=1)
        mask = jnp.tril(jnp.ones((3 * K, 3 * K), bool))[None] & ok[:, None, :]
        h, _ = self.transformer(None, self_mask=mask, embeddings=x)
        h = h.reshape(B, K, 3, -1)[:, :, 1]  # the state tokens
        return self.head_out(nn.gelu(self.head_hidden(h)))

    def text_logits(self, tokens):
        """The language model's next-token logits for token rows (the language loss)."""
        h, _ = self.transformer(tokens)
        return self.transformer.logits(h)
