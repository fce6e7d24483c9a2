"""Held-out evaluation of any policy: one episode in each of `episodes` fresh layouts per seed.

An algorithm is evaluated on its `eval_env`: the task's held-out layouts, whose maps (room,
door, keys, lava) training never draws, by construction (`jaxrl3m.envs.layout.held_out`; the
split is 1 map in 8). Layouts and actions come from a key stream that training never uses
(`jax.random.key(seed)` folded with `EVAL_STREAM`). Every result records which layouts it played
(`layouts`, and the split's version where there is one). Tasks without a split (NAVIX's) are
evaluated on layouts drawn like training's.

Hyperparameters are chosen on the **validation** split instead (`split="validation"`): fresh
episodes on the training layouts, from a third key stream (`VALIDATION_STREAM`), with training
seeds other than the reported ones (`bench/validate.py`); the held-out layouts are only ever
reported, never chosen on.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import jax
import numpy as np

from ..envs import layout as layout_lib
from . import collector
from .parallel import vmap_seeds

EVAL_STREAM = 0x5EED_E7A1


PERIODIC_STREAM = 0xC0_5EED
"""The periodic evaluations' stream (during training; folded with the update's number)."""

VALIDATION_STREAM = 0x7A_11DA
"""The validation evaluations' stream (training layouts, for choosing hyperparameters)."""

SPLITS = ("heldout", "validation")


def eval_keys(seed: int, seeds: int, stream: int = EVAL_STREAM) -> jax.Array:
    """The held-out layout keys of each seed, from `stream` (the final evaluation's by
    default; `PERIODIC_STREAM` for the evaluations during training)."""
    key = jax.random.fold_in(jax.random.key(seed), stream)
    return jax.vmap(lambda s: jax.random.fold_in(key, s))(np.arange(seeds))


_PROGRAMS: dict = {}


def _program(env, policy, episodes: int, batched: bool):
    sig = (env, policy, episodes, batched)
    if sig not in _PROGRAMS:
        play = lambda params, key: collector.episodes(env, policy, params, key, episodes)
        axes = (0 if batched else None) if isinstance(batched, bool) else batched
        _PROGRAMS[sig] = jax.jit(vmap_seeds(play, in_axes=(axes, 0)))
    return _PROGRAMS[sig]


def algo_target(algo: Any, params: Any, inputs: Any, greedy: bool):
    """`(policy, params, batched)` that `evaluate` plays for a trained algorithm."""
    return (algo.policy(greedy), algo.evaluation_params(params, inputs), algo.evaluation_axes)


def evaluate_algo(algo: Any, params: Any, inputs: Any, seeds: int, episodes: int = 1000,
                  greedy: bool = False, seed: int = 0, split: str = "heldout") -> dict[str, Any]:
    """`evaluate` for a trained algorithm's parameters (`f32[S, ...]`, one set per seed) and its
    inputs (`jaxrl3m.algos.Inputs`, or the teacher alone), through the algorithm's evaluation
    policy (`algo.policy`: DQN-Prior acts from its Q-values and the prior's proposals; by
    default, sampling or the argmax of `algo.act`'s logits). `split`: `"heldout"` (the
    algorithm's `eval_env`, what results report) or `"validation"` (its training environment,
    fresh episodes from `VALIDATION_STREAM`: what hyperparameters are chosen on)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    policy, params, batched = algo_target(algo, params, inputs, greedy)
    validation = split == "validation"
    out = evaluate(algo.env if validation else algo.eval_env, None, params, seeds, episodes,
                   greedy, seed, batched=batched, policy=policy,
                   stream=VALIDATION_STREAM if validation else EVAL_STREAM)
    return {**out, "purpose": "validation"} if validation else out


def precompile_algo(algo: Any, params: Any, inputs: Any, seeds: int, episodes: int,
                    greedy: bool = False) -> threading.Thread:
    """Compiles `evaluate_algo`'s program in a background thread, from the parameters' shapes
    (`params` may be abstract), so that the driver's final evaluation does not wait for its
    compilation: it overlaps training. Join the thread before evaluating. A failure here is
    ignored: the evaluation then compiles (and reports) as usual."""
    shapes = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), params)

    def work():
        try:
            policy, p, batched = algo_target(algo, shapes, inputs, greedy)
            _program(algo.eval_env, policy, episodes, batched).lower(p, eval_keys(0, seeds)).compile()
        except Exception:  # noqa: BLE001 (the evaluation itself will say what is wrong)
            pass

    thread = threading.Thread(target=work, name="jaxrl3m-precompile-evaluation", daemon=True)
    thread.start()
    return thread


def evaluate(env: Any, logits: Callable | None, params: Any, seeds: int, episodes: int = 1000,
             greedy: bool = False, seed: int = 0, batched: Any = True,
             policy: Any = None, stream: int = EVAL_STREAM) -> dict[str, Any]:
    """Success rate, return and length per seed of the policy `logits(params, obs)` (or of the
    collector policy `policy(params, obs, key)`) on held-out layouts. `params` has a leading
    seed axis (`batched=True`), is shared by every seed (`False`: the teacher acting alone, each
    seed then plays other layouts and action samples), or `batched` is a `vmap` in_axes prefix
    of `params` (some parts per seed, some shared). Layouts and actions come from `stream`."""
    if policy is None:
        policy = collector.Sample(logits, greedy)
    stats = jax.device_get(_program(env, policy, episodes, batched)(
        params, eval_keys(seed, seeds, stream)))
    success = stats.success.mean(axis=1).tolist()
    ret = stats.ret.mean(axis=1).tolist()
    layouts = getattr(env, "layouts", "all")
    split = {"split": layout_lib.SPLIT} if layouts != "all" else {}
    return {"episodes": episodes, "greedy": greedy, "layouts": layouts, **split,
            "success": success, "return": ret,
            "length": stats.length.mean(axis=1).tolist(),
            "length_max": stats.length.max(axis=1).tolist(),
            "lava": stats.lava.mean(axis=1).tolist(),
            "success_mean": float(np.mean(success)), "success_std": float(np.std(success)),
            "return_mean": float(np.mean(ret))}
