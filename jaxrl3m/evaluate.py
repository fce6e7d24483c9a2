"""Evaluate a trained run on held-out layouts: `python -m jaxrl3m.evaluate RUN_DIR`.

Loads the run's config and last checkpoint and plays `--episodes` episodes per seed on layouts
that training never draws (`jaxrl3m.core.evaluation`). `--validation` plays fresh episodes on the
training layouts instead (another key stream): the split to choose hyperparameters on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .core.config import ConfigError
from .core.evaluation import evaluate_algo
from .runner.runs import restore_run


def evaluate_run(run_dir: str | Path, episodes: int = 1000, greedy: bool | None = None,
                 split: str = "heldout") -> dict[str, Any]:
    """A run folder's last checkpoint on held-out layouts (`split="validation"`: on fresh
    training layouts; `greedy=None`: as the run's `eval_greedy` says)."""
    _, run, s, state, step = restore_run(run_dir)
    greedy = run.eval_greedy if greedy is None else greedy
    out = evaluate_algo(s.algo, state.params, s.inputs, run.seeds, episodes, greedy, run.seed,
                        split)
    out["update"] = int(step)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir")
    p.add_argument("--episodes", type=int, default=1000, help="episodes per seed")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--greedy", action="store_true", default=None,
                     help="act greedily (default: as the run's eval_greedy says)")
    how.add_argument("--sample", dest="greedy", action="store_false",
                     help="sample actions (DQN-Prior: softmax(Q / tau) over the proposals)")
    p.add_argument("--validation", action="store_true",
                   help="play fresh episodes on the training layouts (the validation split, "
                        "for choosing hyperparameters) instead of the held-out ones")
    args = p.parse_args(argv)
    try:
        if args.episodes < 1:
            raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
        out = evaluate_run(args.run_dir, args.episodes, args.greedy,
                           "validation" if args.validation else "heldout")
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(out, indent=2))
    print(f"{args.run_dir} (update {out['update']}): success {out['success_mean']:.3f} +- "
          f"{out['success_std']:.3f}, return {out['return_mean']:.3f} over {out['episodes']} "
          f"{'validation (training-layout)' if args.validation else 'held-out'} episodes per "
          f"seed ({'greedy' if out['greedy'] else 'sampled'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
