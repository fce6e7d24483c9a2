"""A Llama-family decoder (Llama, SmolLM2, Qwen2) in flax, built for batched scoring.

`Decoder(config)` maps token ids to hidden states. Beyond the usual causal call it takes:
- explicit `positions` (RoPE), so right-padded rows and continuations of a cached context work;
- a `self_mask [B, T, T]`, so one row can hold several independent continuations (block-diagonal);
- `context`: cached key/value segments to attend to, each `(k, v, mask)` with `k, v
  [layers, b, S, kv_heads, head_dim]` and `mask [b, S]`, where `b` is the batch or 1 (one context
  shared by every row without copying it).
It returns the hidden states and the new tokens' keys and values (to cache them). `logits(params,
hidden)` applies the output head. Layers run under `nn.scan`, so compile time does not grow with
depth.

The same module serves the Decision Transformer (`jaxrl3m.algos.dt`, LaMo):
- `embeddings [B, T, dim]` replace the token lookup (`tokens` may then be None);
- LoRA adapters (`DecoderConfig.lora_rank > 0`) on the Dense layers named in `lora_targets`
  (`q, k, v, o, gate, up, down`): `y = x W + (alpha / rank) dropout(x) A B`, `B` zero at init, so
  a fresh adapter leaves the model's outputs unchanged. The base kernels keep their names
  (`kernel`, `bias`), the adapters add `lora_a`, `lora_b` beside them, so a checkpoint's params
  load as they are and an optax mask on the leaf names selects what trains;
- `truncate(params, config, n)` keeps the first `n` layers (CPU budgets).
Dropout runs only with `deterministic=False` and a `dropout` rng.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn_dim: int
    rope_theta: float = 10000.0
    rms_eps: float = 1e-5
    tie_embeddings: bool = True
    attention_bias: bool = False  # Qwen2 has biases on q, k and v
    head_dim: int | None = None
    context_length: int = 0  # positions the model was trained for (0: not recorded)
    lora_rank: int = 0  # 0: no adapters
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q", "k", "v")

    @property
    def hd(self) -> int:
        return self.head_dim or self.dim // self.n_heads


class RMSNorm(nn.Module):
    eps: float

    @nn.compact
    def __call__(self, x):
        scale = self.param("scale", nn.initializers.ones, (x.shape[-1],))
        x32 = x.astype(jnp.float32)
        return x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps) * scale


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
    """Rotary embedding in the Hugging Face layout (halves rotated): `x [B, T, H, hd]`."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
    ang = positions[..., None].astype(jnp.float32) * inv  # [B, T, hd/2]
    cos = jnp.concatenate([jnp.cos(ang)] * 2, -1)[:, :, None, :]
    sin = jnp.concatenate([jnp.sin(ang)] * 2, -1)[:, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos + jnp.concatenate([-x2, x1], -1) * sin


def _scores(q, k):
    """`q [B, T, H, hd]`, `k [b, S, H, hd]` (b = B or 1) -> `[B, H, T, S]`."""
    if k.shape[0] == 1 and q.shape[0] != 1:
        return jnp.einsum("bthd,shd->bhts", q, k[0])
    return jnp.einsum("bthd,bshd->bhts", q, k)


def _mix(p, v):
    if v.shape[0] == 1 and p.shape[0] != 1:
        return jnp.einsum("bhts,shd->bthd", p, v[0])
    return jnp.einsum("bhts,bshd->bthd", p, v)


LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


class LoRADense(nn.Module):
    """`nn.Dense` (same parameter names) plus a low-rank adapter `(alpha / rank) x A B`."""

    features: int
    use_bias: bool
    rank: int
    alpha: float
    dropout: float
    deterministic: bool

    @nn.compact
    def __call__(self, x):
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (x.shape[-1], self.features))
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", nn.initializers.zeros, (self.features,))
        a = self.param("lora_a", nn.initializers.he_uniform(), (x.shape[-1], self.rank))
        b = self.param("lora_b", nn.initializers.zeros, (self.rank, self.features))
        h = nn.Dropout(self.dropout, deterministic=self.deterministic)(x)
        return y + (self.alpha / self.rank) * ((h @ a) @ b)


def _dense(c: DecoderConfig, deterministic: bool):
    """`dense(features, bias, name)`: a LoRA layer where the config asks for one, else nn.Dense."""
    def dense(n, bias, name):
        if c.lora_rank > 0 and name in c.lora_targets:
            return LoRADense(n, bias, c.lora_rank, c.lora_alpha, c.lora_dropout, deterministic,
                             name=name)
        return nn.Dense(n, use_bias=bias, name=name)
    return dense


class Attention(nn.Module):
    config: DecoderConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, x, positions, self_mask, context, context_masks):
        c = self.config
        dense = _dense(c, self.deterministic)
        B, T, _ = x.shape
        q = dense(c.n_heads * c.hd, c.attention_bias, "q")(x).reshape(B, T, c.n_heads, c.hd)
        k = dense(c.n_kv_heads * c.hd, c.attention_bias, "k")(x).reshape(B, T, c.n_kv_heads, c.hd)
        v = dense(c.n_kv_heads * c.hd, c.attention_bias, "v")(x).reshape(B, T, c.n_kv_heads, c.hd)
        q, k = rope(q, positions, c.rope_theta), rope(k, positions, c.rope_theta)
        rep = c.n_heads // c.n_kv_heads
        expand = lambda a: jnp.repeat(a, rep, axis=2)  # noqa: E731  (grouped-query attention)
        q = q / jnp.sqrt(jnp.float32(c.hd))
        neg = jnp.float32(-1e30)
        parts, values = [], []
        for (ck, cv), cmask in zip(context, context_masks):
            s = _scores(q, expand(ck))
            parts.append(jnp.where(cmask[:, None, None, :], s, neg))
            values.append(expand(cv))
        parts.append(jnp.where(self_mask[:, None], _scores(q, expand(k)), neg))
        values.append(expand(v))
        probs = jax.nn.softmax(jnp.concatenate(parts, axis=-1), axis=-1)
        out, start = 0.0, 0
        for val in values:
            n = val.shape[1]
            out = out + _mix(probs[..., start: start + n], val)
            start += n
        out = dense(c.dim, False, "o")(out.reshape(B, T, c.n_heads * c.hd))
        return out, (k, v)


class Block(nn.Module):
    config: DecoderConfig
    deterministic: bool = True

    @nn.compact
    def __call__(self, carry, context):
        x, positions, self_mask, context_masks = carry
        c = self.config
        dense = _dense(c, self.deterministic)
        h, kv = Attention(c, self.deterministic, name="attn")(
            RMSNorm(c.rms_eps, name="attn_norm")(x), positions, self_mask, context,
            context_masks)
        x = x + h
        y = RMSNorm(c.rms_eps, name="ffn_norm")(x)
        gate = dense(c.ffn_dim, False, "gate")(y)
        up = dense(c.ffn_dim, False, "up")(y)
        x = x + dense(c.dim, False, "down")(nn.silu(gate) * up)
        return (x, positions, self_mask, context_masks), kv


class Decoder(nn.Module):
    config: DecoderConfig
    deterministic: bool = True  # False: LoRA dropout on (needs a "dropout" rng)

    def setup(self):
        c = self.config
        self.embed = nn.Embed(c.vocab_size, c.dim, name="embed")
        self.layers = nn.scan(Block, variable_axes={"params": 0},
                              split_rngs={"params": True, "dropout": True},
                              in_axes=0, length=c.n_layers)(c, self.deterministic, name="layers")
        self.final_norm = RMSNorm(c.rms_eps, name="final_norm")
        if not c.tie_embeddings:
            self.lm_head = nn.Dense(c.vocab_size, use_bias=False, name="lm_head")

    def __call__(self, tokens, positions=None, self_mask=None, context=(), embeddings=None):
        """Hidden states `[B, T, dim]` and the new keys/values `([L, B, T, kvh, hd]) * 2`.

        Defaults: positions `0..T-1`, causal `self_mask`, no context. `embeddings [B, T, dim]`
        replace `embed(tokens)`.
        """
        B, T = (tokens if embeddings is None else embeddings).shape[:2]
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(T), (B, T))
        if self_mask is None:
            self_mask = jnp.broadcast_to(jnp.tril(jnp.ones((T, T), bool)), (B, T, T))
        x = self.embed(tokens) if embeddings is None else embeddings
        kvs = tuple((k, v) for k, v, _ in context)  # scanned over layers
        masks = tuple(m for _, _, m in context)  # the same for every layer
        (x, *_), kv = self.layers((x, positions, self_mask, masks), kvs)
        return self.final_norm(x), kv

    def logits(self, hidden):
        if self.config.tie_embeddings:
            return self.embed.attend(hidden.astype(jnp.float32))
        return self.lm_head(hidden)


def truncate(params: dict, config: DecoderConfig, n_layers: int) -> tuple[dict, DecoderConfig]:
    """The first `n_layers` layers of a decoder (`params` as `Decoder.init` makes them, with or
    without the outer "params" key), and the matching config."""
    if not 1 <= n_layers <= config.n_layers:
        raise ValueError(f"n_layers must be in [1, {config.n_layers}], got {n_layers}")
    inner = params["params"] if "params" in params else params
    inner = {**inner, "layers": jax.tree.map(lambda x: x[:n_layers], inner["layers"])}
    out = {"params": inner} if "params" in params else inner
    return out, dataclasses.replace(config, n_layers=n_layers)
