"""GGUF files (dequantised, K-quants included, by `gguf`) as a `Model`.

llama.cpp's converter stores the Q and K projections of `llama` checkpoints permuted for its
interleaved RoPE; they are permuted back to the Hugging Face layout that `decoder.rope` uses.
Qwen2 and Gemma 3 checkpoints are not permuted. llama.cpp stores Gemma's norm weights with the +1
of Gemma's `x * (1 + w)` already added. The tokenizer is rebuilt from the GGUF metadata with
`tokenizers` (byte-level BPE vocabulary and merges, or SentencePiece's BPE vocabulary with its
merges recovered from the vocabulary, as Gemma's), not with transformers (whose GGUF path imports
torch). Gemma 3 files without a template (the base models) get Gemma's chat format.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .decoder import DecoderConfig, gemma3_layer_types
from .model import GEMMA3_CHAT_TEMPLATE, SUPPORTED, Model, ModelError, decoder_params, sha256

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


class Tensor(NamedTuple):
    """A tensor of a GGUF file: its ggml shape (innermost first), ggml type and raw bytes
    (`uint8[rows, bytes per row]`, a view of the memory-mapped file)."""
    shape: tuple[int, ...]
    tensor_type: int
    data: np.ndarray


# GGUF value types: scalars by struct code (8 string and 9 array are read apart).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
            12: "d"}


def read_gguf(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """The metadata (`key -> value`: numbers, strings, lists; numeric arrays as numpy arrays)
    and the tensors of a GGUF file (versions 2 and 3), memory-mapped. `gguf.GGUFReader` builds a
    numpy view per array element (a 262k-token vocabulary: ~20 s); this reads the header with
    `struct`, in well under a second. Raises ModelError for a file that is not GGUF or is cut
    short."""
    from gguf.constants import GGML_QUANT_SIZES
    try:
        buf = np.memmap(path, dtype=np.uint8, mode="r")
        pos = 0

        def take(fmt):
            nonlocal pos
            (out,) = struct.unpack_from("<" + fmt, buf, pos)
            pos += struct.calcsize("<" + fmt)
            return out

        def string():
            nonlocal pos
            n = take("Q")
            if pos + n > len(buf):
                raise ValueError("the file ends inside a string")
            pos += n
            return bytes(buf[pos - n:pos]).decode("utf-8", errors="replace")

        def value(kind):
            nonlocal pos
            if kind == 8:
                return string()
            if kind == 9:
                item, n = take("I"), take("Q")
                if item in _SCALARS and item != 7:
                    dtype = np.dtype("<" + _SCALARS[item])
                    out = np.frombuffer(buf, dtype, count=n, offset=pos).copy()
                    pos += n * dtype.itemsize
                    return out
                return [value(item) for _ in range(n)]
            if kind not in _SCALARS:
                raise ValueError(f"unknown value type {kind}")
            return take(_SCALARS[kind])

        magic, version = take("4s"), take("I")
        if magic != b"GGUF" or version not in (2, 3):
            raise ValueError(f"magic {magic!r}, version {version}: not GGUF 2 or 3")
        n_tensors, n_fields = take("Q"), take("Q")
        fields = {}
        for _ in range(n_fields):
            key = string()
            fields[key] = value(take("I"))
        infos = []
        for _ in range(n_tensors):
            name, n_dims = string(), take("I")
            dims = tuple(int(take("Q")) for _ in range(n_dims))
            infos.append((name, dims, take("I"), take("Q")))
        align = int(fields.get("general.alignment", 32))
        start = -(-pos // align) * align
        tensors = {}
        for name, dims, kind, offset in infos:
            block, size = GGML_QUANT_SIZES[kind]
            row = dims[0] * size // block
            n_bytes = int(np.prod(dims)) * size // block
            if start + offset + n_bytes > len(buf):
                raise ValueError(f"tensor {name!r} runs past the end of the file")
            data = buf[start + offset: start + offset + n_bytes].reshape(-1, row)
            tensors[name] = Tensor(dims, kind, data)
        return fields, tensors
    except struct.error:
        raise ModelError(f"{path} is not a readable GGUF file: it ends inside its header (cut "
                         "short? download or copy it again)") from None
    except (ValueError, KeyError, OSError) as e:
        raise ModelError(f"{path} is not a readable GGUF file ({type(e).__name__}: {e})") from None


def load_gguf(path: Path, name: str) -> Model:
    import gguf
    fields, tensors = read_gguf(path)

    def field(key, default=None):
        return fields.get(key, default)

    def need(key):
        if fields.get(key) is None:
            raise ModelError(f"{path}: metadata {key!r} is missing; the file is incomplete or "
                             "was not written by llama.cpp's converter (re-convert it, or serve "
                             "it with an OpenAI-compatible server and use --backend openai)")
        return fields[key]

    arch = field("general.architecture")
    if arch not in ("llama", "qwen2", "gemma3"):
        raise ModelError(f"{path}: architecture {arch!r} is not supported by jaxrl3m's decoder "
                         f"({SUPPORTED}); serve it with an OpenAI-compatible server and use "
                         "`--backend openai`")
    n_heads = int(need(f"{arch}.attention.head_count"))
    dim = int(need(f"{arch}.embedding_length"))
    tokens = need("tokenizer.ggml.tokens")
    gemma = {}
    if arch == "gemma3":
        n_layers = int(need(f"{arch}.block_count"))
        scaling = field(f"{arch}.rope.scaling.type")
        gemma = dict(qk_norm=True, post_norms=True, activation="gelu_tanh",
                     embed_scale=float(np.sqrt(np.float32(dim))),
                     sliding_window=int(field(f"{arch}.attention.sliding_window", 0)),
                     layer_types=gemma3_layer_types(n_layers),
                     rope_local_theta=10000.0,  # llama.cpp's fixed local base for Gemma 3
                     rope_scale=float(field(f"{arch}.rope.scaling.factor", 1.0))
                     if scaling == "linear" else 1.0)
    cfg = DecoderConfig(
        vocab_size=len(tokens), dim=dim, n_layers=int(need(f"{arch}.block_count")),
        n_heads=n_heads, n_kv_heads=int(field(f"{arch}.attention.head_count_kv", n_heads)),
        ffn_dim=int(need(f"{arch}.feed_forward_length")),
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
        w = gguf.quants.dequantize(t.data, gguf.GGMLQuantizationType(t.tensor_type))
        return np.asarray(w, np.float32).reshape(tuple(reversed(t.shape)))

    params = decoder_params(cfg, get, permute_qk=arch == "llama")
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
