"""The training driver behind `python -m jaxrl3m.train`, for every algorithm.

`train_run(algo_config, run, run_dir)` trains all seeds of a run in one `vmap`, in jitted chunks
of `log_every` updates: one compiled program per run (the last, shorter chunk runs the same
program with its surplus updates skipped), compiled ahead of time so that compilation is
measured apart (`compile_s` in `summary.json`; steps/s exclude it). Chunks are pipelined: the
next chunk is dispatched before the host reads the last one's metrics, so metrics, CSV rows,
checkpoints and progress overlap the device's work. After each chunk: the divergence guard (a
non-finite loss, or one whose magnitude exceeds `max_loss`, stops the run with a message naming
the update, the seed and the last good checkpoint, which is left as it was), rows appended to
`metrics.csv` (and TensorBoard), the progress bar (tqdm), and an orbax checkpoint when
`checkpoint_every` seconds have passed since the last one (and always at the end, or where the
run is stopped or interrupted with Ctrl-C). A resumed run (`resume=True`) cuts `metrics.csv`
back to its last checkpoint and ends bit for bit where an uninterrupted run would.
At the end: `summary.json`, `learning_curve.png` and the held-out evaluation (`eval.json`), whose
program was compiled in a background thread while training ran. The folder is locked while
`train_run` runs; a resume is checked against the run's record of its settings and inputs and
restores the newest checkpoint that verifies against its manifest (README, "What a run
guarantees").
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import metrics as metrics_io
from ..core.checkpoint import Checkpoints, checkpoint_steps
from ..core.config import ConfigError, to_dict
from ..core import collector
from ..core.evaluation import (PERIODIC_STREAM, algo_target, eval_keys, evaluate, evaluate_algo,
                               precompile_algo)
from ..core.integrity import RunLock
from ..core.io import atomic_write_json
from ..core import parallel
from . import record
from .runs import RunConfig, Setup, init_states, setup as make_setup


class TrainingDiverged(RuntimeError):
    """A NaN, an infinity or an exploding loss: training was stopped."""


_CHUNKS: dict = {}

EVAL_METRICS = ("eval_success", "eval_return")
"""The periodic held-out evaluation's columns (NaN in the rows of updates it skipped)."""


def periodic_keys(seed: int, seeds: int) -> jax.Array:
    """Each seed's key of the periodic evaluations (folded with the update's number): a
    stream apart from training's and the final evaluation's."""
    return eval_keys(seed, seeds, PERIODIC_STREAM)


def chunk_fn(algo: Any, num_updates: int, placement: parallel.Placement = parallel.Placement(),
             eval_every: int = 0, eval_episodes: int = 0, greedy: bool = False):
    """`jit(vmap over seeds)` of up to `num_updates` updates, compiled once per algorithm, size,
    placement and evaluation: `fn(state, inputs, count=num_updates, first=0, keys=None) ->
    (state, metrics)` runs the first `count` updates and skips the rest (a real `cond`:
    `count` is shared by every seed), so a run's last, shorter chunk needs no program of its
    own; the metrics of skipped updates are zeros (keep the first `count`). On a mesh the seed
    axis is the mesh's `seed` axis and the collector puts each seed's environments on its `env`
    axis; call it within `parallel.using(placement)`.

    With `eval_every > 0`, after every update whose number (`first` + its index + 1) is a
    multiple of `eval_every`, the algorithm's evaluation policy (`algo.policy(greedy)`) plays
    `eval_episodes` fresh episodes per seed on the held-out layouts (`algo.eval_env`), inside
    the program (no round trip to the host); `keys` (`periodic_keys`, one per seed) are folded
    with the update's number. The metrics then also hold `eval_success` and `eval_return`
    (NaN for the updates not evaluated). The predicate is shared by every seed, so the `cond`
    stays real under `vmap`: updates without an evaluation pay nothing for it."""
    evaluating = eval_every > 0 and eval_episodes > 0
    sig = (algo, num_updates, placement, eval_every if evaluating else 0,
           eval_episodes if evaluating else 0, greedy)
    if sig not in _CHUNKS:
        # One update, jitted so that it is traced once for both uses below.
        update = jax.jit(lambda s, inputs: algo.update(s, inputs, 1))
        def evaluation(state, inputs, key, number):
            policy, params, _ = algo_target(algo, state.params, inputs, greedy)
            stats = collector.episodes(algo.eval_env, policy, params,
                                       jax.random.fold_in(key, number), eval_episodes)
            return {"eval_success": stats.success.mean(dtype=jnp.float32),
                    "eval_return": stats.ret.mean(dtype=jnp.float32)}

        def no_evaluation(*_):
            return {k: jnp.float32(jnp.nan) for k in EVAL_METRICS}

        def chunk(state, inputs, count, first, key):
            def one(state, i):
                s, m = update(state, inputs)
                m = jax.tree.map(lambda x: x[0], m)
                if evaluating:
                    number = first + i + 1
                    m.update(jax.lax.cond(number % eval_every == 0, evaluation, no_evaluation,
                                          s, inputs, key, number))
                return s, m

            if num_updates == 1:  # nothing to skip: the update as it is
                s, m = one(state, 0)
                return s, jax.tree.map(lambda x: x[None], m)
            shapes = jax.eval_shape(one, state, 0)[1]

            def body(state, i):
                def skip(s):
                    return s, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), shapes)

                return jax.lax.cond(i < count, lambda s: one(s, i), skip, state)

            return jax.lax.scan(body, state, jnp.arange(num_updates))

        jitted = jax.jit(parallel.vmap_placed(chunk, placement,
                                              in_axes=(0, None, None, None, 0)))

        default_keys: dict[int, jax.Array] = {}  # per number of seeds, made once

        def args(state, inputs, count, first, keys):
            if keys is None:
                seeds = jax.tree.leaves(state)[0].shape[0]
                if seeds not in default_keys:
                    default_keys[seeds] = parallel.put(periodic_keys(0, seeds), placement)
                keys = default_keys[seeds]
            return state, inputs, np.int32(count), np.int32(first), keys

        def fn(state, inputs, count=num_updates, first=0, keys=None):
            return jitted(*args(state, inputs, count, first, keys))

        fn.lower = lambda state, inputs, count=num_updates, first=0, keys=None: jitted.lower(
            *args(state, inputs, count, first, keys))
        _CHUNKS[sig] = fn
    return _CHUNKS[sig]


def placement_of(algo: Any, run: RunConfig) -> parallel.Placement:
    """Where the run's seeds and environments go (`run.devices`)."""
    return parallel.place(run.seeds, algo.num_envs, run.devices)


def columns(algo: Any) -> tuple[str, ...]:
    """`metrics.csv`'s columns: the algorithm's metrics, the periodic evaluation's (NaN where
    an update was not evaluated, or the run evaluates only at the end), the speed."""
    return ("seed", "update", *algo.metrics, *EVAL_METRICS, "steps_per_second", "wall_s")


def rows_from_metrics(metrics: dict[str, np.ndarray], names: tuple[str, ...], first_update: int,
                      sps: float, wall: float) -> list[dict]:
    """One CSV row per seed and update from a chunk's `f32[S, n]` metrics (the periodic
    evaluation's columns NaN where the chunk has none)."""
    seeds, n = metrics["env_steps"].shape
    nan = np.full((seeds, n), np.nan)
    return [{"seed": s, "update": first_update + i + 1,
             **{k: float(metrics[k][s, i]) for k in names},
             **{k: float(metrics.get(k, nan)[s, i]) for k in EVAL_METRICS},
             "steps_per_second": sps, "wall_s": wall}
            for s in range(seeds) for i in range(n)]


def check_divergence(metrics: dict[str, np.ndarray], first_update: int, max_loss: float,
                     ckpt: Checkpoints, hint: str) -> None:
    """Raises TrainingDiverged at the first update and seed whose loss is not finite or exceeds
    `max_loss` in magnitude."""
    loss = metrics["loss"]
    bad = ~np.isfinite(loss) | (np.abs(np.nan_to_num(loss)) > max_loss)
    if bad.any():
        seed, i = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
        what = "is not finite" if not np.isfinite(loss[seed, i]) else f"exceeds max_loss={max_loss:g}"
        last = ckpt.latest()
        raise TrainingDiverged(
            f"training diverged: the loss {float(loss[seed, i]):.4g} {what} at update "
            f"{first_update + i + 1} (seed {seed}). {hint} The last good state is "
            + (f"checkpoint {last} in {ckpt.directory} (--resume continues from it)." if last
               is not None else "the start: no checkpoint was written yet."))


class Progress:
    """A tqdm bar over environment steps of all seeds (its rate is the run's steps/s), with the
    recent return and success and the ETA (stderr)."""

    def __init__(self, total: int, enabled: bool, done: int = 0, unit: str = " steps"):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=total, initial=done, unit=unit, unit_scale=True,
                        disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                        mininterval=1.0 if sys.stderr.isatty() else 30.0,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, "
                                   "{rate_fmt}] {postfix}")

    def update(self, steps: int, ret: float, success: float, loss: float = math.nan,
               held_out: float = math.nan) -> None:
        text = (f"loss {loss:.4g}" if math.isnan(success) else
                f"return {ret:.3f} | success {success:.3f}")
        if not math.isnan(held_out):
            text += f" | held-out {held_out:.3f}"
        self.bar.set_postfix_str(text, refresh=False)
        self.bar.update(steps - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class TensorBoard:
    """Every metric of every seed as `seed<k>/<metric>` against environment steps."""

    def __init__(self, path: Path):
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ConfigError("tensorboard=true needs tensorboardX: pip install "
                              "'jaxrl3m[tensorboard]' (or tensorboardX), or set "
                              "tensorboard=false") from None
        self.writer = SummaryWriter(str(path))

    def write(self, rows: list[dict], names: tuple[str, ...]) -> None:
        for r in rows:
            for k in names:
                if k != "env_steps" and math.isfinite(r[k]):
                    self.writer.add_scalar(f"seed{r['seed']}/{k}", r[k], int(r["env_steps"]))
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandB:
    """Every metric of every seed as `seed<k>/<metric>` against environment steps, in a
    Weights & Biases run named after the run folder (its id derives from the folder, so that a
    resumed run continues the same W&B run)."""

    def __init__(self, run_dir: Path, run: RunConfig, values: dict):
        try:
            import wandb
        except ImportError:
            raise ConfigError("wandb=true needs wandb: pip install 'jaxrl3m[wandb]' (or wandb), "
                              "or set wandb=false") from None
        import hashlib
        run_id = hashlib.sha256(str(run_dir.resolve()).encode()).hexdigest()[:16]
        self.run = wandb.init(project=run.wandb_project, name=run_dir.name, id=run_id,
                              dir=str(run_dir), config=values, mode=run.wandb_mode,
                              resume="allow", reinit="create_new")

    def write(self, rows: list[dict], names: tuple[str, ...]) -> None:
        by_update: dict[int, dict] = {}
        for r in rows:
            d = by_update.setdefault(int(r["update"]), {"env_steps": int(r["env_steps"])})
            d.update({f"seed{r['seed']}/{k}": r[k] for k in names
                      if k != "env_steps" and math.isfinite(r[k])})
        for _, d in sorted(by_update.items()):
            self.run.log(d, step=d["env_steps"])

    def close(self) -> None:
        self.run.finish()


def train_run(algo_config: Any, run: RunConfig, run_dir: Path, resume: bool = False,
              progress: bool = True, stop_after: int | None = None,
              prepared: Setup | None = None, allow_changed: tuple[str, ...] = ()
              ) -> dict[str, Any] | None:
    """Trains (or continues) the run in `run_dir`; returns the summary.

    The folder is locked for the call (`jaxrl3m.core.integrity.RunLock`: a second process is
    refused). A fresh run records its settings and inputs (`jaxrl3m.runner.record`); a resumed
    one (`resume=True`) is refused when they changed, except the keys in `allow_changed`.
    `stop_after` stops once that many updates are done, as an interruption would (returns
    None; `resume=True` continues it). `prepared`: the run's `runs.setup`, when the caller
    already built it (to check everything before creating the folder). A start that fails
    before any checkpoint leaves `failed.json` (what went wrong) in the folder.
    """
    run_dir = Path(run_dir)
    lock = RunLock(run_dir) if parallel.is_main_process() else None
    try:
        s = prepared or make_setup(algo_config, run)
        log = lambda m: print(m, file=sys.stderr)  # noqa: E731
        if parallel.is_main_process():
            if resume:
                record.check(run_dir, algo_config, run, tuple(allow_changed), log)
            else:
                record.start(run_dir, algo_config, run)
        if not run.learn:
            return evaluate_teacher_run(s, run, run_dir)
        return _train(algo_config, run, run_dir, s, resume, progress, stop_after)
    except BaseException as e:
        if parallel.is_main_process() and not isinstance(e, KeyboardInterrupt):
            mark_failed_start(run_dir, e)
        raise
    finally:
        if lock is not None:
            lock.release()


def mark_failed_start(run_dir: Path, error: BaseException) -> None:
    """Writes `failed.json` into a run folder that has no checkpoint (nothing to resume), so
    that it is not taken for a run: evaluate and source= name the failure."""
    from .runs import FAILED
    if checkpoint_steps(run_dir / "checkpoints"):
        return
    try:
        atomic_write_json(run_dir / FAILED, {"error": f"{type(error).__name__}: {error}",
                                             "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
    except OSError:
        pass


def _train(algo_config: Any, run: RunConfig, run_dir: Path, s: Setup, resume: bool,
           progress: bool, stop_after: int | None) -> dict[str, Any] | None:
    algo, c = s.algo, algo_config
    names, steps_per_update = algo.metrics, algo.steps_per_update
    total = c.num_updates
    placement = placement_of(algo, run)
    main = parallel.is_main_process()  # writes metrics, summaries, plots, evaluation
    if placement.devices > 1 and progress and main:
        print(f"placing {run.seeds} seed(s) on {placement.describe()}", file=sys.stderr)
    log = metrics_io.MetricsLog(run_dir / "metrics.csv", columns(algo))
    state = parallel.put(init_states(algo, run, s.start), placement)
    inputs = parallel.put(s.inputs, placement, seed_axis=False)
    done, rows = 0, []
    ckpt = Checkpoints(run_dir / "checkpoints")
    try:
        found = ckpt.restore_newest(state) if resume else None
        if found is not None:
            done, state = found
            algo.check_restored(parallel.to_host(state), s.frozen)
            rows = (log.truncate(done) if main else
                    [r for r in log.read() if r["update"] <= done])
            print(f"resuming {run_dir} from update {done} of {total}", file=sys.stderr)
        elif log.path.exists() and main:
            log.path.unlink()  # a fresh start of this (locked) folder
        wall = rows[-1]["wall_s"] if rows else 0.0
        hint = algo.divergence_hint(c)
        size = min(run.log_every, total)
        fn = chunk_fn(algo, size, placement, run.eval_every, run.curve_episodes,
                      run.eval_greedy)
        keys = parallel.put(periodic_keys(run.seed, run.seeds), placement)
        compile_s = 0.0
        if done < total:  # ahead of time, so that it is measured apart from training
            t0 = time.perf_counter()
            with parallel.using(placement):
                fn.lower(state, inputs, size, done, keys).compile()
            compile_s = time.perf_counter() - t0
            if progress and main:
                print(f"compiled the training program in {compile_s:.1f} s", file=sys.stderr)
        # The final evaluation's program compiles in the background while training runs.
        warm = (precompile_algo(algo, state.params, s.inputs, run.seeds, run.eval_episodes,
                                run.eval_greedy)
                if run.eval_episodes and main and done < total and stop_after is None else None)
        tb = TensorBoard(run_dir / "tensorboard") if run.tensorboard and main else None
        wb = WandB(run_dir, run, to_dict(run, c)) if run.wandb and main else None
        bar = Progress(total * steps_per_update * run.seeds, progress and main,
                       done * steps_per_update * run.seeds, algo.progress_unit)

        placed = parallel.keeper(state, placement)

        def launch(state, first):
            n = min(size, total - first)
            with parallel.using(placement):
                return n, fn(placed(state), inputs, n, first, keys)

        def stops_at(update):
            return stop_after is not None and stop_after <= update < total

        saved, last_save = done, time.monotonic()
        pending = launch(state, done) if done < total else None
        t_prev = time.perf_counter()
    except BaseException:
        if locals().get("warm") is not None:  # a compilation in the background ends first
            locals()["warm"].join()
        for logger in (locals().get("tb"), locals().get("wb")):
            if logger is not None:
                logger.close()
        ckpt.close()
        raise
    try:
        while pending is not None:
            n, (new_state, m) = pending
            # Dispatch the next chunk before reading this one: the host's work below overlaps it.
            pending = (launch(new_state, done + n) if done + n < total and not stops_at(done + n)
                       else None)
            m = {k: v[:, :n] for k, v in parallel.to_host(m).items()}
            t_now = time.perf_counter()
            dt, t_prev = t_now - t_prev, t_now
            check_divergence(m, done, run.max_loss, ckpt, hint)
            state, wall = new_state, wall + dt
            sps = n * steps_per_update * run.seeds / dt
            new_rows = rows_from_metrics(m, names, done, sps, wall)
            if main:
                log.append(new_rows)
            if tb:
                tb.write(new_rows, names)
            if wb:
                wb.write(new_rows, names)
            rows += new_rows
            done += n
            if done == total or stops_at(done) or parallel.same_on_every_process(
                    time.monotonic() - last_save >= run.checkpoint_every):
                ckpt.save(done, state)
                saved, last_save = done, time.monotonic()
            recent = [r for r in rows if r["update"] > done - 5]
            returns = [r["return"] for r in recent if np.isfinite(r["return"])]
            newest = max((r["update"] for r in rows if np.isfinite(r["eval_success"])),
                         default=None)  # the last periodic evaluation, all its seeds
            evaluated = [r["eval_success"] for r in rows if r["update"] == newest]
            bar.update(done * steps_per_update * run.seeds, float(np.mean(returns)) if returns
                       else math.nan, pooled_success(recent),
                       float(np.mean([r["loss"] for r in recent])),
                       float(np.mean(evaluated)) if evaluated else math.nan)
            if stops_at(done):
                return None
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) and saved < done:
            # every chunk up to `done` passed the divergence guard: keep it
            ckpt.save(done, state)
            print(f"interrupted: checkpoint {done} saved; --resume {run_dir} continues",
                  file=sys.stderr)
        if warm is not None:  # let the background compilation end before the error leaves (a
            warm.join()       # process that exits mid-compilation can crash in XLA's teardown)
        raise
    finally:
        bar.close()
        ckpt.close()
        if tb:
            tb.close()
        if wb:
            wb.close()
    summary = summarise(rows, c, run, s.info)
    summary["compile_s"] = compile_s
    params = parallel.to_host(state.params)  # a collective: every process takes part
    if not main:  # process 0 evaluates and writes
        return summary
    plot_run(rows, run_dir / "learning_curve.png", f"{c.task}, {run.algo}, prior {run.prior}")
    if run.eval_episodes:
        if warm is not None:
            warm.join()
        summary["eval"] = evaluate_algo(algo, params, s.inputs, run.seeds,
                                        run.eval_episodes, run.eval_greedy, seed=run.seed)
        atomic_write_json(run_dir / "eval.json", summary["eval"])
        e = summary["eval"]  # the final checkpoint's success: the held-out evaluation's
        summary.update(final_success=e["success"], final_success_mean=e["success_mean"],
                       final_success_std=e["success_std"])
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def evaluate_teacher_run(s: Setup, run: RunConfig, run_dir: Path) -> dict[str, Any]:
    """learn=false: the teacher acts alone on held-out layouts; writes eval.json and
    summary.json."""
    from ..teacher.teacher import teacher_logits
    t0 = time.perf_counter()
    ev = evaluate(s.algo.eval_env, teacher_logits, s.teacher, run.seeds, run.eval_episodes or 1000,
                  seed=run.seed, batched=False)
    wall = time.perf_counter() - t0
    atomic_write_json(run_dir / "eval.json", ev)
    summary = {"task": s.algo.config.task, **s.info, "seeds": run.seeds, "learn": False,
               "env_steps": 0,
               "steps_to_0.9": [0.0 if x >= 0.9 else math.nan for x in ev["success"]],
               "final_success": ev["success"], "final_success_mean": ev["success_mean"],
               "final_success_std": ev["success_std"], "wall_s": wall,
               "steps_per_second": math.nan, "eval": ev}
    atomic_write_json(run_dir / "summary.json", summary)
    return summary


def pooled_success(rows: list[dict]) -> float:
    eps = sum(r["episodes"] for r in rows)
    return sum(np.nan_to_num(r["success"]) * r["episodes"] for r in rows) / eps if eps else math.nan


def summarise(rows: list[dict], algo_config: Any, run: RunConfig, info: dict) -> dict:
    """`summary.json` from a run's rows: steps to 0.9 success per seed on the headline curve
    (`metrics.curves`: the periodic held-out evaluation where the run made one, `curve` says
    which), and on the training episodes counted by start (`steps_to_0.9_training`); the final
    success is the headline curve's last known point per seed until the final evaluation
    replaces it."""
    steps, success, _ = metrics_io.curves(rows)
    t_steps, t_success, _ = metrics_io.training_curves(rows)
    final = metrics_io.last_finite(success)
    with warnings.catch_warnings():  # a seed with no finished episode yet has NaN success
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = float(np.nanmean(final)), float(np.nanstd(final))
    env_steps = int(rows[-1]["env_steps"])
    evaluated = metrics_io.has_column(rows, "eval_success")
    return {"task": algo_config.task, "algo": run.algo, **info, "seeds": run.seeds,
            "env_steps": env_steps,
            "curve": "evaluation" if evaluated else "training",
            "eval_every": run.eval_every, "curve_episodes": run.curve_episodes,
            "steps_to_0.9": [metrics_io.steps_to(steps, x) for x in success],
            "steps_to_0.9_training": [metrics_io.steps_to(t_steps, x) for x in t_success],
            "final_success": final.tolist(), "final_success_mean": mean,
            "final_success_std": std, "wall_s": float(rows[-1]["wall_s"]),
            "steps_per_second": float(env_steps * run.seeds / rows[-1]["wall_s"]),
            "final_loss": float(np.mean([r["loss"] for r in rows if r["update"] ==
                                         rows[-1]["update"]]))}


def plot_run(rows: list[dict], path: Path, title: str) -> Path | None:
    """The run's learning curves: held-out evaluations and training episodes (by start), or
    the training loss of a run with neither (offline without periodic evaluation)."""
    lines = {}
    evaluated = metrics_io.evaluation_curves(rows)
    if evaluated is not None:
        lines["held-out evaluation"] = evaluated[:2]
    steps, success, _ = metrics_io.training_curves(rows)
    if np.isfinite(success).any():
        lines["training episodes (by start)"] = (steps, success)
    if not lines:
        loss = metrics_io.by_seed(rows, "loss")
        return metrics_io.plot_learning_curves({"training loss": (steps, loss)}, path, title,
                                               ylabel="loss", threshold=None)
    return metrics_io.plot_learning_curves(lines, path, title, ylabel="success rate",
                                           styles={"training episodes (by start)": ":"})
