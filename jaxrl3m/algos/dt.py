"""Decision Transformer and LaMo (Shi et al., ICLR 2024): offline RL with a sequence model whose
transformer can start from a pre-trained language model.

    algo = algos.make("dt", DTConfig(task="DoorKey", transformer="pretrained", layers=2))
    frozen = algo.frozen()                 # the base model's frozen weights and the text rows
    data, _ = algo.prepare(dataset)        # the dataset on the device (codes, returns-to-go)
    state, metrics = jax.jit(algo.train)(key, Inputs(frozen=frozen, data=data))

One model, every variant an option (registered `algo: dt`; presets `lamo`, `lamo-random`, `dt`):

- `transformer`: `pretrained` (the project's flax decoder, `jaxrl3m.llm.decoder`, with the
  weights of `model`, SmolLM2-135M-Instruct by default), `random` (the same architecture with
  random weights drawn from `base_seed`: LaMo's decisive control) or `scratch` (a small decoder
  of `scratch_dim`/`scratch_layers`/`scratch_heads` from the same code). `layers`: use only the
  first L layers (0: all).
- `tuning`: `lora` (adapters of rank `lora_rank`, `lora_alpha`, `lora_dropout` on
  `lora_targets`; the base frozen), `full` (every transformer weight trains) or `frozen` (no
  adapters, the base frozen). The new embeddings and the action head always train.
- `embedding`: `mlp` (LaMo's: `Linear, GELU, Linear` plus the first layer's output) or `linear`.
- `lm_coef`: lambda of `L = L_DT + lambda L_LM`, the next-token loss on Python's reference
  documentation (`jaxrl3m.llm.corpus`) through the base model's frozen token embeddings and
  head, `text_batch` rows of `text_len` tokens per RL batch; 0 turns it off.

Tokens per step: return-to-go, state (the project's cell encoder, `jaxrl3m.nets`, then the token
embedding), action (one-hot, then the token embedding); a learned timestep embedding is added to
each; the `3K` tokens of a context of `K` steps are LayerNormed and enter the decoder as
embeddings. Rotary positions stay: the token at index `i` of the window has position `i`; RoPE
makes attention depend on position differences only, so a window's position offset is
irrelevant and absolute time enters through the timestep embedding, as in DT. The action head
(`Dense, GELU, Dense` over the 7 actions, cross-entropy) reads the hidden state of each state
token.

Where the parameters live: the state holds only what trains (embeddings, head, and the adapters;
`tuning=full` keeps a delta added to the frozen weights, initialised to zero, so the arithmetic
is that of fine-tuning the weights themselves). The frozen base model is an input shared by all
seeds (`DTFrozen`), never copied per seed or into checkpoints; its sha256 is in the state and a
resumed run or an evaluation refuses another base model. AdamW (lr `lr`, weight decay
`weight_decay`) after global-norm clipping, with a linear warm-up over `warmup_steps`.

Evaluation: return-conditioned rollouts in the JAX environments (held-out layouts), the target
return-to-go being the `target_quantile` quantile of the training episodes' returns (or
`target_return`), lowered by each reward; the policy is recurrent (`jaxrl3m.core.collector`
memory): it keeps the last K steps and recomputes the window each step, exactly as training saw
windows (a key/value cache of a sliding window is not exact beyond one layer).

The flax modules are in `jaxrl3m.nets.sequence`, the data on the device in
`jaxrl3m.offline.arrays`, model files in `jaxrl3m.llm.loading`; what stays here (about 500
lines, over the ~450 of the other modules) is one algorithm: its 30 keys and their checks, the
frozen/trained split of the parameters, the recurrent evaluation policy and the update.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct, traverse_util

from ..core.config import ConfigError, bounded
from ..envs.types import Observation
from ..llm.decoder import LORA_TARGETS, Decoder, DecoderConfig, truncate
from ..nets import Network, NetworkSection
from ..nets.sequence import DecisionTransformer
from ..offline.arrays import DTData, episode_arrays, offline_data
from .base import (Algorithm, GradientSection, Inputs, TaskSection, as_inputs, check_sections,
                   episode_free_metrics, register)

static = dict(pytree_node=False)
TRANSFORMERS = ("pretrained", "random", "scratch")
TUNINGS = ("lora", "full", "frozen")
EMBEDDINGS = ("mlp", "linear")


@struct.dataclass
class DTConfig(GradientSection, NetworkSection, TaskSection):
    """The Decision Transformer's and LaMo's keys (defaults: LaMo's code where it fits)."""

    transformer: str = bounded("pretrained", static=True, choices=TRANSFORMERS)
    """pretrained (the weights of `model`), random (same architecture, random weights) or
    scratch (a small decoder trained from scratch)."""
    model: str = struct.field(**static, default="smollm2")
    """The language model (alias, .gguf file or safetensors folder): its weights (pretrained),
    its shapes (random) and its tokenizer (the language loss)."""
    layers: int = bounded(0, static=True, at_least=0, why="0: all layers")
    """Use only the first L decoder layers (0: all)."""
    tuning: str = bounded("lora", static=True, choices=TUNINGS)
    """lora (adapters only), full (every transformer weight) or frozen (none)."""
    lora_rank: int = bounded(16, static=True, at_least=1)
    lora_alpha: float = bounded(32.0, static=True, within="positive")
    lora_dropout: float = bounded(0.1, static=True, within="[0, 1)")
    lora_targets: str = struct.field(**static, default="q,k,v")
    """Comma-separated layers with adapters, of q, k, v, o, gate, up, down."""
    embedding: str = bounded("mlp", static=True, choices=EMBEDDINGS)
    """mlp (LaMo's non-linear token embeddings) or linear."""
    context: int = bounded(20, static=True, at_least=1)
    """K: steps per context window (3K tokens)."""
    scratch_dim: int = bounded(128, static=True, at_least=1)
    scratch_layers: int = bounded(3, static=True, at_least=1)
    scratch_heads: int = bounded(4, static=True, at_least=1)
    base_seed: int = struct.field(**static, default=0)
    """Seed of the random weights (transformer=random or scratch)."""
    batch_size: int = bounded(64, static=True, at_least=1)
    """Context windows per gradient step (GradientSection's key, the DT's default)."""
    lm_coef: float = bounded(0.1, static=True, within="non-negative")
    """lambda of the language loss (0: off)."""
    text_batch: int = bounded(4, static=True, at_least=1)
    """Text rows per gradient step."""
    text_len: int = bounded(64, static=True, at_least=2)
    """Tokens per text row."""
    warmup_steps: int = bounded(2500, static=True, within="non-negative")
    dropout: float = bounded(0.1, static=True, within="[0, 1)")
    """Dropout on the token embeddings (training only)."""
    lr: float = bounded(1e-4, within="positive")
    weight_decay: float = bounded(1e-5, within="non-negative")
    max_grad_norm: float = bounded(0.25, within="positive")
    target_quantile: float = bounded(0.9, within="[0, 1]")
    """Evaluation's target return: this quantile of the training episodes' returns."""
    target_return: float = bounded(0.0, within="non-negative")
    """A fixed target return instead (> 0)."""

    @property
    def adapters(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())

    def check(self) -> "DTConfig":
        bad = check_sections(self)
        if self.context > self.horizon:
            bad("context", f"{self.context} steps is longer than an episode (max_steps = "
                           f"{self.horizon}); use context <= {self.horizon}")
        unknown = [t for t in self.adapters if t not in LORA_TARGETS]
        if not self.adapters or unknown:
            bad("lora_targets", f"{self.lora_targets!r}: give a comma-separated list of "
                                f"{', '.join(LORA_TARGETS)}")
        if self.transformer == "scratch" and self.lm_coef > 0:
            bad("lm_coef", "transformer=scratch has no language model to keep: set lm_coef=0")
        return self




# ---------------------------------------------------------------------------------------------
# The base model (frozen) and the text
# ---------------------------------------------------------------------------------------------
class DTFrozen(struct.PyTreeNode):
    """What every seed shares and nothing trains: the base transformer's weights and the text."""

    transformer: Any  # the decoder's params (no outer "params" key), first L layers
    text_train: jax.Array  # i32[n, text_len]
    text_heldout: jax.Array  # i32[m, text_len]
    sha: jax.Array  # u32[8]: sha256 of the base model (its file, or its random seed and shapes)


def digest(text: str) -> np.ndarray:
    """`u32[8]` of a hex sha256 (or of any string's sha256)."""
    h = text if len(text) == 64 and all(c in "0123456789abcdef" for c in text) else \
        hashlib.sha256(text.encode()).hexdigest()
    return np.frombuffer(bytes.fromhex(h), ">u4").astype(np.uint32)


def base_model(c: DTConfig) -> tuple[DecoderConfig, Any, Any, str, dict]:
    """`(decoder config with adapters, frozen params or None, tokenizer or None, sha256, info)`
    of a config's transformer (params are built by `frozen`; here only shapes when possible)."""
    adapters = dict(lora_rank=c.lora_rank if c.tuning == "lora" else 0,
                    lora_alpha=float(c.lora_alpha), lora_dropout=float(c.lora_dropout),
                    lora_targets=c.adapters)
    if c.transformer == "scratch":
        cfg = DecoderConfig(vocab_size=1, dim=c.scratch_dim, n_layers=c.scratch_layers,
                            n_heads=c.scratch_heads, n_kv_heads=c.scratch_heads,
                            ffn_dim=4 * c.scratch_dim)
        return dataclasses.replace(cfg, **adapters), None, None, "", {"transformer": "scratch"}
    from ..llm.loading import load_model_cached
    from ..llm.model import ModelError
    try:
        m = load_model_cached(c.model)
    except ModelError as e:
        raise ConfigError(f"config key 'model': {e}") from None
    if m.config.context_length and 3 * c.context > m.config.context_length:
        raise ConfigError(f"config key 'context': {c.context} steps are {3 * c.context} tokens, "
                          f"more than {m.name} was trained for ({m.config.context_length}); "
                          f"use context <= {m.config.context_length // 3}")
    layers = c.layers or m.config.n_layers
    if layers > m.config.n_layers:
        raise ConfigError(f"config key 'layers': {c.model} has {m.config.n_layers} layers, "
                          f"{layers} asked for")
    params, cfg = truncate(m.params["params"], m.config, layers)
    info = {"transformer": c.transformer, "model": m.name, "model_sha256": m.sha256,
            "layers": layers, "of_layers": m.config.n_layers}
    return dataclasses.replace(cfg, **adapters), params, m.tokenizer, m.sha256, info


# ---------------------------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------------------------
class DTState(struct.PyTreeNode):
    params: Any  # what trains: {"model": ..., "transformer": adapters | delta | {}}
    opt_state: Any
    key: jax.Array
    update: jax.Array  # i32[]
    sha: jax.Array  # u32[8]: the base model these parameters belong to


METRICS = ("env_steps", "episodes", "return", "success", "length", "loss", "dt_loss",
           "accuracy", "lm_loss", "lm_heldout")


class Memory(struct.PyTreeNode):
    """The evaluation policy's last K steps per environment (`[N, K]`, newest last)."""

    rtg: jax.Array
    cells: jax.Array
    carried: jax.Array
    action: jax.Array
    timestep: jax.Array
    valid: jax.Array
    to_go: jax.Array  # f32[N]: the current return-to-go
    t: jax.Array  # i32[N]: the current timestep


@dataclasses.dataclass(frozen=True)
class DTPolicy:
    """The recurrent evaluation policy (`params = (trained params, frozen, target return)`)."""

    algo: "DT"
    greedy: bool = True

    def initial_memory(self, params: Any, obs: Observation) -> Memory:
        n = obs.agent_dir.shape[0]
        K = self.algo.config.context
        cells, carried = self.algo.network.encode(obs)
        z = lambda dt, *s: jnp.zeros((n, K, *s), dt)  # noqa: E731
        return Memory(rtg=z(jnp.float32), cells=z(jnp.int32, cells.shape[-1]),
                      carried=z(jnp.int32), action=z(jnp.int32), timestep=z(jnp.int32),
                      valid=z(bool), to_go=jnp.full((n,), params[2], jnp.float32),
                      t=jnp.zeros((n,), jnp.int32))

    def __call__(self, params: Any, obs: Observation, key: jax.Array, memory: Memory):
        trained, frozen, _ = params
        cells, carried = self.algo.network.encode(obs)
        push = lambda buf, x: jnp.concatenate([buf[:, 1:], x[:, None]], axis=1)  # noqa: E731
        m = memory.replace(rtg=push(memory.rtg, memory.to_go), cells=push(memory.cells, cells),
                           carried=push(memory.carried, carried),
                           action=push(memory.action, jnp.zeros_like(memory.t)),
                           timestep=push(memory.timestep, memory.t),
                           valid=push(memory.valid, jnp.ones_like(memory.t, bool)))
        logits = self.algo.apply(trained, frozen, m.rtg, m.cells, m.carried, m.action,
                                 m.timestep, m.valid)[:, -1]
        action = jnp.argmax(logits, -1) if self.greedy else jax.random.categorical(key, logits)
        action = action.astype(jnp.int32)
        return action, None, m.replace(action=m.action.at[:, -1].set(action))

    def end_step(self, params: Any, memory: Memory, reward: jax.Array, done: jax.Array
                 ) -> Memory:
        """After the environments stepped: lower the return-to-go; a new episode starts empty."""
        keep = lambda x: jnp.where(done.reshape(-1, *[1] * (x.ndim - 1)), jnp.zeros_like(x), x)  # noqa: E731,E501
        return memory.replace(
            rtg=keep(memory.rtg), cells=keep(memory.cells), carried=keep(memory.carried),
            action=keep(memory.action), timestep=keep(memory.timestep),
            valid=keep(memory.valid),
            to_go=jnp.where(done, params[2], memory.to_go - reward),
            t=jnp.where(done, 0, memory.t + 1))


@dataclasses.dataclass(frozen=True)
class DT(Algorithm):
    """Pure functions of one configuration's shapes (`make_dt`)."""

    decoder: DecoderConfig | None = None

    head: ClassVar[str] = "q"
    metrics: ClassVar[tuple[str, ...]] = METRICS
    offline: ClassVar[bool] = True
    progress_unit: ClassVar[str] = " gradient steps"
    evaluation_axes: ClassVar[Any] = (0, None, None)
    evaluation_needs_data: ClassVar[bool] = True

    @property
    def network(self) -> Network:
        """The cell encoding of observations (the codes the state encoder reads)."""
        return Network.from_config(self.config, "q", self.env.num_actions)

    def module(self, deterministic: bool = True) -> DecisionTransformer:
        c = self.config
        return DecisionTransformer(self.decoder, self.env.num_actions, c.horizon, c.embedding,
                                   c.network, c.embed_dim, tuple(int(h) for h in c.hidden),
                                   c.channels, float(c.dropout), deterministic)

    # -- parameters: what trains, what is frozen ------------------------------------------
    def full_params(self, trained: Any, frozen: DTFrozen) -> dict:
        """The module's params from the trained part and the frozen base."""
        flat = traverse_util.flatten_dict(frozen.transformer)
        for k, v in traverse_util.flatten_dict(trained["transformer"]).items():
            # full: a delta on every weight the model uses; lora: the adapters beside them
            flat[k] = flat[k] + v if self.config.tuning == "full" else v
        transformer = traverse_util.unflatten_dict(flat)
        return {"params": {**trained["model"], "transformer": transformer}}

    def apply(self, trained, frozen, rtg, cells, carried, actions, timesteps, valid,
              rng: jax.Array | None = None):
        module = self.module(deterministic=rng is None)
        return module.apply(self.full_params(trained, frozen), rtg, cells, carried, actions,
                            timesteps, valid, rngs=None if rng is None else {"dropout": rng})

    def frozen(self) -> DTFrozen:
        """The frozen base transformer (loaded, or drawn from `base_seed`) and the text rows."""
        c = self.config
        cfg, params, tokenizer, sha, _ = base_model(c)
        if c.transformer != "pretrained":
            plain = dataclasses.replace(cfg, lora_rank=0)
            params = Decoder(plain).init(jax.random.key(c.base_seed),
                                         jnp.zeros((1, 2), jnp.int32))["params"]
            sha = hashlib.sha256(repr((c.transformer, c.base_seed, plain)).encode()).hexdigest()
        if c.lm_coef > 0:
            from ..llm.corpus import token_rows
            train, held, _ = token_rows(tokenizer, c.text_len)
        else:
            train = held = np.zeros((1, c.text_len), np.int32)
        return DTFrozen(transformer=jax.tree.map(jnp.asarray, params),
                        text_train=jnp.asarray(train), text_heldout=jnp.asarray(held),
                        sha=jnp.asarray(digest(sha)))

    def split(self, full: dict) -> dict:
        """The trained part of a module's freshly initialised params."""
        p = dict(full["params"])
        transformer = p.pop("transformer")
        if self.config.tuning == "full":
            t = jax.tree.map(jnp.zeros_like, transformer)
        elif self.config.tuning == "lora":
            flat = traverse_util.flatten_dict(transformer)
            t = traverse_util.unflatten_dict({k: v for k, v in flat.items()
                                              if k[-1] in ("lora_a", "lora_b")})
        else:
            t = {}
        return {"model": p, "transformer": t}

    # -- the interface ------------------------------------------------------------------------
    def optimizer(self, c: DTConfig) -> optax.GradientTransformation:
        warm = max(int(c.warmup_steps), 1)
        rate = lambda n: c.lr * jnp.minimum(1.0, (n + 1) / warm)  # noqa: E731
        return optax.chain(optax.clip_by_global_norm(c.max_grad_norm),
                           optax.adamw(rate, weight_decay=c.weight_decay))

    def init(self, key: jax.Array, params: Any = None, config: DTConfig | None = None
             ) -> DTState:
        c = self.hp(config)
        k_params, key = jax.random.split(key)
        if params is None:
            K = c.context
            obs = self.env.reset(jax.random.key(0)).obs
            cells, carried = self.network.encode(jax.tree.map(lambda x: x[None], obs))
            zf, zi = jnp.zeros((1, K)), jnp.zeros((1, K), jnp.int32)
            full = self.module().init(k_params, zf, jnp.repeat(cells[:, None], K, 1),
                                      jnp.repeat(carried[:, None], K, 1), zi, zi,
                                      jnp.ones((1, K), bool))
            params = self.split(full)
        return DTState(params=params, opt_state=self.optimizer(c).init(params), key=key,
                       update=jnp.zeros((), jnp.int32), sha=jnp.zeros((8,), jnp.uint32))

    def windows(self, data: DTData, start: jax.Array) -> tuple:
        """The K-step windows starting at transitions `start [B]`, cut at the episode's end."""
        K = self.config.context
        steps = start[:, None] + jnp.arange(K)
        valid = steps < data.episode_end[start][:, None]
        steps = jnp.where(valid, steps, start[:, None])
        o = data.obs_index[steps]
        return (data.rtg[steps], data.cells[o].astype(jnp.int32),
                data.carried[o].astype(jnp.int32), data.action[steps], data.timestep[steps],
                valid)

    def text_loss(self, trained, frozen, tokens) -> jax.Array:
        logits = self.module().apply(self.full_params(trained, frozen), tokens,
                                     method=DecisionTransformer.text_logits)
        logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32))
        return -jnp.take_along_axis(logp, tokens[:, 1:, None], -1).mean()

    def loss(self, trained: Any, frozen: DTFrozen, data: DTData, key: jax.Array,
             c: DTConfig) -> tuple[jax.Array, dict]:
        """`L_DT + lm_coef * L_LM` on one batch of windows and one of text rows (pure)."""
        k_idx, k_drop, k_text = jax.random.split(key, 3)
        start = jax.random.randint(k_idx, (c.batch_size,), 0, data.size)
        rtg, cells, carried, actions, times, valid = self.windows(data, start)
        logits = self.apply(trained, frozen, rtg, cells, carried, actions, times, valid,
                            rng=k_drop)
        logp = jax.nn.log_softmax(logits)
        ce = -jnp.take_along_axis(logp, actions[..., None], -1)[..., 0]
        w = valid.astype(jnp.float32)
        dt_loss = (ce * w).sum() / w.sum()
        accuracy = ((jnp.argmax(logits, -1) == actions) * w).sum() / w.sum()
        stats = {"dt_loss": dt_loss, "accuracy": accuracy}
        if c.lm_coef > 0:
            rows = jax.random.randint(k_text, (c.text_batch,), 0, frozen.text_train.shape[0])
            lm = self.text_loss(trained, frozen, frozen.text_train[rows])
            loss = dt_loss + c.lm_coef * lm
        else:
            lm, loss = jnp.float32(jnp.nan), dt_loss
        return loss, {**stats, "lm_loss": lm, "loss": loss}

    def update(self, state: DTState, inputs: Inputs, num_updates: int = 1,
               config: DTConfig | None = None) -> tuple[DTState, dict]:
        """`num_updates` updates of `steps_per_update` gradient steps; `inputs`:
        `Inputs(frozen=DTFrozen, data=DTData)`."""
        c = self.hp(config)
        inputs = as_inputs(inputs)
        frozen, data = inputs.frozen, inputs.data
        if not isinstance(frozen, DTFrozen) or not isinstance(data, DTData):
            raise ConfigError("a Decision Transformer trains from Inputs(frozen=algo.frozen(), "
                              "data=algo.prepare(dataset)[0])")
        tx = self.optimizer(c)

        def grad_step(carry, key):
            params, opt_state = carry
            grads, stats = jax.grad(self.loss, has_aux=True)(params, frozen, data, key, c)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        def one_update(state: DTState, _):
            key, k_steps, k_held = jax.random.split(state.key, 3)
            (params, opt_state), stats = jax.lax.scan(
                grad_step, (state.params, state.opt_state),
                jax.random.split(k_steps, c.steps_per_update))
            metrics = {k: v.mean() for k, v in stats.items()}
            if c.lm_coef > 0:  # held-out text, one batch per update
                rows = jax.random.randint(k_held, (c.text_batch,), 0,
                                          frozen.text_heldout.shape[0])
                metrics["lm_heldout"] = self.text_loss(params, frozen, frozen.text_heldout[rows])
            else:
                metrics["lm_heldout"] = jnp.float32(jnp.nan)
            metrics = episode_free_metrics(metrics, state.update, c.steps_per_update)
            state = DTState(params=params, opt_state=opt_state, key=key,
                            update=state.update + 1, sha=frozen.sha)
            return state, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, state, None, num_updates)

    def act(self, params: Any, obs: Observation) -> jax.Array:
        raise ConfigError("a Decision Transformer acts from a context of past steps: evaluate it "
                          "through its policy (jaxrl3m.core.evaluation.evaluate_algo)")

    def policy(self, greedy: bool = True) -> DTPolicy:
        return DTPolicy(self, greedy)

    def evaluation_params(self, params: Any, inputs: Any = None) -> tuple:
        inputs = as_inputs(inputs)
        frozen, data = inputs.frozen, inputs.data
        c = self.config
        if float(c.target_return) > 0:
            target = jnp.float32(c.target_return)
        elif data is None:
            raise ConfigError("evaluating a Decision Transformer needs its target return: give "
                              "target_return=R (the dataset's is used during training runs)")
        else:
            target = data.target
        return (params, frozen, target)

    # -- the driver's hooks -------------------------------------------------------------------
    def prepare(self, ds: Any, teacher: Any = None) -> tuple[DTData, dict]:
        """A dataset (`jaxrl3m.offline.dataset.Dataset`) on the device, and what it was."""
        base = offline_data(ds, self.network, None)
        ep = episode_arrays(ds)
        returns = ds["episode_return"].astype(np.float64)
        target = float(np.quantile(returns, float(self.config.target_quantile)))
        data = DTData(cells=base.cells, carried=base.carried, obs_index=base.obs_index,
                      action=base.action, rtg=jnp.asarray(ep["rtg"]),
                      timestep=jnp.asarray(ep["timestep"]),
                      episode_end=jnp.asarray(ep["episode_end"]), size=base.size,
                      target=jnp.float32(target))
        return data, {"target_return": target}

    def check_restored(self, state: DTState, frozen: DTFrozen) -> None:
        """A checkpoint's parameters belong to one base model: refuse another."""
        have = np.asarray(jax.device_get(state.sha)).reshape(-1, 8)
        want = np.asarray(jax.device_get(frozen.sha))
        if have.any() and not (have == want).all():
            raise ConfigError(
                "this checkpoint was trained on another base model (sha256 "
                f"{have[0].astype('>u4').tobytes().hex()[:16]}..., now "
                f"{want.astype('>u4').tobytes().hex()[:16]}...): set model= (and transformer=, "
                "base_seed=, layers=) to the run's, or start a new run")


def make_dt(config: DTConfig, guided: bool = False, env: Any = None,
            past_policies: tuple[str, ...] = ()) -> DT:
    """A Decision Transformer / LaMo for `config` (checked)."""
    if guided or past_policies:
        raise ConfigError("a Decision Transformer learns from its dataset alone: set "
                          "teacher=none (no prior, no source)")
    if env is not None:
        raise ConfigError("offline algorithms play the task's own held-out layouts")
    c = config.check()
    cfg, *_ = base_model(c)
    return DT(c, guided=False, decoder=cfg)


register("dt", DTConfig, make_dt, "Decision Transformer; with a pre-trained language model "
         "(transformer=pretrained, LoRA, language loss) LaMo")
