"""Collect offline datasets: `python -m jaxrl3m.collect --task T --policy P --episodes N --out F`.

    python -m jaxrl3m.collect --task DoorKey --policy oracle --episodes 100000 --out d.npz
    python -m jaxrl3m.collect --task DoorKey --policy oracle --epsilon 0.5 --episodes 1000 --out m.npz
    python -m jaxrl3m.collect --task DoorKey --policy random:1,oracle@0.5:1,oracle:1 ...  # thirds
    python -m jaxrl3m.collect --task DoorKey --policy runs/DoorKey-ppo ...  # a trained run
    python -m jaxrl3m.collect --recipes                # every task's standard datasets

Episodes are collected by the common collector, `--batch` fresh environments per `jit(vmap)`, on
the task's training layouts (`layouts=train`: the held-out eighth is never in a dataset). Policy
specs: `jaxrl3m.runner.policies`. File format and checks: `jaxrl3m.offline.dataset`.

Recipes (`--recipes`, files `<out-dir>/<task>-<recipe>-s<seed>.npz`):
  expert  the oracle teacher (pi_L with the oracle table), sampled;
  medium  the oracle teacher with epsilon = 0.5 random actions;
  mixed   thirds: random, the medium policy, the expert;
  random  uniform actions.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

from .core.config import ConfigError
from .core.io import check_output_file
from .envs import layout as layout_lib
from .offline import dataset as dsl
from .runner import policies

RECIPES = {"expert": "oracle", "medium": "oracle@0.5", "mixed": "random:1,oracle@0.5:1,oracle:1",
           "random": "random"}
RECIPE_TASKS = ("DoorKey", "LavaDoorKey", "ColoredDoorKey")


def collect(task: str, policy: str, episodes: int, epsilon: float = 0.0, seed: int = 0,
            batch: int = 4096, layouts: str = "train", progress: bool = False,
            **options) -> dsl.Dataset:
    """A dataset of `episodes` episodes of `policy` (a spec, see `jaxrl3m.runner.policies`)
    in `task` with `options`, on the `layouts` split."""
    from . import envs
    if episodes < 1:
        raise ConfigError(f"--episodes must be at least 1, got {episodes}")
    try:
        env = envs.make(task, layouts=layouts, **options)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    comps = policies.parse(policy, epsilon)
    counts = np.floor(np.array([c.share for c in comps]) * episodes).astype(int)
    counts[: episodes - counts.sum()] += 1
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=episodes, unit=" episodes", file=sys.stderr, dynamic_ncols=True)
    parts, t0 = [], time.perf_counter()
    try:
        for i, (c, n) in enumerate(zip(comps, counts)):
            if n == 0:
                continue
            pol, params = policies.component_policy(c, env, task)
            arrays = dsl.collect_arrays(env, pol, params, jax.random.fold_in(
                jax.random.key(seed), i), int(n), batch, bar.update if bar else None)
            arrays["episode_policy"][:] = i
            parts.append(arrays)
    finally:
        if bar:
            bar.close()
    arrays = {k: np.concatenate([p[k] for p in parts]) for k in dsl.ARRAYS}
    wall = time.perf_counter() - t0
    return dsl.make_dataset(arrays, env, policy=policy, policies=[c.label for c in comps],
                            shares=[c.share for c in comps], epsilon=epsilon, seed=seed,
                            layouts=layouts, split=layout_lib.SPLIT, collect_wall_s=wall,
                            transitions_per_s=float(arrays["action"].shape[0] / wall))


def recipe_path(out_dir: str | Path, task: str, recipe: str, seed: int) -> Path:
    return Path(out_dir) / f"{task}-{recipe}-s{seed}.npz"


def build_recipes(out_dir: str | Path, episodes: int, tasks=RECIPE_TASKS, recipes=tuple(RECIPES),
                  seeds=(0,), progress: bool = True) -> list[Path]:
    """Every recipe's dataset for every task and seed (rebuilds them all)."""
    paths = []
    for task in tasks:
        for recipe in recipes:
            for seed in seeds:
                ds = collect(task, RECIPES[recipe], episodes, seed=seed)
                ds.meta["recipe"] = recipe
                path = dsl.save(ds, recipe_path(out_dir, task, recipe, seed))
                paths.append(path)
                if progress:
                    print(f"{path}: {dsl.describe(ds)}; {ds.meta['transitions_per_s']:,.0f} "
                          "transitions/s", file=sys.stderr)
    return paths


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.collect", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", help="DoorKey, LavaDoorKey or ColoredDoorKey")
    p.add_argument("--policy", help="random, oracle, a prior table, a run folder, NAME@EPS, or "
                                    "a mixture SPEC:SHARE,SPEC:SHARE")
    p.add_argument("--episodes", type=int, help="episodes to collect (recipes: 10000)")
    p.add_argument("--epsilon", type=float, default=0.0,
                   help="share of uniformly random actions (policies without their own @EPS)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="the dataset file (.npz), written atomically")
    p.add_argument("--batch", type=int, default=4096, help="environments per jitted batch")
    p.add_argument("--layouts", default="train", choices=("train", "all"),
                   help="train (default): never a held-out evaluation layout")
    p.add_argument("--recipes", action="store_true",
                   help="build the standard datasets of every task (expert, medium, mixed, random)")
    p.add_argument("--out-dir", default="datasets", help="where --recipes writes")
    p.add_argument("--seeds", type=int, default=1, help="--recipes: dataset seeds 0..N-1")
    args = p.parse_args(argv)
    try:
        if args.recipes:
            build_recipes(args.out_dir, args.episodes or 10_000, seeds=range(args.seeds))
            return 0
        missing = [k for k in ("task", "policy", "episodes", "out") if getattr(args, k) is None]
        if missing:
            raise ConfigError(f"give {', '.join('--' + k for k in missing)} (or --recipes)")
        if args.episodes < 1:
            raise ConfigError(f"--episodes must be at least 1, got {args.episodes}")
        check_output_file(args.out)
        if args.batch < 1:
            raise ConfigError(f"--batch must be at least 1, got {args.batch}")
        ds = collect(args.task, args.policy, args.episodes, args.epsilon, args.seed, args.batch,
                     args.layouts, progress=True)
        path = dsl.save(ds, args.out)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{path}: {dsl.describe(ds)}; collected at {ds.meta['transitions_per_s']:,.0f} "
          f"transitions/s ({ds.meta['collect_wall_s']:.1f} s), {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
