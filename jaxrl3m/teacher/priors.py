"""From a language model's option scores to a prior table, whatever the backend.

`llm_prior_scores(score_fn, task, prompt)` asks for every abstract state (and, for calibration,
a content-free state) in every option order the prompt wants, averages the log-probabilities over
orders, subtracts the content-free scores when calibrating, and returns `f32[S, K]` scores in the
task's option order. `scores_to_probs` applies the temperature. A backend whose scores are log
frequencies of sampled answers (`score_fn.pool == "frequency"`, the openai backend's sample mode)
has its frequencies averaged over orders instead: an option no answer named in one order has
frequency 0 there, not a score of minus infinity for the whole state.

`score_fn(list_of_messages, options_in_order) -> f32[N, len(options)]` is the backend: the jax
decoder (`jaxrl3m.llm.scoring`) or an OpenAI-compatible server (`jaxrl3m.llm.openai_backend`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import envs
from .options import oracle_options, past_policy_option, task_options
from .prompt import CONTENT_FREE, Prompt, option_orders

ScoreFn = Callable[[list[list[dict[str, str]]], list[str]], np.ndarray]


def llm_prior_scores(score_fn: ScoreFn, task: str, prompt: Prompt,
                     progress: Callable[[str], None] | None = None,
                     past_policies: tuple[str, ...] = ()) -> np.ndarray:
    """`f32[S, K + P]`: scores of the task's skills and of `past_policies` (policies learned on
    those tasks, listed to the model as "follow the policy that solved <task>")."""
    options = list(task_options(task)) + [past_policy_option(t) for t in past_policies]
    texts = envs.guidance(task).texts() + ([CONTENT_FREE] if prompt.calibrate else [])
    total = np.zeros((len(texts), len(options)), np.float64)
    freq = np.zeros_like(total)
    orders = option_orders(len(options), prompt.permutations)
    for n, order in enumerate(orders):
        listed = [options[j] for j in order]
        if progress:
            progress(f"option order {n + 1}/{len(orders)}: {', '.join(listed)}")
        msgs = [prompt.messages(task, listed, t) for t in texts]
        s = np.asarray(score_fn(msgs, options), np.float64)  # columns in task order
        if s.shape != (len(texts), len(options)):
            raise RuntimeError(f"backend returned scores of shape {s.shape}, expected "
                               f"{(len(texts), len(options))}")
        total += s
        freq += np.exp(s)  # exp(-inf) = 0
    scores = total / len(orders)
    if getattr(score_fn, "pool", "log") == "frequency":
        if prompt.calibrate:
            raise ValueError("calibration subtracts log-probabilities; sampled answers give "
                             "frequencies with zeros: use calibrate: false with sampled answers")
        with np.errstate(divide="ignore"):
            scores = np.log(freq / len(orders))
    if prompt.calibrate:
        scores = scores[:-1] - scores[-1:]
    return scores.astype(np.float32)


def scores_to_probs(scores: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(scores, np.float64) / temperature
    z = np.where(np.isfinite(z), z, -np.inf)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def agreement(probs: np.ndarray, task: str, states: tuple[int, ...] | None = None) -> float:
    """Fraction of `states` (default: all) whose top option is one of the oracle's options
    (among the skills: past-policy columns after them are not compared); NaN for a task without
    an oracle."""
    if envs.guidance(task).oracle is None:
        return float("nan")
    options = task_options(task)
    probs = np.asarray(probs)[:, :len(options)]
    states = tuple(range(envs.guidance(task).num_states)) if states is None else states
    hits = [options[int(np.argmax(probs[i]))] in oracle_options(task, i) for i in states]
    return float(np.mean(hits)) if hits else float("nan")
