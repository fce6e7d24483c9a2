"""Evaluate a trained run on held-out layouts: `python -m jaxrl3m.evaluate RUN_DIR`.

Layouts are drawn from a key stream that training never uses (`jax.random.key(seed)` folded with
`EVAL_STREAM`; training resets come from keys split off the training seed). The space of layouts
is large (hundreds of thousands of room/door/key/agent configurations per task), so overlap with
training layouts is rare; it is not excluded by construction.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from .algos.ppo import Trainer
from .envs.episodes import play_episodes

EVAL_STREAM = 0x5EED_E7A1


@dataclasses.dataclass(frozen=True)
class StudentPolicy:
    """The trained policy as `play_episodes` wants it (hashable, so compiled once)."""

    trainer: Trainer
    greedy: bool = False

    def __call__(self, params: Any, obs: Any, key: jax.Array) -> jax.Array:
        logits, _ = self.trainer.apply(params, obs)
        if self.greedy:
            return jnp.where(logits == logits.max(-1, keepdims=True), 0.0, -jnp.inf)
        return logits


@dataclasses.dataclass(frozen=True)
class TeacherPolicy:
    """The teacher pi_L acting alone; its parameters are `(table, past)` (see
    `Trainer.teacher`)."""

    trainer: Trainer

    def __call__(self, params: Any, obs: Any, key: jax.Array) -> jax.Array:
        table, past = params
        return jnp.log(self.trainer.teacher(table, obs, obs.agent_dir.shape[0], past))


def evaluate_params(trainer: Trainer, params: Any, episodes: int = 1000, greedy: bool = False,
                    seed: int = 0) -> dict[str, Any]:
    """Success rate and return per seed of `params` (leading seed axis) on held-out layouts."""
    n_seeds = jax.tree.leaves(params)[0].shape[0]
    return _evaluate(trainer, StudentPolicy(trainer, greedy),
                     [jax.tree.map(lambda x: x[s], params) for s in range(n_seeds)],
                     episodes, greedy, seed)


def evaluate_teacher(trainer: Trainer, table: Any, past: tuple = (), episodes: int = 1000,
                     seeds: int = 1, seed: int = 0) -> dict[str, Any]:
    """The teacher acting alone (sampling pi_L) on the held-out layouts `evaluate_params` uses,
    `episodes` per seed (each seed: other layouts and action samples)."""
    return _evaluate(trainer, TeacherPolicy(trainer), [(table, past)] * seeds, episodes, False,
                     seed)


def _evaluate(trainer: Trainer, policy, per_seed: list, episodes: int, greedy: bool,
              seed: int) -> dict[str, Any]:
    key = jax.random.fold_in(jax.random.key(seed), EVAL_STREAM)
    success, ret, length = [], [], []
    for s, p in enumerate(per_seed):
        stats = jax.device_get(play_episodes(trainer.env, policy, p, jax.random.fold_in(key, s),
                                             episodes))
        success.append(float(stats.success.mean()))
        ret.append(float(stats.ret.mean()))
        length.append(float(stats.length.mean()))
    return {"episodes": episodes, "greedy": greedy, "success": success, "return": ret,
            "length": length, "success_mean": float(np.mean(success)),
            "success_std": float(np.std(success)), "return_mean": float(np.mean(ret))}


def evaluate_run(run_dir: str | Path, episodes: int = 1000, greedy: bool = False
                 ) -> dict[str, Any]:
    """Loads a run's config and last checkpoint and evaluates it."""
    from .train import restore_run
    _, run, setup, runner, step = restore_run(run_dir)
    out = evaluate_params(setup.trainer, runner.params, episodes, greedy, run.seed)
    out["update"] = int(step)
    return out


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per seed")
    p.add_argument("--greedy", action="store_true", help="act greedily instead of sampling")
    args = p.parse_args(argv)
    try:
        out = evaluate_run(args.run_dir, args.episodes, args.greedy)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    print(f"{args.run_dir} (update {out['update']}): success {out['success_mean']:.3f} +- "
          f"{out['success_std']:.3f}, return {out['return_mean']:.3f} over {out['episodes']} "
          f"held-out episodes per seed ({'greedy' if out['greedy'] else 'sampled'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
