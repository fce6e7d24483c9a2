"""Agreement of SmolLM2's prior tables with the oracle, for each prompt improvement.

    python bench/prompt_ablation.py [--model smollm2] [--out bench/prompt_ablation.json]

For every task and prompt variant it prints the share of reachable abstract states whose top
option is one the oracle would take (and the same excluding the worked examples' states).
"""

import json
import time

import benchlib

from jaxrl3m.llm.loading import load_model
from jaxrl3m.llm.scoring import chat_score_fn
from jaxrl3m.teacher.priors import agreement, llm_prior_scores, scores_to_probs
from jaxrl3m.teacher.prompt import DEFAULT_EXAMPLES, load_prompt
from jaxrl3m.teacher.teacher import reachable_states

_NONE = {"examples": [], "permutations": 1, "calibrate": False}
_EX = list(DEFAULT_EXAMPLES)
VARIANTS = {
    "plain": _NONE,
    "+examples": {**_NONE, "examples": _EX},
    "+calibration": {**_NONE, "calibrate": True},
    "+examples+calibration": {**_NONE, "examples": _EX, "calibrate": True},
    "+examples+4 orders": {**_NONE, "examples": _EX, "permutations": 4},
    "+examples+4 orders+calibration": {"examples": _EX, "permutations": 4, "calibrate": True},
}


def main():
    ap = benchlib.parser(__doc__, "prompt_ablation.json")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--tasks", nargs="*", default=["DoorKey", "LavaDoorKey", "ColoredDoorKey"])
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    args = ap.parse_args()
    model = load_model(args.model)
    score_fn = chat_score_fn(model)
    rows = []
    for task in args.tasks:
        reach = reachable_states(task)
        for name in args.variants:
            prompt = load_prompt(**VARIANTS[name])
            t = time.perf_counter()
            probs = scores_to_probs(llm_prior_scores(score_fn, task, prompt), prompt.temperature)
            held = tuple(i for i in reach if i not in prompt.example_states())
            row = {"task": task, "variant": name, "agreement": agreement(probs, task, reach),
                   "agreement_held_out": agreement(probs, task, held),
                   "seconds": round(time.perf_counter() - t, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    benchlib.save(args.out, {"model": model.name, "model_sha256": model.sha256, "rows": rows})


if __name__ == "__main__":
    main()
