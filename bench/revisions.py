"""Training throughput of this checkout against another git revision, side by side in one run.

    python bench/revisions.py --against HEAD~1                 # DoorKey and ColoredDoorKey, 4 seeds
    python bench/revisions.py --against 5432454 --tasks DoorKey --envs 64 1024 --rounds 3

The other revision is checked out into a temporary git worktree. For each task, number of
environments and round, each revision's measurement runs in its own process (same jitted chunk
of updates as `bench/train_throughput.py`: presets' hyperparameters, rollouts of 32 steps,
`--seeds` seeds vmapped as the driver vmaps them), alternating revisions, so a slow spell of the
machine hits both alike; the best of all rounds is kept. Variants: plain PPO, guided PPO
(oracle table, lambda > 0), and guided PPO while lambda = 0 (past the cut-off: the teacher
should not be computed at all). Revisions from before the core refactor (a prior table instead of a
`Teacher`, plain `jax.vmap`) are measured through their own API. Each revision's network
keys (window, embedding, widths) are those of its own PPO presets (`configs/ppo.yaml`). Writes
`bench/revisions.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import benchlib
from benchlib import ROOT
VARIANTS = {"plain": (False, 0.0, -1), "guided": (True, 1.0, -1), "guided_lambda0": (True, 1.0, 0)}
"""name -> (guided, kl_coef, kl_cutoff). lambda = 0 comes from the cut-off (lambda_t = 0 from
update 0), as in a run past LLM4Teach's cut-off: a traced value, not a constant XLA could fold
away (kl_coef = 0 in the config is one, and was already skipped before the core)."""


NETWORK_KEYS = ("view", "window", "network", "embed_dim", "hidden", "channels", "relative_colours")


def preset_network(tree: str, config_cls: type) -> dict:
    """The network keys of the revision's PPO presets (`ppo.yaml`, which every PPO preset
    inherits): what a user of that revision trains, where the config class's own defaults may
    differ (issue 25 moved the presets' window from 11 to 7, not the class default)."""
    import dataclasses
    import yaml
    for path in (Path(tree) / "jaxrl3m" / "configs" / "ppo.yaml", Path(tree) / "configs" / "ppo.yaml"):
        if path.is_file():
            preset = yaml.safe_load(path.read_text()) or {}
            break
    else:
        return {}
    fields = {f.name for f in dataclasses.fields(config_cls)}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in preset.items()
            if k in NETWORK_KEYS and k in fields}


def measure(tree: str, task: str, num_envs: int, seeds: int, updates: int, repeats: int
            ) -> dict:
    """Runs inside a child process whose `jaxrl3m` is the one in `tree` (first on the path)."""
    sys.path.insert(0, tree)
    import jax
    import jax.numpy as jnp
    from jaxrl3m.algos.ppo import PPOConfig, make_train
    from jaxrl3m.teacher.options import oracle_table
    assert Path(sys.modules["jaxrl3m"].__file__).is_relative_to(tree)
    try:  # the core API
        from jaxrl3m.core.parallel import vmap_seeds
        from jaxrl3m.teacher.teacher import Teacher
        teacher = Teacher.create(task, oracle_table(task))
    except ImportError:  # before the core: a table, plain vmap
        vmap_seeds, teacher = jax.vmap, jnp.asarray(oracle_table(task))
    chunks = {}
    network = preset_network(tree, PPOConfig)
    for name, (guided, kl, cutoff) in VARIANTS.items():
        batch = num_envs * 32
        algo = make_train(PPOConfig(task=task, num_envs=num_envs, num_steps=32,
                                    num_minibatches=max(4, batch // 8192),
                                    total_steps=batch * 10_000, kl_coef=kl, kl_cutoff=cutoff,
                                    **network),
                          guided=guided)
        chunk, state, _ = benchlib.compiled_chunk(algo, seeds, updates, teacher, vmap_seeds)
        chunks[name] = (chunk, state)
    times = benchlib.alternate(chunks, teacher, repeats)
    return {name: updates * num_envs * 32 * seeds / min(t) for name, t in times.items()}


def main(argv=None) -> int:
    p = benchlib.parser(__doc__, "revisions.json")
    p.add_argument("--against", default="HEAD~1", help="the git revision to compare with")
    p.add_argument("--tasks", nargs="+", default=["DoorKey", "ColoredDoorKey"])
    p.add_argument("--envs", nargs="+", type=int, default=[64, 1024])
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--updates", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="timed chunks per process")
    p.add_argument("--rounds", type=int, default=2, help="processes per revision, alternating")
    p.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        tree, task, n, seeds, updates, repeats = args.child
        print(json.dumps(measure(tree, task, int(n), int(seeds), int(updates), int(repeats))))
        return 0
    rev = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout.strip()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / rev
        subprocess.run(["git", "worktree", "add", "--detach", str(other), rev], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            trees = {f"{rev} (before)": str(other), "this checkout": str(ROOT)}
            for task in args.tasks:
                for n in args.envs:
                    best: dict = {t: {} for t in trees}
                    for _ in range(args.rounds):
                        for label, tree in trees.items():
                            out = subprocess.run(
                                [sys.executable, __file__, "--child", tree, task, str(n),
                                 str(args.seeds), str(args.updates), str(args.repeats)],
                                cwd=tmp, check=True, capture_output=True, text=True,
                                env={**os.environ, "JAX_PLATFORMS": "cpu"})
                            m = json.loads(out.stdout.strip().splitlines()[-1])
                            for k, v in m.items():
                                best[label][k] = max(best[label].get(k, 0.0), v)
                    before, after = best.values()
                    row = {"task": task, "envs": n, "seeds": args.seeds, "before": before,
                           "after": after, "after_over_before": {k: after[k] / before[k]
                                                                 for k in before}}
                    results.append(row)
                    print(f"{task:15s} {n:5d} envs x {args.seeds} seeds: " + ", ".join(
                        f"{k} {before[k]:,.0f} -> {after[k]:,.0f} ({after[k] / before[k]:.2f}x)"
                        for k in VARIANTS), flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT,
                           capture_output=True)
    benchlib.save(args.out, {"before": rev, "after": head, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
