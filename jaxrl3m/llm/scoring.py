"""Scoring options by the log-probability of their full token sequences, in batched jitted calls.

`score_options(model, prompts, options)` returns `f32[N, K]` with
`log p(option_k tokens | prompt_n)` summed over every token of the option (no first-token
shortcut: "go to the key" and "go to the door" share their first tokens).

How the work is shared:
1. the longest token prefix common to all prompts (system prompt, examples, ...) runs once;
2. the N prompt suffixes run as one batch of right-padded rows attending to the cached prefix;
3. all K options of a prompt sit in one row, each attending to the prefix, its prompt's suffix
   and its own earlier tokens only (a block-diagonal mask), with positions continuing the prompt.
Lengths are padded to multiples of `bucket` so a few shapes are compiled, whatever the texts.
`score_options_sequential` is the one-sequence-at-a-time baseline used by the benchmark.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from .model import Model
from .decoder import Decoder


def _pad_to(n: int, bucket: int) -> int:
    return max(bucket, -(-n // bucket) * bucket)


def encode(model: Model, text: str) -> list[int]:
    return model.tokenizer.encode(text, add_special_tokens=False).ids


@functools.lru_cache(maxsize=None)
def _fns(config):
    dec = Decoder(config)

    @jax.jit
    def prefix_fn(params, tokens):
        _, kv = dec.apply(params, tokens)
        return kv

    def prefix_context(prefix_kv):
        n = prefix_kv[0].shape[2]
        return (prefix_kv[0], prefix_kv[1], jnp.ones((1, n), bool), jnp.arange(n)[None])

    @jax.jit
    def suffix_fn(params, prefix_kv, tokens, positions, self_mask, last):
        h, kv = dec.apply(params, tokens, positions, self_mask,
                          context=(prefix_context(prefix_kv),))
        h_last = jnp.take_along_axis(h, last[:, None, None], axis=1)[:, 0]  # [N, D]
        return kv, jax.nn.log_softmax(dec.apply(params, h_last, method=dec.logits), -1)

    @jax.jit
    def option_fn(params, prefix_kv, suffix_kv, suffix_mask, suffix_pos, tokens, positions,
                  self_mask, pred_pos, targets):
        h, _ = dec.apply(params, tokens, positions, self_mask,
                         context=(prefix_context(prefix_kv),
                                  (suffix_kv[0], suffix_kv[1], suffix_mask, suffix_pos)))
        logp = jax.nn.log_softmax(dec.apply(params, h[:, pred_pos], method=dec.logits), -1)
        return jnp.take_along_axis(logp, targets[None, :, None], axis=-1)[..., 0]  # [N, M]

    @jax.jit
    def full_fn(params, tokens, pred_pos, targets):
        h, _ = dec.apply(params, tokens)
        logp = jax.nn.log_softmax(dec.apply(params, h[:, pred_pos], method=dec.logits), -1)
        return jnp.take_along_axis(logp, targets[None, :, None], axis=-1)[..., 0]

    return prefix_fn, suffix_fn, option_fn, full_fn


def score_options(model: Model, prompts: list[str], options: list[str], bucket: int = 16
                  ) -> np.ndarray:
    """`f32[len(prompts), len(options)]`: summed log-probabilities of each option's tokens.

    `prompts` are complete model inputs (chat template applied, ending where the answer starts);
    `options` are the answer texts, including any end-of-turn marker to score.
    """
    if not prompts or not options:
        raise ValueError("score_options needs at least one prompt and one option")
    prefix_fn, suffix_fn, option_fn, _ = _fns(model.config)
    ids = [encode(model, p) for p in prompts]
    opt_ids = [encode(model, o) for o in options]
    if any(len(o) == 0 for o in opt_ids):
        raise ValueError("an option encodes to no tokens")

    # 1. The shared prefix (keep at least one token in every suffix).
    n_prefix = min(len(x) for x in ids) - 1
    for j in range(n_prefix):
        if any(x[j] != ids[0][j] for x in ids):
            n_prefix = j
            break
    n_prefix = max(n_prefix, 1)
    prefix_kv = prefix_fn(model.params, jnp.asarray([ids[0][:n_prefix]], jnp.int32))

    # 2. Prompt suffixes, right-padded.
    suffixes = [x[n_prefix:] for x in ids]
    lens = np.array([len(s) for s in suffixes])
    s1 = _pad_to(lens.max(), bucket)
    toks = np.zeros((len(ids), s1), np.int32)
    valid = np.zeros((len(ids), s1), bool)
    for i, s in enumerate(suffixes):
        toks[i, : len(s)] = s
        valid[i, : len(s)] = True
    pos = n_prefix + np.broadcast_to(np.arange(s1), toks.shape)
    causal = np.tril(np.ones((s1, s1), bool))[None] & valid[:, None, :]
    suffix_kv, first_logp = suffix_fn(model.params, prefix_kv, jnp.asarray(toks), jnp.asarray(pos),
                                      jnp.asarray(causal), jnp.asarray(lens - 1))

    # 3. All options of a prompt in one row, block-diagonal.
    starts = np.cumsum([0] + [len(o) for o in opt_ids])
    s2 = _pad_to(starts[-1], bucket)
    row = np.zeros(s2, np.int32)
    offset = np.zeros(s2, np.int32)
    block = np.full(s2, -1)
    for k, o in enumerate(opt_ids):
        row[starts[k]: starts[k + 1]] = o
        offset[starts[k]: starts[k + 1]] = np.arange(len(o))
        block[starts[k]: starts[k + 1]] = k
    same = (block[:, None] == block[None, :]) & (block[:, None] >= 0)
    self_mask = same & np.tril(np.ones((s2, s2), bool))
    pred_pos, targets, owner = [], [], []
    for k, o in enumerate(opt_ids):
        for j in range(1, len(o)):
            pred_pos.append(starts[k] + j - 1)
            targets.append(o[j])
            owner.append(k)
    n = len(ids)
    rest = np.zeros((n, len(options)), np.float64)
    if pred_pos:
        positions = n_prefix + lens[:, None] + offset[None, :]
        token_logp = option_fn(
            model.params, prefix_kv, suffix_kv, jnp.asarray(valid), jnp.asarray(pos),
            jnp.asarray(np.broadcast_to(row, (n, s2))), jnp.asarray(positions),
            jnp.asarray(np.broadcast_to(self_mask, (n, s2, s2))),
            jnp.asarray(pred_pos, jnp.int32), jnp.asarray(targets, jnp.int32))
        np.add.at(rest.T, np.asarray(owner), np.asarray(token_logp, np.float64).T)
    first = np.asarray(first_logp)[:, [o[0] for o in opt_ids]]
    return (first + rest).astype(np.float32)


def score_options_sequential(model: Model, prompts: list[str], options: list[str],
                             bucket: int = 64) -> np.ndarray:
    """The baseline: every (prompt, option) sequence scored alone, from scratch."""
    _, _, _, full_fn = _fns(model.config)
    out = np.zeros((len(prompts), len(options)), np.float32)
    for i, p in enumerate(prompts):
        pid = encode(model, p)
        for k, o in enumerate(options):
            oid = encode(model, o)
            seq = pid + oid
            length = _pad_to(len(seq), bucket)
            toks = np.zeros((1, length), np.int32)
            toks[0, : len(seq)] = seq
            pred = np.arange(len(pid) - 1, len(seq) - 1)
            lp = full_fn(model.params, jnp.asarray(toks), jnp.asarray(pred, jnp.int32),
                         jnp.asarray(oid, jnp.int32))
            out[i, k] = float(np.asarray(lp, np.float64).sum())
    return out


def cpu_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def end_of_turn(model: Model) -> str:
    """The text the chat template puts after an assistant answer, up to its first special token
    (e.g. "<|im_end|>"); scored after each option so that the answer must end there."""
    from .chat import apply_chat_template
    marker = "\u2400ANSWER\u2400"
    text = apply_chat_template(model, [{"role": "user", "content": "x"},
                                       {"role": "assistant", "content": marker}],
                               add_generation_prompt=False)
    tail = text.split(marker, 1)[1]
    specials = [t for t in model.tokenizer.get_added_tokens_decoder().values()]
    best = None
    for tok in specials:
        i = tail.find(tok.content)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, tok.content)
    return tail[: best[0] + len(best[1])] if best else tail.rstrip()


def chat_score_fn(model: Model, bucket: int = 16):
    """A `ScoreFn` for `jaxrl3m.teacher.priors`: chat template, then `score_options`."""
    from .chat import apply_chat_template
    eot = end_of_turn(model)

    def score(messages_list, options):
        prompts = [apply_chat_template(model, m) for m in messages_list]
        return score_options(model, prompts, [o + eot for o in options], bucket=bucket)

    return score
