"""Filling a prior table with SmolLM2 on this machine: batched scoring against one by one.

    python bench/priors_throughput.py [--model smollm2] [--task ColoredDoorKey] [--sequential-states 4]

Reports, in one run: model load time; the batched table (all abstract states x options, one
option order, as `precompute_priors` runs it) with compile time apart; and the one-by-one
baseline (every (state, option) sequence scored alone, from scratch) measured on the first
`--sequential-states` states and extrapolated to the whole table. Results go to
bench/priors_throughput.json.
"""

import json
import time

import benchlib
import numpy as np

from jaxrl3m import envs
from jaxrl3m.llm.chat import apply_chat_template
from jaxrl3m.llm.loading import load_model
from jaxrl3m.llm.scoring import chat_score_fn, end_of_turn, score_options_sequential
from jaxrl3m.teacher.options import task_options
from jaxrl3m.teacher.priors import llm_prior_scores
from jaxrl3m.teacher.prompt import load_prompt


def main():
    ap = benchlib.parser(__doc__, "priors_throughput.json")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--task", default="ColoredDoorKey")
    ap.add_argument("--sequential-states", type=int, default=4)
    args = ap.parse_args()
    t = time.perf_counter()
    model = load_model(args.model)
    load_s = time.perf_counter() - t
    prompt = load_prompt(permutations=1)
    score_fn = chat_score_fn(model)
    t = time.perf_counter()
    scores = llm_prior_scores(score_fn, args.task, prompt)
    first_s = time.perf_counter() - t  # includes compilation
    t = time.perf_counter()
    scores2 = llm_prior_scores(score_fn, args.task, prompt)
    batched_s = time.perf_counter() - t
    assert np.allclose(scores, scores2, atol=1e-4)

    options = list(task_options(args.task))
    guide = envs.guidance(args.task)
    eot = end_of_turn(model)
    msgs = [prompt.messages(args.task, options, guide.describe(i))
            for i in range(args.sequential_states)]
    prompts = [apply_chat_template(model, m) for m in msgs]
    score_options_sequential(model, prompts[:1], [options[0] + eot])  # compile
    t = time.perf_counter()
    seq = score_options_sequential(model, prompts, [o + eot for o in options])
    seq_s = (time.perf_counter() - t) * guide.num_states / args.sequential_states
    assert np.allclose(seq, scores[: args.sequential_states], atol=2e-3), \
        np.abs(seq - scores[: args.sequential_states]).max()
    result = {
        "task": args.task, "model": model.name, "states": guide.num_states,
        "options": len(options), "load_s": round(load_s, 2),
        "batched_first_call_s": round(first_s, 2), "batched_s": round(batched_s, 2),
        "batched_compile_s": round(first_s - batched_s, 2),
        "sequential_s_extrapolated": round(seq_s, 1),
        "speedup": round(seq_s / batched_s, 1),
        "full_table_including_load_s": round(load_s + first_s, 1),
    }
    print(json.dumps(result, indent=1))
    benchlib.save(args.out, result)


if __name__ == "__main__":
    main()
