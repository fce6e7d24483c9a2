"""A language model as jaxrl3m holds it (`Model`: decoder config, flax params, tokenizer, chat
template, where it came from) and what the file formats share: the error (`ModelError`), the
file's sha256, and the flax params assembled from a format's named tensors (`decoder_params`).
The formats are `gguf` and `hf` (Hugging Face safetensors folders); `loading` finds a model by
alias, file or folder; `chat` renders chat templates."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from .decoder import DecoderConfig

SUPPORTED = "llama, qwen2 (SmolLM2, Llama, Qwen2, Mistral) and gemma3"

GEMMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Gemma chats alternate user and assistant turns (after an optional "
    "system message)') }}{%- endif -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') + "
    "message['content'] | trim + '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}")
"""Gemma's chat format (user/model turns, the system message opening the first user turn), for
Gemma 3 files that carry no template of their own."""


class ModelError(ValueError):
    """A model that cannot be found or read; the message says why and what to do."""


@dataclasses.dataclass
class Model:
    config: DecoderConfig
    params: Any  # flax params {"params": {...}}
    tokenizer: Any  # tokenizers.Tokenizer
    chat_template: str | None
    special: dict[str, str]  # bos / eos token strings
    name: str
    path: str
    sha256: str


def sha256(path: Path) -> str:
    """The sha256 of a file, or of a folder's files in name order."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def decoder_params(cfg: DecoderConfig, get, permute_qk: bool) -> dict:
    """Assembles flax params from a getter `get(kind, layer) -> np.ndarray [out, in] or [n]`."""
    L = cfg.n_layers

    def unpermute(w, heads):
        # llama.cpp: w.reshape(heads, 2, hd/2, ...).swapaxes(1, 2); this is its inverse.
        shape = w.shape
        return w.reshape(heads, cfg.hd // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)

    def stack(kind, transpose=True, heads=None):
        ws = []
        for i in range(L):
            w = get(kind, i)
            if heads is not None and permute_qk:
                w = unpermute(w, heads)
            ws.append(w.T if transpose else w)
        return np.stack(ws).astype(np.float32)

    attn = {}
    for name, heads in (("q", cfg.n_heads), ("k", cfg.n_kv_heads), ("v", None)):
        attn[name] = {"kernel": stack(name, heads=heads)}
        if cfg.attention_bias:
            attn[name]["bias"] = stack(name + "_bias", transpose=False, heads=heads)
    attn["o"] = {"kernel": stack("o")}
    if cfg.qk_norm:
        attn["q_norm"] = {"scale": stack("q_norm", False)}
        attn["k_norm"] = {"scale": stack("k_norm", False)}
    layers = {"attn": attn, "attn_norm": {"scale": stack("attn_norm", False)},
              "ffn_norm": {"scale": stack("ffn_norm", False)},
              "gate": {"kernel": stack("gate")}, "up": {"kernel": stack("up")},
              "down": {"kernel": stack("down")}}
    if cfg.post_norms:
        layers["post_attn_norm"] = {"scale": stack("post_attn_norm", False)}
        layers["post_ffn_norm"] = {"scale": stack("post_ffn_norm", False)}
    params = {"embed": {"embedding": get("embed", None).astype(np.float32)},
              "final_norm": {"scale": get("final_norm", None).astype(np.float32)},
              "layers": layers}
    if not cfg.tie_embeddings:
        params["lm_head"] = {"kernel": get("lm_head", None).T.astype(np.float32)}
    return {"params": params}


def describe_model(model: Model) -> dict[str, Any]:
    """What a prior table or a run records of the model it used."""
    return {"model": model.name, "model_path": os.path.basename(model.path),
            "model_sha256": model.sha256}
