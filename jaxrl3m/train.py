"""Guided PPO from the command line: `python -m jaxrl3m.train CONFIG.yaml [key=value ...]`.

    python -m jaxrl3m.train configs/ColoredDoorKey-llm.yaml
    python -m jaxrl3m.train configs/DoorKey-oracle.yaml kl_coef=3.0 --seeds 4
    python -m jaxrl3m.train --resume runs/DoorKey-oracle

A run writes to `runs/<name>/`: `config.yaml` (every key, resolved), `metrics.csv` (one row per
seed and update), `learning_curve.png`, orbax checkpoints in `checkpoints/`, and `eval.json`
(success and return on held-out layouts). Training runs as jitted chunks of `log_every`
updates, all seeds in one `vmap`; after each chunk the progress bar, the CSV and the checkpoint
are updated, so `--resume` continues a stopped run and ends exactly where an uninterrupted run
would have.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from . import curves
from .algos.ppo import METRICS, PPOConfig, RunnerState, Trainer, make_train
from .checkpoint import Checkpoints
from .config import ConfigError, build, load_yaml, parse_overrides, to_dict
from .envs.abstraction import NUM_ABSTRACT_STATES
from .teacher.options import oracle_table, uniform_table
from .teacher.table import TableError, atomic_write_text, load_table


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a training run does around PPO."""

    name: str = ""
    """Folder under runs_dir (default: the config file's name). An existing folder is never
    overwritten: a new run gets the next free name-2, name-3, ..."""
    prior: str = "none"
    """The teacher's prior table: a JSON file (llm_cache/...), oracle, uniform, or none (plain
    PPO: no teacher, no KL term)."""
    seeds: int = 1
    """Seeds trained together in one vmap."""
    seed: int = 0
    """Seed of the first key; the seeds' keys are split from it."""
    log_every: int = 10
    """Updates per jitted chunk: the bar, metrics.csv and the checkpoint update after each."""
    eval_episodes: int = 1000
    """Episodes per seed on held-out layouts at the end (0: skip)."""
    eval_greedy: bool = False
    """Evaluate the greedy policy instead of sampling from it."""
    runs_dir: str = "runs"
    """Where run folders go."""

    def check(self) -> "RunConfig":
        for key in ("seeds", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key {key!r} must be at least 1, got "
                                  f"{getattr(self, key)}")
        if self.eval_episodes < 0:
            raise ConfigError(f"config key 'eval_episodes' must be >= 0, got "
                              f"{self.eval_episodes}")
        return self


def load_config(path: str | None, overrides: dict[str, Any]) -> tuple[PPOConfig, RunConfig]:
    """Both configs from a YAML file (or defaults) plus overrides, checked."""
    values = load_yaml(path) if path else {}
    values.update(overrides)
    ppo, run = build((PPOConfig, RunConfig), values)
    if not run.name and path:
        run = dataclasses.replace(run, name=Path(path).stem)
    ppo.check()
    run.check()
    if run.prior == "none" and ppo.kl_coef > 0:
        raise ConfigError(f"config key 'kl_coef' is {ppo.kl_coef} but prior is 'none': give a "
                          "prior (a table in llm_cache/, oracle or uniform) or set kl_coef=0")
    return ppo, run


def resolve_prior(prior: str, task: str) -> tuple[np.ndarray, dict[str, Any]]:
    """`(table f32[60, K], description)` for a prior name or table path."""
    if prior == "oracle":
        return oracle_table(task), {"prior": "oracle"}
    if prior in ("uniform", "none"):
        return uniform_table(task), {"prior": prior}
    if not prior.endswith(".json") and not Path(prior).exists():
        raise ConfigError(f"config key 'prior': {prior!r} is neither oracle, uniform, none nor "
                          "a prior table file (e.g. llm_cache/ColoredDoorKey-smollm2.json)")
    try:
        table = load_table(prior, task)
    except TableError as e:
        raise ConfigError(f"config key 'prior': {e}") from None
    meta = table.metadata
    return table.probs, {"prior": prior, "prior_model": meta.get("model"),
                         "prior_backend": meta.get("backend"),
                         "prior_agreement": meta.get("agreement")}


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on a terminal; a line every ~10% otherwise (logs, CI)."""

    def __init__(self, total: int, enabled: bool = True, stream=sys.stderr, seeds: int = 1):
        self.total, self.enabled, self.stream, self.seeds = total, enabled, stream, seeds
        self.tty = enabled and stream.isatty()
        self.start = time.perf_counter()
        self.next_report = 0.1

    def update(self, steps: int, sps: float, ret: float, success: float) -> None:
        if not self.enabled:
            return
        frac = min(steps / self.total, 1.0)
        eta = (self.total - steps) * self.seeds / sps if sps > 0 else math.nan  # sps: all seeds
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        text = (f"[{bar}] {steps:>11,}/{self.total:,} steps | {sps:>9,.0f} steps/s | return "
                f"{ret:.3f} | success {success:.3f} | ETA {_clock(eta)}")
        if self.tty:
            self.stream.write("\r" + text)
            if frac >= 1:
                self.stream.write("\n")
            self.stream.flush()
        elif frac >= self.next_report or frac >= 1:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.next_report = math.floor(frac * 10 + 1) / 10


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--"
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
def new_run_dir(run: RunConfig) -> Path:
    base = Path(run.runs_dir) / (run.name or "run")
    path, i = base, 1
    while path.exists():
        i += 1
        path = base.with_name(f"{base.name}-{i}")
    path.mkdir(parents=True)
    return path


@functools.lru_cache(maxsize=None)
def _chunk_fn(trainer: Trainer, num_updates: int):
    return jax.jit(jax.vmap(functools.partial(trainer.update, num_updates=num_updates),
                            in_axes=(0, None)))


def init_runner(trainer: Trainer, run: RunConfig) -> RunnerState:
    keys = jax.random.split(jax.random.key(run.seed), run.seeds)
    return jax.jit(jax.vmap(trainer.init))(keys)


def rows_from_metrics(metrics: dict[str, np.ndarray], first_update: int, sps: float,
                      wall: float) -> list[dict]:
    """One CSV row per seed and update from a chunk's `f32[S, n]` metrics."""
    seeds, n = metrics["env_steps"].shape
    return [{"seed": s, "update": first_update + i + 1,
             **{k: float(metrics[k][s, i]) for k in METRICS},
             "steps_per_second": sps, "wall_s": wall}
            for s in range(seeds) for i in range(n)]


COLUMNS = ("seed", "update", *METRICS, "steps_per_second", "wall_s")


class TrainingDiverged(RuntimeError):
    """A NaN or infinity appeared in the losses."""


def train_run(ppo: PPOConfig, run: RunConfig, run_dir: Path, resume: bool = False,
              progress: bool = True, stop_after: int | None = None) -> dict[str, Any] | None:
    """Trains (or continues) the run in `run_dir`; returns the summary.

    `stop_after` stops once that many updates are done, as an interruption would (returns
    None; `--resume` continues it).
    """
    table, prior_info = resolve_prior(run.prior, ppo.task)
    trainer = make_train(ppo, guided=run.prior != "none")
    table = jnp.asarray(table)
    ckpt = Checkpoints(run_dir / "checkpoints")
    runner = init_runner(trainer, run)
    rows: list[dict] = []
    done = 0
    if resume and ckpt.latest() is not None:
        done = ckpt.latest()
        runner = ckpt.restore(done, runner)
        rows = [r for r in curves.read_csv(run_dir / "metrics.csv") if r["update"] <= done]
        print(f"resuming {run_dir} from update {done} of {ppo.num_updates}", file=sys.stderr)
    bar = Progress(ppo.num_updates * ppo.batch_size, progress, seeds=run.seeds)
    wall = rows[-1]["wall_s"] if rows else 0.0
    while done < ppo.num_updates:
        n = min(run.log_every, ppo.num_updates - done)
        t0 = time.perf_counter()
        new_runner, metrics = _chunk_fn(trainer, n)(runner, table)
        metrics = jax.device_get(metrics)
        dt = time.perf_counter() - t0
        if not np.all(np.isfinite(metrics["loss"])):
            seed, i = np.argwhere(~np.isfinite(metrics["loss"]))[0]
            raise TrainingDiverged(
                f"training diverged: the loss is {metrics['loss'][seed, i]} at update "
                f"{done + i + 1} (seed {seed}). Lower lr (now {ppo.lr}) or kl_coef (now "
                f"{ppo.kl_coef}), or raise max_grad_norm's clipping; the last good state is "
                f"checkpoint {ckpt.latest()} in {run_dir / 'checkpoints'} (--resume).")
        runner, wall = new_runner, wall + dt
        sps = n * ppo.batch_size * run.seeds / dt
        rows += rows_from_metrics(metrics, done, sps, wall)
        done += n
        curves.write_csv(run_dir / "metrics.csv", rows, COLUMNS)
        ckpt.save(done, runner)
        recent = [r for r in rows if r["update"] > done - 5]
        ret = np.nanmean([r["return"] for r in recent]) if recent else math.nan
        succ = _pooled_success(recent)
        bar.update(done * ppo.batch_size, sps, ret, succ)
        if stop_after is not None and done >= stop_after and done < ppo.num_updates:
            ckpt.close()
            return None
    ckpt.close()
    summary = summarise(rows, ppo, run, prior_info)
    plot_run(rows, run_dir / "learning_curve.png", f"{ppo.task}, prior {run.prior}")
    if run.eval_episodes:
        from .evaluate import evaluate_params
        summary["eval"] = evaluate_params(trainer, runner.params, run.eval_episodes,
                                          run.eval_greedy, seed=run.seed)
        atomic_write_text(run_dir / "eval.json", json.dumps(summary["eval"], indent=2) + "\n")
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _pooled_success(rows: list[dict]) -> float:
    eps = sum(r["episodes"] for r in rows)
    return sum(np.nan_to_num(r["success"]) * r["episodes"] for r in rows) / eps if eps else math.nan


def summarise(rows: list[dict], ppo: PPOConfig, run: RunConfig, prior_info: dict) -> dict:
    steps = curves.by_seed(rows, "env_steps")[0]
    success = curves.windowed_success(curves.by_seed(rows, "success"),
                                      curves.by_seed(rows, "episodes"))
    to_09 = [curves.steps_to(steps, s) for s in success]
    final = success[:, -1]
    return {"task": ppo.task, **prior_info, "seeds": run.seeds, "env_steps": int(steps[-1]),
            "steps_to_0.9": to_09, "final_success": final.tolist(),
            "final_success_mean": float(np.nanmean(final)),
            "final_success_std": float(np.nanstd(final)),
            "wall_s": float(rows[-1]["wall_s"]),
            "steps_per_second": float(steps[-1] * run.seeds / rows[-1]["wall_s"])}


def plot_run(rows: list[dict], path: Path, title: str) -> Path | None:
    steps = curves.by_seed(rows, "env_steps")[0]
    success = curves.windowed_success(curves.by_seed(rows, "success"),
                                      curves.by_seed(rows, "episodes"))
    return curves.plot_learning_curves({"training episodes": (steps, success)}, path, title)


def _fmt_steps(x: float) -> str:
    return "not reached" if not math.isfinite(x) else f"{x:,.0f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", nargs="?", help="YAML config (configs/...); keys not given keep "
                                             "their defaults")
    p.add_argument("overrides", nargs="*", help="key=value pairs overriding the config")
    p.add_argument("--seeds", type=int, help="seeds trained together in one vmap")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last "
                                                       "checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    args = p.parse_intermixed_args(argv)
    try:
        if args.config and "=" in args.config:  # only overrides were given
            args.overrides.insert(0, args.config)
            args.config = None
        if args.resume:
            run_dir = Path(args.resume)
            if not (run_dir / "config.yaml").is_file():
                raise ConfigError(f"--resume {str(run_dir)!r}: no config.yaml there; give the "
                                  "folder of a run started by python -m jaxrl3m.train")
            if args.config or args.overrides or args.seeds:
                raise ConfigError("--resume takes the run's own config.yaml; do not give a "
                                  "config, overrides or --seeds with it")
            ppo, run = load_config(str(run_dir / "config.yaml"), {})
        else:
            overrides = parse_overrides(args.overrides)
            if args.seeds is not None:
                overrides["seeds"] = args.seeds
            ppo, run = load_config(args.config, overrides)
            run_dir = new_run_dir(run)
            run = dataclasses.replace(run, name=run_dir.name)
            atomic_write_text(run_dir / "config.yaml",
                              yaml.safe_dump(to_dict(ppo, run), sort_keys=False))
        print(f"run {run_dir}: {ppo.task}, prior {run.prior}, {run.seeds} seed(s), "
              f"{ppo.num_updates} updates of {ppo.num_envs} envs x {ppo.num_steps} steps",
              file=sys.stderr)
        summary = train_run(ppo, run, run_dir, resume=bool(args.resume),
                            progress=not args.no_progress)
    except (ConfigError, TrainingDiverged) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    to_09 = np.array(summary["steps_to_0.9"], dtype=float)
    reached = to_09[np.isfinite(to_09)]
    print(f"{run_dir}: final success {summary['final_success_mean']:.3f} +- "
          f"{summary['final_success_std']:.3f} over {run.seeds} seed(s); steps to 0.9: "
          + (f"{reached.mean():,.0f} (mean of {len(reached)}/{len(to_09)} seeds that reached it)"
             if len(reached) else "not reached")
          + f"; {summary['steps_per_second']:,.0f} steps/s")
    if "eval" in summary:
        e = summary["eval"]
        print(f"held-out layouts ({e['episodes']} episodes per seed, "
              f"{'greedy' if e['greedy'] else 'sampled'}): success {e['success_mean']:.3f} +- "
              f"{e['success_std']:.3f}, return {e['return_mean']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
