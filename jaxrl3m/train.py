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

Transfer learning (see `jaxrl3m.experiments.transfer` for the five-approach study): `source=RUN_DIR`
names a run of this command on another task; `init=source` starts from its policy's parameters,
`teacher=source` makes the frozen source policy the teacher (kickstarting), `teacher=prior+source`
adds it to the prior's skills as one more option, and `learn=false` only evaluates the teacher.

    python -m jaxrl3m.train configs/transfer/4-llm.yaml task=LavaDoorKey source=runs/source-DoorKey
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import sys
import time
import warnings
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
from .teacher.options import oracle_table, uniform_table, with_past_policies
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
    # --- transfer learning ---
    source: str = ""
    """A source policy: the folder of a run of python -m jaxrl3m.train (its last checkpoint),
    usually on another task, with the same network keys. Used by init=source and the teachers
    that include it."""
    source_seed: int = 0
    """Which of the source run's seeds is the source policy."""
    init: str = "scratch"
    """scratch (a fresh network) or source (start from the source policy's parameters)."""
    teacher: str = "prior"
    """prior: the prior table's skills (none: no teacher); source: the frozen source policy alone
    (kickstarting); prior+source: the prior's skills plus the source policy as one more option
    ("follow the policy that solved <source task>"), see source_weight."""
    source_weight: float = 0.5
    """teacher=prior+source: the source policy's share of the prior in every abstract state
    (the skills keep the rest in the prior's proportions)."""
    learn: bool = True
    """false: no training; the teacher acts alone on eval_episodes held-out layouts per seed
    (its success rate is its competence)."""

    def check(self) -> "RunConfig":
        for key in ("seeds", "log_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"config key {key!r} must be at least 1, got "
                                  f"{getattr(self, key)}")
        if self.eval_episodes < 0:
            raise ConfigError(f"config key 'eval_episodes' must be >= 0, got "
                              f"{self.eval_episodes}")
        if self.init not in INITS:
            raise ConfigError(f"config key 'init': {self.init!r} is unknown; valid: "
                              f"{', '.join(INITS)}")
        if self.teacher not in TEACHERS:
            raise ConfigError(f"config key 'teacher': {self.teacher!r} is unknown; valid: "
                              f"{', '.join(TEACHERS)}")
        if self.uses_source and not self.source:
            raise ConfigError(f"init={self.init} teacher={self.teacher} needs a source policy: "
                              "set source=RUN_DIR (a run of python -m jaxrl3m.train)")
        if self.teacher == "prior+source" and self.prior == "none":
            raise ConfigError("teacher=prior+source needs a prior (a table in llm_cache/, "
                              "oracle or uniform); use teacher=source for the source alone")
        if not 0.0 <= self.source_weight <= 1.0:
            raise ConfigError(f"config key 'source_weight' must be in [0, 1], got "
                              f"{self.source_weight}")
        if not self.learn and not self.has_teacher:
            raise ConfigError("learn=false evaluates the teacher, but there is none: give a "
                              "prior or teacher=source")
        if not self.learn and self.init == "source":
            raise ConfigError("learn=false evaluates the teacher; init=source has no effect "
                              "there, use init=scratch")
        if self.source_seed < 0:
            raise ConfigError(f"config key 'source_seed' must be >= 0, got {self.source_seed}")
        return self

    @property
    def has_teacher(self) -> bool:
        return self.teacher != "prior" or self.prior != "none"

    @property
    def uses_source(self) -> bool:
        return self.init == "source" or self.teacher != "prior"


INITS = ("scratch", "source")
TEACHERS = ("prior", "source", "prior+source")
NETWORK_KEYS = ("view", "window", "network", "embed_dim", "hidden", "channels",
                "relative_colours")
"""PPOConfig keys a source policy must share with the run that uses it."""


def load_config(path: str | None, overrides: dict[str, Any]) -> tuple[PPOConfig, RunConfig]:
    """Both configs from a YAML file (or defaults) plus overrides, checked."""
    values = load_yaml(path) if path else {}
    values.update(overrides)
    ppo, run = build((PPOConfig, RunConfig), values)
    if not run.name and path:
        run = dataclasses.replace(run, name=Path(path).stem)
    ppo.check()
    run.check()
    if not run.has_teacher and ppo.kl_coef > 0:
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
                         "prior_agreement": meta.get("agreement"),
                         "prior_past_policies": list(table.past_policies)}


def restore_run(run_dir: str | Path) -> tuple[PPOConfig, RunConfig, "Setup", RunnerState, int]:
    """A run folder's configs, setup and state at its last checkpoint."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{str(run_dir)!r} is not a run folder (no config.yaml); give a "
                          "folder written by python -m jaxrl3m.train")
    ppo, run = load_config(str(run_dir / "config.yaml"), {})
    setup = build_setup(ppo, run)
    ckpt = Checkpoints(run_dir / "checkpoints")
    step = ckpt.latest()
    if step is None:
        ckpt.close()
        raise ConfigError(f"{str(run_dir)!r} has no checkpoint yet; train it first")
    runner = ckpt.restore(step, init_runner(setup.trainer, run))
    ckpt.close()
    return ppo, run, setup, runner, int(step)


def load_source(run: RunConfig, ppo: PPOConfig) -> tuple[str, Any]:
    """`(source task, parameters)` of the source policy named by `run.source`, checked to fit
    `ppo`'s network."""
    try:
        src_ppo, src_run, _, runner, _ = restore_run(run.source)
    except ConfigError as e:
        raise ConfigError(f"config key 'source': {e}") from None
    differ = [k for k in NETWORK_KEYS if getattr(src_ppo, k) != getattr(ppo, k)]
    if differ:
        raise ConfigError(
            f"config key 'source': the source policy in {run.source!r} has a different network ("
            + ", ".join(f"{k}={getattr(src_ppo, k)} here {getattr(ppo, k)}" for k in differ)
            + "); set these keys to the source's values")
    if run.source_seed >= src_run.seeds:
        raise ConfigError(f"config key 'source_seed' is {run.source_seed} but the source run "
                          f"has {src_run.seeds} seed(s)")
    return src_ppo.task, jax.tree.map(lambda x: x[run.source_seed], runner.params)


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a run needs besides its configs: the trainer, the teacher's table and past policies'
    parameters, and the parameters training starts from (None: a fresh network)."""

    trainer: Trainer
    table: Any  # f32[NUM_ABSTRACT_STATES, K + P]
    past: tuple  # parameters of the past policies
    start: Any  # parameters to start from, or None
    info: dict  # what the prior and source were


def build_setup(ppo: PPOConfig, run: RunConfig) -> Setup:
    """Resolves the prior table and the source policy of a run and builds its trainer."""
    table, info = resolve_prior(run.prior, ppo.task)
    source_task, source_params = (load_source(run, ppo) if run.uses_source else (None, None))
    past: tuple = ()
    in_table = info.get("prior_past_policies") or []
    if in_table and (run.teacher != "prior+source" or in_table != [source_task]):
        raise ConfigError(
            f"config key 'prior': {run.prior!r} has a column for the policy that solved "
            f"{in_table}, which needs teacher=prior+source with a source policy trained on "
            + (f"{in_table[0]} (the source is {source_task})" if source_task else
               f"{in_table[0]} (source=RUN_DIR)"))
    if run.teacher != "prior":
        weight = 1.0 if run.teacher == "source" else run.source_weight
        if in_table:  # the language model chose the source policy's share itself
            weight = "from the table"
        else:
            table = with_past_policies(table, 1, weight)
        past = (source_params,)
        info = {**(info if run.teacher == "prior+source" else {"prior": "none"}),
                "teacher": run.teacher, "source_weight": weight}
    if run.uses_source:
        info = {**info, "source": str(run.source), "source_task": source_task,
                "source_seed": run.source_seed, "init": run.init}
    trainer = make_train(ppo, guided=run.has_teacher,
                         past_policies=(source_task,) if past else ())
    return Setup(trainer, jnp.asarray(table), past,
                 source_params if run.init == "source" else None, info)


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
    return jax.jit(jax.vmap(lambda runner, table, past: trainer.update(runner, table, num_updates,
                                                                       past=past),
                            in_axes=(0, None, None)))


def init_runner(trainer: Trainer, run: RunConfig, params: Any = None) -> RunnerState:
    """Every seed's initial state (all seeds start from `params` when given)."""
    keys = jax.random.split(jax.random.key(run.seed), run.seeds)
    return jax.jit(jax.vmap(trainer.init, in_axes=(0, None)))(keys, params)


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
    setup = build_setup(ppo, run)
    trainer, table, prior_info = setup.trainer, setup.table, setup.info
    if not run.learn:
        return evaluate_teacher_run(setup, run, run_dir)
    ckpt = Checkpoints(run_dir / "checkpoints")
    runner = init_runner(trainer, run, setup.start)
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
        new_runner, metrics = _chunk_fn(trainer, n)(runner, table, setup.past)
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
        returns = [r["return"] for r in recent if np.isfinite(r["return"])]
        ret = float(np.mean(returns)) if returns else math.nan
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


def evaluate_teacher_run(setup: Setup, run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """learn=false: the teacher acts alone on held-out layouts; writes eval.json and
    summary.json."""
    from .evaluate import evaluate_teacher
    t0 = time.perf_counter()
    ev = evaluate_teacher(setup.trainer, setup.table, setup.past, run.eval_episodes or 1000,
                          run.seeds, seed=run.seed)
    wall = time.perf_counter() - t0
    atomic_write_text(run_dir / "eval.json", json.dumps(ev, indent=2) + "\n")
    c = setup.trainer.config
    summary = {"task": c.task, **setup.info, "seeds": run.seeds, "learn": False, "env_steps": 0,
               "steps_to_0.9": [0.0 if s >= 0.9 else math.nan for s in ev["success"]],
               "final_success": ev["success"], "final_success_mean": ev["success_mean"],
               "final_success_std": ev["success_std"], "wall_s": wall,
               "steps_per_second": math.nan, "eval": ev}
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
    with warnings.catch_warnings():  # a seed with no finished episode yet has NaN success
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = float(np.nanmean(final)), float(np.nanstd(final))
    return {"task": ppo.task, **prior_info, "seeds": run.seeds, "env_steps": int(steps[-1]),
            "steps_to_0.9": to_09, "final_success": final.tolist(),
            "final_success_mean": mean, "final_success_std": std,
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
    if not summary.get("learn", True):
        e = summary["eval"]
        print(f"{run_dir}: the teacher alone, {e['episodes']} held-out episodes per seed: "
              f"success {e['success_mean']:.3f} +- {e['success_std']:.3f}, return "
              f"{e['return_mean']:.3f}")
        return 0
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
