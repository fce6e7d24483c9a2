"""A decoder for Llama-family models (Llama, SmolLM2, Qwen2) and Gemma 3, in flax, built for
batched scoring.

Gemma 3 is the same module with options of `DecoderConfig` (`gemma3(...)` sets them all): QK-norm
(`qk_norm`), a second norm after attention and after the MLP (`post_norms`), GeGLU
(`activation="gelu_tanh"`), scaled token embeddings (`embed_scale`), a query scale of its own
(`query_scale`), and interleaved local and global layers (`layer_types`): local layers attend to
the last `sliding_window` positions only and rotate with `rope_local_theta`, global layers attend
to everything and rotate with `rope_theta` (positions divided by `rope_scale`, linear scaling).

`Decoder(config)` maps token ids to hidden states. Beyond the usual causal call it takes:
- explicit `positions` (RoPE), so right-padded rows and continuations of a cached context work;
- a `self_mask [B, T, T]`, so one row can hold several independent continuations (block-diagonal);
- `context`: cached key/value segments to attend to, each `(k, v, mask)` or
  `(k, v, mask, positions)` with `k, v [layers, b, S, kv_heads, head_dim]` and `mask, positions
  [b, S]`, where `b` is the batch or 1 (one context shared by every row without copying it); a
  model with local layers needs the positions (the window is measured in positions).
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
    # --- Gemma 3 (defaults: off, i.e. Llama) ---
    qk_norm: bool = False  # RMSNorm of each head's queries and keys before RoPE
    post_norms: bool = False  # a norm on the attention's and the MLP's outputs too
    activation: str = "silu"  # the gated MLP's: "silu" (SwiGLU) or "gelu_tanh" (GeGLU)
    embed_scale: float = 1.0  # token embeddings times this (Gemma: sqrt(dim))
    query_scale: float | None = None  # scores = q k / this**0.5 (None: head_dim)
    sliding_window: int = 0  # local layers attend to positions q - k < sliding_window
    layer_types: tuple[str, ...] = ()  # per layer "local" or "global"; () = all global
    rope_local_theta: float = 10000.0  # local layers' RoPE base
    rope_scale: float = 1.0  # global layers' linear RoPE scaling factor

    @property
    def hd(self) -> int:
        return self.head_dim or self.dim // self.n_heads

    def local_layers(self) -> tuple[bool, ...]:
        """Per layer, whether it is local (sliding-window attention)."""
        if not self.layer_types:
            return (False,) * self.n_layers
        return tuple(t == "local" for t in self.layer_types)


def gemma3_layer_types(n_layers: int, every: int = 6) -> tuple[str, ...]:
    """Gemma 3's interleaving: five local layers, then a global one."""
    return tuple("global" if (i + 1) % every == 0 else "local" for i in range(n_layers))


def validate(c: DecoderConfig) -> None:
    """A config the decoder can run, or a ValueError naming the field."""
    if c.activation not in ("silu", "gelu_tanh"):
        raise ValueError(f"activation must be 'silu' or 'gelu_tanh', got {c.activation!r}")
    if c.layer_types and (len(c.layer_types) != c.n_layers
                          or set(c.layer_types) - {"local", "global"}):
        raise ValueError(f"layer_types must give 'local' or 'global' for each of the "
                         f"{c.n_layers} layers, got {c.layer_types}")
    if c.n_heads % c.n_kv_heads:
        raise ValueError(f"n_heads ({c.n_heads}) must be a multiple of n_kv_heads "
                         f"({c.n_kv_heads})")


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
    def __call__(self, x, positions, self_mask, context, context_masks, context_positions,
                 local):
        """`local`: a traced bool (this layer's kind; layers run under `nn.scan`)."""
        c = self.config
        dense = _dense(c, self.deterministic)
        B, T, _ = x.shape
        q = dense(c.n_heads * c.hd, c.attention_bias, "q")(x).reshape(B, T, c.n_heads, c.hd)
        k = dense(c.n_kv_heads * c.hd, c.attention_bias, "k")(x).reshape(B, T, c.n_kv_heads, c.hd)
        v = dense(c.n_kv_heads * c.hd, c.attention_bias, "v")(x).reshape(B, T, c.n_kv_heads, c.hd)
        if c.qk_norm:
            q = RMSNorm(c.rms_eps, name="q_norm")(q)
            k = RMSNorm(c.rms_eps, name="k_norm")(k)
        if c.sliding_window > 0 or c.rope_scale != 1.0:
            theta = jnp.where(local, c.rope_local_theta, c.rope_theta)
            scale = jnp.where(local, 1.0, 1.0 / c.rope_scale)
            rotary = lambda a: rope(a, positions * scale, theta)  # noqa: E731
        else:
            rotary = lambda a: rope(a, positions, c.rope_theta)  # noqa: E731
        q, k = rotary(q), rotary(k)
        rep = c.n_heads // c.n_kv_heads
        expand = lambda a: jnp.repeat(a, rep, axis=2)  # noqa: E731  (grouped-query attention)
        q = q / jnp.sqrt(jnp.float32(c.query_scale or c.hd))
        neg = jnp.float32(-1e30)

        def window(mask, key_positions):  # local layers: only the last `sliding_window` keys
            if c.sliding_window <= 0:
                return mask
            near = positions[:, :, None] - key_positions[:, None, :] < c.sliding_window
            return mask & (near | ~local)

        parts, values = [], []
        for (ck, cv), cmask, cpos in zip(context, context_masks, context_positions):
            s = _scores(q, expand(ck))
            m = jnp.broadcast_to(cmask[:, None, :], (B, T, cmask.shape[-1]))
            if c.sliding_window > 0:
                m = window(m, jnp.broadcast_to(cpos, (B, cpos.shape[-1])))
            parts.append(jnp.where(m[:, None], s, neg))
            values.append(expand(cv))
        parts.append(jnp.where(window(self_mask, positions)[:, None], _scores(q, expand(k)), neg))
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
    def __call__(self, carry, xs):
        x, positions, self_mask, context_masks, context_positions = carry
        context, local = xs
        c = self.config
        dense = _dense(c, self.deterministic)
        h, kv = Attention(c, self.deterministic, name="attn")(
            RMSNorm(c.rms_eps, name="attn_norm")(x), positions, self_mask, context,
            context_masks, context_positions, local)
        if c.post_norms:
            h = RMSNorm(c.rms_eps, name="post_attn_norm")(h)
        x = x + h
        y = RMSNorm(c.rms_eps, name="ffn_norm")(x)
        gate = dense(c.ffn_dim, False, "gate")(y)
        up = dense(c.ffn_dim, False, "up")(y)
        act = nn.silu if c.activation == "silu" else lambda g: jax.nn.gelu(g, approximate=True)
        h = dense(c.dim, False, "down")(act(gate) * up)
        if c.post_norms:
            h = RMSNorm(c.rms_eps, name="post_ffn_norm")(h)
        x = x + h
        return (x, positions, self_mask, context_masks, context_positions), kv


class Decoder(nn.Module):
    config: DecoderConfig
    deterministic: bool = True  # False: LoRA dropout on (needs a "dropout" rng)

    def setup(self):
        c = self.config
        validate(c)
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
        c = self.config
        if embeddings is None:
            x = self.embed(tokens)
            if c.embed_scale != 1.0:
                x = x * jnp.asarray(c.embed_scale, x.dtype)
        else:
            x = embeddings
        kvs = tuple((seg[0], seg[1]) for seg in context)  # scanned over layers
        masks = tuple(seg[2] for seg in context)  # the same for every layer
        if c.sliding_window > 0 and any(len(seg) < 4 for seg in context):
            raise ValueError("this model has sliding-window layers: give each context segment "
                             "as (k, v, mask, positions)")
        cpos = tuple(seg[3] if len(seg) > 3 else seg[2] for seg in context)
        local = jnp.asarray(c.local_layers(), bool)
        (x, *_), kv = self.layers((x, positions, self_mask, masks, cpos), (kvs, local))
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
