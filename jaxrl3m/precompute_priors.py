"""`python -m jaxrl3m.precompute_priors`: fill a prior table P_L(k | c(s)) once, offline.

    python -m jaxrl3m.precompute_priors --task ColoredDoorKey --backend jax --model smollm2 \
        --out llm_cache/ColoredDoorKey-smollm2.json
    python -m jaxrl3m.precompute_priors --task DoorKey --backend oracle --out llm_cache/DoorKey-oracle.json
    python -m jaxrl3m.precompute_priors --task DoorKey --backend openai --model NAME \
        --base-url http://localhost:8000/v1 --out llm_cache/DoorKey-NAME.json
    python -m jaxrl3m.precompute_priors --task DoorKey --backend table \
        --table-file llm_cache/published/llm4teach-vicuna33b.yaml --out llm_cache/DoorKey-vicuna33b.json

Backends: jax (default; the flax decoder on a local GGUF file or safetensors folder), openai
(any OpenAI-compatible server), table (hand-written YAML), oracle, uniform. The table is written
atomically with its metadata; the agreement of its top option with the oracle is printed.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time


from .core.io import check_output_file
from .teacher.options import oracle_table, teacher_tasks, uniform_table
from .teacher.priors import agreement, llm_prior_scores, scores_to_probs
from .teacher.prompt import load_prompt
from .teacher.teacher import reachable_states
from .teacher.table import make_table, save_table

BACKENDS = ("jax", "openai", "table", "oracle", "uniform")


def _log(msg: str) -> None:
    print(f"[precompute_priors] {msg}", file=sys.stderr, flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.precompute_priors", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, choices=teacher_tasks())
    p.add_argument("--backend", default="jax", choices=BACKENDS)
    p.add_argument("--model", default="smollm2",
                   help="jax: alias (smollm2, gemma3-270m), .gguf file or Hugging Face folder; openai: the "
                        "served model's name")
    p.add_argument("--prompt", default=None, help="YAML file overriding prompt fields")
    p.add_argument("--out", required=True, help="where to write the table (JSON)")
    p.add_argument("--temperature", type=float, default=None, help="overrides the prompt's")
    p.add_argument("--permutations", type=int, default=None, help="overrides the prompt's")
    p.add_argument("--calibrate", action=argparse.BooleanOptionalAction, default=None,
                   help="overrides the prompt's")
    p.add_argument("--past-policy", action="append", default=[], metavar="TASK",
                   help="add the policy learned on TASK as one more option (\"follow the policy "
                        "that solved TASK\"); jax and openai backends; repeatable")
    g = p.add_argument_group("openai backend")
    g.add_argument("--base-url", default="http://localhost:8000/v1")
    g.add_argument("--api-key", default=None, help="default: $OPENAI_API_KEY")
    g.add_argument("--openai-mode", default="auto", choices=("auto", "logprobs", "sample"))
    g.add_argument("--samples", type=int, default=10, help="answers sampled per state (sample mode)")
    g.add_argument("--timeout", type=float, default=60.0)
    g.add_argument("--retries", type=int, default=5)
    g.add_argument("--chat-template", default="auto", metavar="auto|plain|MODEL|FILE.jinja",
                   help="how log-probability mode renders the chat: the served model's template "
                        "from a local copy (an alias such as smollm2, a .gguf file or a model "
                        "folder: the jax backend's exact strings) or a .jinja file; auto (default):"
                        " the server's /props or a served model id that is a local file, else "
                        "plain text (recorded in the table; it cannot match the jax backend)")
    g = p.add_argument_group("table backend")
    g.add_argument("--table-file", default=None, help="YAML file of hand-written probabilities")
    return p


def compute(args: argparse.Namespace):
    """The table for the parsed arguments (no file written)."""
    today = datetime.date.today().isoformat()
    past = tuple(args.past_policy)
    if past and args.backend not in ("jax", "openai"):
        raise ValueError(f"--past-policy needs a language model (--backend jax or openai); with "
                         f"--backend {args.backend}, give the source policy a fixed share at "
                         "training time instead (teacher=prior+source source_weight=...)")
    if args.backend in ("oracle", "uniform"):
        probs = oracle_table(args.task) if args.backend == "oracle" else uniform_table(args.task)
        return make_table(args.task, probs, backend=args.backend, date=today,
                          model=None, temperature=None)
    if args.backend == "table":
        from .teacher.yaml_table import load_yaml_table
        if not args.table_file:
            raise SystemExit("error: --backend table needs --table-file FILE.yaml")
        probs, meta = load_yaml_table(args.table_file, args.task)
        return make_table(args.task, probs, backend="table", date=today, **meta)

    prompt = load_prompt(args.prompt, task=args.task, temperature=args.temperature,
                         permutations=args.permutations, calibrate=args.calibrate)
    t0 = time.perf_counter()
    if args.backend == "jax":
        from .llm.loading import load_model
        from .llm.model import describe_model
        from .llm.scoring import chat_score_fn
        _log(f"loading {args.model} ...")
        model = load_model(args.model)
        load_s = time.perf_counter() - t0
        _log(f"loaded {model.name} in {load_s:.1f}s; scoring ...")
        score_fn = chat_score_fn(model)
        model_meta = describe_model(model)
    else:
        from .llm.openai_backend import OpenAIScorer
        scorer = OpenAIScorer(base_url=args.base_url, model=args.model, api_key=args.api_key,
                              mode=args.openai_mode, samples=args.samples, timeout=args.timeout,
                              retries=args.retries, log=_log,
                              chat=chat_format(args) if args.openai_mode != "sample" else None)
        score_fn, load_s = scorer, 0.0
        model_meta = {"model": args.model, "base_url": args.base_url}
    t1 = time.perf_counter()
    scores = llm_prior_scores(score_fn, args.task, prompt, progress=_log, past_policies=past)
    score_s = time.perf_counter() - t1
    probs = scores_to_probs(scores, prompt.temperature)
    extra = {}
    if args.backend == "openai":
        extra.update(scorer.stats())
    reach = reachable_states(args.task)
    held_out = tuple(i for i in reach if i not in prompt.example_states())
    return make_table(
        args.task, probs, backend=args.backend, scores=scores, past_policies=past, **model_meta,
        prompt_sha256=prompt.sha256(), prompt=_prompt_meta(prompt),
        temperature=prompt.temperature, date=today,
        agreement_reachable=agreement(probs, args.task, reach),
        agreement_held_out=agreement(probs, args.task, held_out),
        reachable_states=list(reach), load_seconds=round(load_s, 2),
        score_seconds=round(score_s, 2), **extra)


def chat_format(args: argparse.Namespace):
    """The `--chat-template` of the openai backend's log-probability mode."""
    from pathlib import Path
    from .llm.openai_backend import ChatFormat, server_chat_format
    spec = args.chat_template
    if spec == "plain":
        return ChatFormat.plain()
    if spec == "auto":
        found = server_chat_format(args.base_url, args.model, min(args.timeout, 10.0))
        if found is None:
            _log("note: the server does not tell its chat template and --chat-template was not "
                 "given: log-probability mode scores a plain-text rendering, which cannot match "
                 "the jax backend's table (give --chat-template MODEL or FILE.jinja)")
            return ChatFormat.plain()
        _log(f"chat template: {found.source}")
        return found
    if spec.endswith(".jinja"):
        if not Path(spec).is_file():
            raise ValueError(f"--chat-template {spec!r}: no such file")
        return ChatFormat.from_jinja(Path(spec).read_text(), f"file:{spec}")
    return ChatFormat.from_model(spec)


def _prompt_meta(prompt) -> dict:
    import dataclasses
    d = dataclasses.asdict(prompt)
    d["examples"] = [dict(e) for e in d["examples"]]
    return d


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_output_file(args.out)
        table = compute(args)
        path = save_table(table, args.out)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    meta = table.metadata
    reach = reachable_states(args.task)
    msg = f"wrote {path} ({args.backend}"
    if "score_seconds" in meta:
        msg += f", load {meta['load_seconds']}s, scoring {meta['score_seconds']}s"
    agree = agreement(table.probs, args.task, reach)
    msg += (f"); top option agrees with the oracle in {agree:.0%} of the {len(reach)} reachable "
            f"abstract states" if agree == agree else f"; {args.task} has no oracle to compare)")
    print(msg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
