"""Train from the command line: `python -m jaxrl3m.train PRESET|CONFIG.yaml [key=value ...]`.

    python -m jaxrl3m.train DoorKey-oracle                    # a shipped preset, by name
    python -m jaxrl3m.train configs/DoorKey-oracle.yaml kl_coef=3.0 --seeds 4
    python -m jaxrl3m.train --resume runs/DoorKey-oracle
    python -m jaxrl3m.train --list                            # the shipped presets

A run writes to `runs/<name>/`: `config.yaml` (every key, resolved), `metrics.csv` (one row per
seed and update, appended as training goes), `learning_curve.png`, orbax checkpoints in
`checkpoints/`, `eval.json` (success and return on held-out layouts) and `summary.json`. Training
runs as jitted chunks of `log_every` updates, all seeds in one `vmap` (`jaxrl3m.runner.driver`);
`--resume` continues a stopped run and ends exactly where an uninterrupted run would have. The
prior table and the source policy are checked before the run folder is created. Compiled
programs are kept in XLA's persistent cache (`~/.cache/jaxrl3m/xla`, or `$JAXRL3M_COMPILE_CACHE`;
`JAXRL3M_COMPILE_CACHE=off` disables it, deleting the folder clears it), so the same command runs
again without compiling (`jaxrl3m.core.compile_cache`).

Transfer learning (see `jaxrl3m.experiments.transfer` for the five-approach study): `source=RUN_DIR`
names a run of this command on another task; `init=source` starts from its policy's parameters,
`teacher=source` makes the frozen source policy the teacher (kickstarting), `teacher=prior+source`
adds it to the prior's skills as one more option, and `learn=false` only evaluates the teacher.

    python -m jaxrl3m.train transfer/4-llm task=LavaDoorKey source=runs/source-DoorKey

Devices and hosts: a run uses every local device (`devices=N` for fewer): seeds are split over
them, and each seed's environments when there are fewer seeds than devices. For several
processes (hosts), start the same command in each with `--coordinator HOST:PORT
--num-processes N --process-id I` (or `JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`,
`JAX_PROCESS_ID`; `--distributed auto` lets JAX detect SLURM and other clusters); process 0
writes metrics and evaluations, every process its own shards of the checkpoints.

    python -m jaxrl3m.train ppo task=DoorKey seeds=8 --coordinator node0:4000 --num-processes 2 --process-id 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .core.config import ConfigError, parse_overrides, preset_names
from .core.parallel import DistributedError, distributed_args, initialize_distributed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="a shipped preset's name (DoorKey-oracle) or a "
                                             "YAML file; keys not given keep their defaults")
    p.add_argument("overrides", nargs="*", help="key=value pairs overriding the config")
    p.add_argument("--seeds", type=int, help="seeds trained together in one vmap")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last "
                                                       "checkpoint")
    p.add_argument("--allow-changed", nargs="+", default=[], metavar="KEY",
                   help="with --resume: accept these config keys or inputs (prior, dataset, "
                        "source, model) differing from the run's start (recorded in the run's "
                        "inputs.json); without it a resume refuses any change")
    p.add_argument("--list", action="store_true", help="list the shipped presets and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.add_argument("--coordinator", metavar="HOST:PORT", help="multi-process run: process 0's "
                   "address (default: $JAX_COORDINATOR_ADDRESS)")
    p.add_argument("--num-processes", type=int, help="multi-process run: how many processes "
                   "(default: $JAX_NUM_PROCESSES, else 1)")
    p.add_argument("--process-id", type=int, help="multi-process run: this process's id, "
                   "0..N-1 (default: $JAX_PROCESS_ID, else 0)")
    p.add_argument("--distributed", choices=("auto",), help="let JAX detect the cluster "
                   "(SLURM, Open MPI, ...) and its processes")
    p.add_argument("--init-timeout", type=float, default=120.0, metavar="SECONDS",
                   help="how long processes wait for each other (default 120)")
    args = p.parse_intermixed_args(argv)
    if args.list:
        print("\n".join(preset_names()))
        return 0
    try:  # before anything touches a device
        initialize_distributed(*distributed_args(args.coordinator, args.num_processes,
                                                 args.process_id), timeout=args.init_timeout,
                               auto=args.distributed == "auto")
    except DistributedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from .core import compile_cache
    compile_cache.enable()
    from .runner.driver import TrainingDiverged, train_run
    from .runner.runs import create_run, load_config, read_run_config, setup
    try:
        if args.config and "=" in args.config:  # only overrides were given
            args.overrides.insert(0, args.config)
            args.config = None
        if args.allow_changed and not args.resume:
            raise ConfigError("--allow-changed goes with --resume RUN_DIR")
        if args.resume:
            if args.config or args.overrides or args.seeds:
                raise ConfigError("--resume takes the run's own config.yaml; do not give a "
                                  "config, overrides or --seeds with it")
            run_dir = Path(args.resume)
            algo_config, run = read_run_config(run_dir)
            prepared = setup(algo_config, run)
        else:
            overrides = parse_overrides(args.overrides)
            if args.seeds is not None:
                overrides["seeds"] = args.seeds
            algo_config, run = load_config(args.config, overrides)
            prepared = setup(algo_config, run)  # every check before the folder exists
            run_dir, run = create_run(algo_config, run)
        c = algo_config
        size = (f"{c.num_updates} updates of {c.num_envs} envs x {c.num_steps} steps"
                if not prepared.algo.offline else
                f"{c.gradient_steps} gradient steps on {run.dataset} (fraction {run.fraction:g})")
        print(f"run {run_dir}: {run.algo} on {c.task}, prior {run.prior}, {run.seeds} seed(s), "
              f"{size}", file=sys.stderr)
        summary = train_run(algo_config, run, run_dir, resume=bool(args.resume),
                            progress=not args.no_progress, prepared=prepared,
                            allow_changed=tuple(args.allow_changed))
    except (ConfigError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the driver has saved a checkpoint and said so
        print("stopped (Ctrl-C)", file=sys.stderr)
        return 130
    import jax
    if jax.process_index() == 0:
        report(run_dir, run.seeds, summary)
    return 0


def final_success_text(final: list[float]) -> str:
    """The final success rate of the learning curve in words; never a bare NaN: a seed whose
    curve has no point yet (no periodic evaluation, and too few training episodes counted)
    has no rate, and the text says so."""
    from .core.metrics import MIN_EPISODES, WINDOW
    final = np.asarray(final, dtype=float)
    known = final[np.isfinite(final)]
    why = (f"no periodic evaluation, and fewer than {MIN_EPISODES} training episodes in "
           f"{WINDOW} updates")
    if not len(known):
        return (f"final success of the learning curve: not measured ({why} of every seed; the "
                f"held-out evaluation below measures it)")
    text = f"final success {known.mean():.3f} +- {known.std():.3f} over {len(known)} seed(s)"
    if len(known) < len(final):
        text += f" ({len(final) - len(known)} seed(s) without a rate: {why})"
    return text


def report(run_dir: Path, seeds: int, summary: dict) -> None:
    """The run's outcome in a few lines (stdout)."""
    if not summary.get("learn", True):
        e = summary["eval"]
        print(f"{run_dir}: the teacher alone, {e['episodes']} held-out episodes per seed: "
              f"success {e['success_mean']:.3f} +- {e['success_std']:.3f}, return "
              f"{e['return_mean']:.3f}")
        return
    if "dataset" in summary:
        e = summary.get("eval")
        print(f"{run_dir}: {summary['env_steps']:,} gradient steps on "
              f"{summary['dataset_episodes']} episodes ({summary['dataset_transitions']} "
              f"transitions), final loss {summary['final_loss']:.4g}, "
              f"{summary['steps_per_second']:,.0f} gradient steps/s")
        if e:
            print(f"held-out layouts ({e['episodes']} episodes per seed, "
                  f"{'greedy' if e['greedy'] else 'sampled'}): success {e['success_mean']:.3f} "
                  f"+- {e['success_std']:.3f}, return {e['return_mean']:.3f}")
        return
    to_09 = np.array(summary["steps_to_0.9"], dtype=float)
    reached = to_09[np.isfinite(to_09)]
    curve = (f"held-out evaluations every {summary['eval_every']} updates"
             if summary.get("curve") == "evaluation" else "training episodes")
    head = ("" if "eval" in summary else final_success_text(summary["final_success"]) + "; ")
    print(f"{run_dir}: {head}steps to 0.9 ({curve}): "
          + (f"{reached.mean():,.0f} (mean of {len(reached)}/{len(to_09)} seeds that reached it)"
             if len(reached) else "not reached")
          + f"; {summary['steps_per_second']:,.0f} steps/s"
          + (f" (compile {summary['compile_s']:.1f} s apart)" if "compile_s" in summary else ""))
    if "eval" in summary:
        e = summary["eval"]
        print(f"final success on held-out layouts ({e['episodes']} episodes per seed, "
              f"{'greedy' if e['greedy'] else 'sampled'}): {e['success_mean']:.3f} +- "
              f"{e['success_std']:.3f}, return {e['return_mean']:.3f}")


if __name__ == "__main__":
    sys.exit(main())
