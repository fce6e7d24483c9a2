"""Hugging Face model folders (`config.json`, `tokenizer.json`, `*.safetensors`) as a `Model`:
Llama-family and Gemma 3 (whose norm weights get the +1 of Gemma's `x * (1 + w)` added here)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from .decoder import DecoderConfig, gemma3_layer_types
from .model import GEMMA3_CHAT_TEMPLATE, SUPPORTED, Model, ModelError, decoder_params, sha256

_HF_NAMES = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight",
             "lm_head": "lm_head.weight", "q": "model.layers.{}.self_attn.q_proj.weight",
             "k": "model.layers.{}.self_attn.k_proj.weight",
             "v": "model.layers.{}.self_attn.v_proj.weight",
             "q_bias": "model.layers.{}.self_attn.q_proj.bias",
             "k_bias": "model.layers.{}.self_attn.k_proj.bias",
             "v_bias": "model.layers.{}.self_attn.v_proj.bias",
             "o": "model.layers.{}.self_attn.o_proj.weight",
             "attn_norm": "model.layers.{}.input_layernorm.weight",
             "ffn_norm": "model.layers.{}.post_attention_layernorm.weight",
             "gate": "model.layers.{}.mlp.gate_proj.weight",
             "up": "model.layers.{}.mlp.up_proj.weight",
             "down": "model.layers.{}.mlp.down_proj.weight"}
_HF_GEMMA3_NAMES = {**_HF_NAMES, "q_norm": "model.layers.{}.self_attn.q_norm.weight",
                    "k_norm": "model.layers.{}.self_attn.k_norm.weight",
                    "post_attn_norm": "model.layers.{}.post_attention_layernorm.weight",
                    "ffn_norm": "model.layers.{}.pre_feedforward_layernorm.weight",
                    "post_ffn_norm": "model.layers.{}.post_feedforward_layernorm.weight"}
_GEMMA3_NORMS = ("final_norm", "attn_norm", "ffn_norm", "q_norm", "k_norm", "post_attn_norm",
                 "post_ffn_norm")


def _gemma3_config(hf: dict, path: Path) -> dict:
    """The Gemma 3 options of DecoderConfig from a Hugging Face `config.json` (transformers 4's
    keys and transformers 5's `rope_parameters` both read)."""
    n = hf["num_hidden_layers"]
    kinds = hf.get("layer_types")
    if kinds:
        layer_types = tuple("local" if k == "sliding_attention" else "global" for k in kinds)
    else:
        layer_types = gemma3_layer_types(n, int(hf.get("sliding_window_pattern", 6)))
    rope = hf.get("rope_parameters") or {}
    local_rope = rope.get("sliding_attention", {})
    global_rope = rope.get("full_attention", {}) or hf.get("rope_scaling") or {}
    kind = global_rope.get("rope_type", global_rope.get("type", "default"))
    if kind not in ("default", "linear"):
        raise ModelError(f"{path}: RoPE scaling {kind!r} is not supported (default, linear)")
    act = hf.get("hidden_activation", "gelu_pytorch_tanh")
    if act not in ("gelu_pytorch_tanh", "gelu_tanh"):
        raise ModelError(f"{path}: hidden_activation {act!r} is not supported (gelu_pytorch_tanh)")
    for key in ("final_logit_softcapping", "attn_logit_softcapping"):
        if hf.get(key):
            raise ModelError(f"{path}: {key} is not supported (Gemma 3 has none)")
    return dict(qk_norm=True, post_norms=True, activation="gelu_tanh",
                embed_scale=float(np.sqrt(np.float32(hf["hidden_size"]))),
                query_scale=float(hf.get("query_pre_attn_scalar") or hf.get("head_dim") or 0)
                or None,
                sliding_window=int(hf.get("sliding_window") or 0), layer_types=layer_types,
                rope_theta=float(global_rope.get("rope_theta", hf.get("rope_theta", 1e6))),
                rope_local_theta=float(local_rope.get("rope_theta",
                                                      hf.get("rope_local_base_freq", 1e4))),
                rope_scale=float(global_rope.get("factor", 1.0)) if kind == "linear" else 1.0)


def load_folder(path: Path, name: str) -> Model:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer
    for needed in ("config.json", "tokenizer.json"):
        if not (path / needed).exists():
            raise ModelError(f"{path}: {needed} is missing (a Hugging Face model folder has "
                             "config.json, tokenizer.json and *.safetensors)")
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{path}: no *.safetensors weights")
    hf = json.loads((path / "config.json").read_text())
    mtype = hf.get("model_type")
    if mtype == "gemma3" and "text_config" in hf:  # the multimodal checkpoint: its text part
        hf, mtype = {**hf["text_config"], "model_type": "gemma3_text"}, "gemma3_text"
    if mtype not in ("llama", "qwen2", "mistral", "gemma3_text"):
        raise ModelError(f"{path}: model_type {mtype!r} is not supported by jaxrl3m's decoder "
                         f"({SUPPORTED}); serve it with an OpenAI-compatible server and use "
                         "`--backend openai`")
    gemma = mtype == "gemma3_text"
    n_heads = hf["num_attention_heads"]
    cfg = DecoderConfig(
        vocab_size=hf["vocab_size"], dim=hf["hidden_size"], n_layers=hf["num_hidden_layers"],
        n_heads=n_heads, n_kv_heads=hf.get("num_key_value_heads", n_heads),
        ffn_dim=hf["intermediate_size"], rope_theta=float(hf.get("rope_theta", 10000.0)),
        rms_eps=float(hf.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attention_bias=bool(hf.get("attention_bias", mtype == "qwen2")),
        head_dim=hf.get("head_dim"),
        context_length=int(hf.get("max_position_embeddings", 0)))
    if gemma:
        cfg = dataclasses.replace(cfg, tie_embeddings=bool(hf.get("tie_word_embeddings", True)),
                                  attention_bias=bool(hf.get("attention_bias", False)),
                                  **_gemma3_config(hf, path))
    weights: dict[str, np.ndarray] = {}
    for f in files:
        weights.update(load_file(str(f)))
    names = _HF_GEMMA3_NAMES if gemma else _HF_NAMES
    prefix = "language_model." if f"language_model.{names['embed']}" in weights else ""

    def get(kind, layer):
        key = prefix + names[kind].format(layer)
        if key not in weights:
            raise ModelError(f"{path}: tensor {key!r} is missing from the safetensors files")
        w = np.asarray(weights[key], np.float32)
        return w + 1.0 if gemma and kind in _GEMMA3_NORMS else w  # Gemma: x * (1 + w)

    params = decoder_params(cfg, get, permute_qk=False)
    tok_cfg_path = path / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.exists() else {}
    special = {k: (v["content"] if isinstance(v, dict) else v) for k, v in tok_cfg.items()
               if k in ("bos_token", "eos_token") and v}
    template = tok_cfg.get("chat_template")
    if template is None and (path / "chat_template.jinja").exists():
        template = (path / "chat_template.jinja").read_text()
    if template is None and gemma:
        template = GEMMA3_CHAT_TEMPLATE
    return Model(config=cfg, params=params, tokenizer=Tokenizer.from_file(str(path / "tokenizer.json")),
                 chat_template=template, special=special,
                 name=hf.get("_name_or_path") or path.name, path=str(path), sha256=sha256(path))
