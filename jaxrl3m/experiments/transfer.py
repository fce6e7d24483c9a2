"""The transfer study: five approaches from a source task to a target, side by side.

    python -m jaxrl3m.experiments.transfer --target ColoredDoorKey --prior oracle --seeds 4
    python -m jaxrl3m.experiments.transfer --target LavaDoorKey \\
        --prior llm_cache/LavaDoorKey-vicuna33b-llm4teach.json --seeds 4

Approaches (presets in configs/transfer/, all one code path: `python -m jaxrl3m.train` with the
transfer keys `init`, `teacher`, `learn`, `source`):

  1 no transfer            PPO from scratch on the target
  2 LLM teacher alone      sampling pi_L, no learning (the teacher's competence)
  3 transfer without LLM   fine-tune the source policy (3k: kickstarting, the frozen source
                           policy as the KL teacher)
  4 transfer with LLM      start from the source policy, guided by the LLM teacher
  5 LLM + past policies    as 4, the frozen source policy one more option of the teacher

The source policy is trained once (configs/transfer/source.yaml, DoorKey) into
`<runs>/transfer/source-DoorKey` and reused by later studies, or named with `--source RUN_DIR`.

`--learner dqn` runs approaches 1-4 with DQN instead of PPO (presets in configs/transfer/dqn/):
plain DQN from scratch, the teacher alone, a fine-tuned source Q-network, and DQN-Prior with the
LLM teacher as its prior from the source Q-network; its source is DQN-Prior on DoorKey
(`source-DoorKey-dqn`). Approaches 3k and 5 need the source policy as a teacher option, which
only PPO's teacher has.
Each approach trains all its seeds in one vmap into `<out>/<approach>/` (a full run folder:
metrics, checkpoints, held-out evaluation); a finished approach is reused when the study is run
again with the same settings, so a stopped study continues where it was. The study writes
`results.csv` (success and return per approach, seed and update), `results.md` (the table),
`transfer.png` (success against environment steps, mean and min-max band over seeds) and
`summary.json` to `<out>`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..core import metrics as curves
from ..core.checkpoint import Checkpoints
from ..core.config import PRESETS, ConfigError, load_yaml, parse_overrides
from ..runner.driver import TrainingDiverged, train_run
from ..core.io import atomic_write_json, atomic_write_text
from ..runner.runs import (check_same_settings, check_source_fits, create_run, load_config,
                           read_run_config, setup)
from .. import envs
from ..teacher.options import oracle_options, teacher_tasks
from ..teacher.table import load_table
from ..teacher.teacher import reachable_states

CONFIG_DIR = PRESETS / "transfer"
APPROACHES: dict[str, tuple[str, str]] = {
    "1": ("1-scratch", "1 no transfer"),
    "2": ("2-teacher", "2 LLM teacher alone"),
    "3": ("3-finetune", "3 transfer without LLM"),
    "3k": ("3-kickstart", "3k kickstarting (source as teacher)"),
    "4": ("4-llm", "4 transfer with LLM"),
    "5": ("5-llm-past", "5 LLM + past policies"),
}
"""Approach id -> (preset in configs/transfer/, label)."""
DEFAULT_APPROACHES = ("1", "2", "3", "4", "5")
LEARNERS: dict[str, tuple[Path, tuple[str, ...]]] = {
    "ppo": (CONFIG_DIR, tuple(APPROACHES)),
    "dqn": (CONFIG_DIR / "dqn", ("1", "2", "3", "4")),
}
"""Learner -> (its presets' folder, the approaches it has)."""
STUDY_KEYS = ("task", "prior", "seeds", "source", "name", "runs_dir")
"""Keys the study sets in every approach's config (the rest come from the preset and --set)."""
CSV_COLUMNS = ("approach", "seed", "env_steps", "success", "return", "episodes")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
def approach_configs(approach: str, target: str, prior: str, seeds: int, source: str,
                     out: Path, overrides: dict[str, Any], config_dir: Path = CONFIG_DIR):
    """The checked `(algorithm config, RunConfig)` of one approach of the study."""
    preset, _ = APPROACHES[approach]
    values = {"task": target, "seeds": seeds, "source": source, "name": preset,
              "runs_dir": str(out), **overrides}
    path = config_dir / f"{preset}.yaml"
    if load_yaml(path).get("prior", "none") != "none":
        values["prior"] = prior  # approaches without an LLM keep prior: none
    return load_config(path, values)


def ensure_source(source: str | None, runs_dir: Path, overrides: dict[str, Any],
                  progress: bool, config_dir: Path = CONFIG_DIR) -> Path:
    """The source run folder: `source` when given (it must have a checkpoint), else the study's
    default source, trained here unless a finished one is already there."""
    if source:
        path = Path(source)
        if not (path / "config.yaml").is_file():
            raise ConfigError(f"--source {source!r}: no config.yaml there; give the folder of "
                              "a run of python -m jaxrl3m.train")
        return path
    config, run = load_config(config_dir / "source.yaml", {"runs_dir": str(runs_dir),
                                                          **overrides})
    path = runs_dir / run.name
    if (path / "summary.json").is_file():
        _log(f"source policy: reusing {path} ({config.task}, trained before)")
        return path
    _log(f"source policy: training {config.task} into {path} ({config.total_steps:,} steps, "
         f"prior {run.prior})")
    _train_in(path, config, run, progress)
    return path


def _train_in(path: Path, config: Any, run: Any, progress: bool) -> dict[str, Any]:
    """Trains `run` in the fixed folder `path`: resumes what a stopped study left there (with
    the same settings), after checking everything."""
    prepared = setup(config, run)
    resume = False
    if (path / "config.yaml").is_file():
        check_same_settings(path, config, run)
        ckpt = Checkpoints(path / "checkpoints") if (path / "checkpoints").exists() else None
        resume = bool(ckpt and ckpt.latest())
        if ckpt:
            ckpt.close()
    create_run(config, run, path)
    return train_run(config, run, path, resume=resume, progress=progress, prepared=prepared)


def run_approach(approach: str, target: str, prior: str, seeds: int, source: Path, out: Path,
                 overrides: dict[str, Any], progress: bool = True,
                 config_dir: Path = CONFIG_DIR) -> dict[str, Any]:
    """Trains (or reuses, or resumes) one approach; returns its run summary with wall time."""
    config, run = approach_configs(approach, target, prior, seeds, str(source), out, overrides,
                                   config_dir)
    path = out / run.name
    if (path / "config.yaml").is_file():
        check_same_settings(path, config, run)
        if (path / "summary.json").is_file():
            _log(f"[{approach}] reusing {path}")
            return json.loads((path / "summary.json").read_text())
    what = ("evaluating the teacher alone" if not run.learn else
            f"{config.num_updates} updates of {config.num_envs} envs x {config.num_steps} steps")
    _log(f"[{approach}] {APPROACHES[approach][1]}: {target}, {seeds} seed(s), {what}")
    t0 = time.perf_counter()
    summary = _train_in(path, config, run, progress)
    summary["study_wall_s"] = time.perf_counter() - t0  # training + held-out evaluation
    atomic_write_json(path / "summary.json", summary)
    return summary


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
def approach_curves(path: Path, summary: dict[str, Any]) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray, list[dict]]:
    """`(env_steps f[U], success f[S, U], return f[S, U], csv rows)` of one approach's run:
    its learning curve (`curves.curves`: the periodic held-out evaluations, or the training
    episodes of a run that made none).
    The teacher alone (no learning) is a flat line at its held-out success and return."""
    if not summary.get("learn", True):
        ev = summary["eval"]
        s = np.array(ev["success"], float)[:, None]
        r = np.array(ev["return"], float)[:, None]
        rows = [{"seed": i, "env_steps": 0, "success": float(s[i, 0]),
                 "return": float(r[i, 0]), "episodes": ev["episodes"]} for i in range(len(s))]
        return np.zeros(1), s, r, rows
    rows = curves.read_csv(path / "metrics.csv")
    steps, success, ret = curves.curves(rows)
    if curves.has_column(rows, "eval_success"):  # each point: curve_episodes per seed
        episodes = np.full(success.shape, summary.get("curve_episodes", 0))
    else:
        episodes = curves.by_seed(rows, "episodes")
    out = [{"seed": s, "env_steps": int(steps[u]),
            "success": float(success[s, u]), "return": float(ret[s, u]),
            "episodes": int(episodes[s, u])}
           for s in range(success.shape[0]) for u in range(success.shape[1])]
    return steps, success, ret, out


def area_under(steps: np.ndarray, success: np.ndarray) -> np.ndarray:
    """`f[S]`: area under each seed's success curve over the run, as a fraction of the run
    (1 = success 1 from the first step on). Before enough episodes ended the curve counts 0."""
    if steps.size < 2:
        return np.nan_to_num(success[:, 0])
    x = np.concatenate([[0.0], steps])
    y = np.concatenate([np.zeros((success.shape[0], 1)), np.nan_to_num(success)], axis=1)
    return np.sum((y[:, 1:] + y[:, :-1]) / 2 * np.diff(x), axis=1) / x[-1]


def summarise(approach: str, path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    steps, success, ret, _ = approach_curves(path, summary)
    learn = summary.get("learn", True)
    to_09 = [curves.steps_to(steps, s) for s in success] if learn else [math.nan] * len(success)
    ev = summary.get("eval") or {}
    return {"approach": approach, "label": APPROACHES[approach][1], "learn": learn,
            "seeds": len(success), "env_steps": int(steps[-1]),
            "steps_to_0.9": to_09, "auc": area_under(steps, success).tolist(),
            "final_success": ev.get("success", success[:, -1].tolist()),
            "final_return": ev.get("return", ret[:, -1].tolist()),
            "train_success_end": success[:, -1].tolist(),
            "wall_s": summary.get("study_wall_s", summary.get("wall_s", math.nan)),
            "steps_per_second": summary.get("steps_per_second", math.nan)}


def _pm(values, fmt: str = ".3f") -> str:
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if not v.size:
        return "n/a"
    return f"{v.mean():{fmt}} ± {v.std():{fmt}}" if v.size > 1 else f"{v.mean():{fmt}}"


def _steps_cell(row: dict[str, Any]) -> str:
    if not row["learn"]:
        return "n/a (no learning)"
    v = np.asarray(row["steps_to_0.9"], float)
    hit = v[np.isfinite(v)]
    n = len(v)
    if not hit.size:
        return f"not reached (0/{n} in {_count(row['env_steps'])})"
    text = f"{hit.mean() / 1e3:,.0f}k ± {hit.std() / 1e3:,.0f}k" if hit.size > 1 else \
        f"{hit.mean() / 1e3:,.0f}k"
    return text + ("" if hit.size == n else f" ({hit.size}/{n} reached)")


def _count(steps: float) -> str:
    return f"{steps / 1e6:.1f}M" if steps >= 1e5 else f"{steps / 1e3:.0f}k"


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The study's table (and, for an LLM table, where it disagrees with the oracle)."""
    learner = meta.get("learner", "ppo")
    lines = [f"### Transfer {meta['source_task']} -> {meta['target']}, prior "
             f"`{meta['prior']}`, {meta['seeds']} seeds"
             + ("" if learner == "ppo" else f", learner {learner.upper()}"), "",
             "| approach | env steps to 0.9 success | AUC of success | final success (held-out) "
             "| final return (held-out) | wall time |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {_steps_cell(r)} | {_pm(r['auc'])} | "
                     f"{_pm(r['final_success'])} | {_pm(r['final_return'])} | "
                     f"{r['wall_s']:.0f} s |")
    lines += ["", "Steps to 0.9: mean ± std over the seeds that reached it, on the periodic "
              "held-out evaluations (on the training episodes counted by their start where a run "
              "made none). AUC: area under that curve as a fraction of the run."
              f" Final: {meta['eval_episodes']} held-out episodes per seed. Source: "
              f"`{meta['source']}` ({meta['source_task']}). Whole study "
              f"{meta['wall_s'] / 60:.1f} min on {meta['device']}."]
    if meta.get("agreement"):
        a = meta["agreement"]
        lines += ["", f"The prior agrees with the oracle (top option is one of the oracle's) in "
                  f"{a['agree']}/{a['reachable']} reachable abstract states."]
        if a["disagree"]:
            lines += ["", "| abstract state | prior's top option | oracle's options |",
                      "|---|---|---|"]
            lines += [f"| {d['state']} | {d['top']} ({d['p']:.2f}) | {' / '.join(d['oracle'])} |"
                      for d in a["disagree"]]
    return "\n".join(lines) + "\n"


def prior_agreement(prior: str, task: str) -> dict[str, Any] | None:
    """Per reachable abstract state: does the table's top option belong to the oracle's?"""
    if prior in ("oracle", "none", "uniform") or envs.guidance(task).oracle is None:
        return None
    describe = envs.guidance(task).describe
    table = load_table(prior, task)
    reach = reachable_states(task)
    disagree = []
    for i in reach:
        k = int(np.argmax(table.probs[i]))
        if table.options[k] not in oracle_options(task, i):
            disagree.append({"index": i, "state": describe(i), "top": table.options[k],
                             "p": float(table.probs[i, k]), "oracle": oracle_options(task, i)})
    return {"reachable": len(reach), "agree": len(reach) - len(disagree), "disagree": disagree}


def plot(curves_by_label: dict, path: Path, title: str) -> Path | None:
    return curves.plot_learning_curves(curves_by_label, path, title,
                                       ylabel="success rate (held-out evaluations)")


def write_results(out: Path, results: list[tuple[str, Path, dict]], meta: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    rows, csv_rows, to_plot = [], [], {}
    horizon = max([s.get("env_steps", 0) for _, _, s in results] + [1])
    for approach, path, summary in results:
        steps, success, ret, r = approach_curves(path, summary)
        csv_rows += [{"approach": approach, **x} for x in r]
        rows.append(summarise(approach, path, summary))
        if steps.size == 1:  # a flat line across the plot
            steps, success = np.array([0.0, horizon]), np.repeat(success, 2, axis=1)
        to_plot[APPROACHES[approach][1]] = (steps, success)
    curves.write_csv(out / "results.csv", csv_rows, CSV_COLUMNS)
    atomic_write_text(out / "results.md", markdown(rows, meta))
    atomic_write_json(out / "summary.json", {**meta, "approaches": rows})
    plot(to_plot, out / "transfer.png", f"{meta['source_task']} -> {meta['target']}, prior "
                                        f"{Path(meta['prior']).stem}")
    return rows


def run_study(target: str, prior: str, seeds: int, approaches: tuple[str, ...], out: Path,
              runs_dir: Path, source: str | None = None, overrides: dict[str, Any] | None = None,
              source_overrides: dict[str, Any] | None = None, progress: bool = True,
              learner: str = "ppo") -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import jax
    overrides = dict(overrides or {})
    if learner not in LEARNERS:
        raise ConfigError(f"--learner {learner!r}: valid: {', '.join(LEARNERS)}")
    config_dir, offered = LEARNERS[learner]
    for key in STUDY_KEYS:
        if key in overrides:
            raise ConfigError(f"--set {key}=...: the study sets {key!r} itself; use "
                              f"--{key.replace('_', '-')} or drop it")
    for a in approaches:
        if a not in APPROACHES:
            raise ConfigError(f"--approaches: unknown approach {a!r}; valid: "
                              f"{', '.join(APPROACHES)}")
        if a not in offered:
            raise ConfigError(f"--approaches: approach {a!r} ({APPROACHES[a][1]}) needs the "
                              f"source policy as a teacher option, which --learner {learner} "
                              f"does not have; with it use {', '.join(offered)} or "
                              f"--learner ppo")
    if target not in teacher_tasks():
        raise ConfigError(f"--target {target!r}: valid targets: {', '.join(teacher_tasks())}")
    # Check every approach's configuration and the prior table before training anything.
    checked = {a: approach_configs(a, target, prior, seeds, source or "<source>", out,
                                   overrides, config_dir) for a in approaches}
    with_source = [a for a, (_, run) in checked.items() if run.uses_source]
    if with_source:
        src_config = read_run_config(Path(source))[0] if source else load_config(
            config_dir / "source.yaml", {"runs_dir": str(runs_dir),
                                         **dict(source_overrides or {})})[0]
        config, run = checked[with_source[0]]
        from .. import algos
        made = algos.get(run.algo).make(src_config, guided=False)
        params = jax.eval_shape(made.init_params, jax.random.key(0))  # shapes: nothing trained
        try:  # the check `setup` makes once the source exists, before it is trained
            check_source_fits((src_config.task, params),
                              algos.get(run.algo).make(config, guided=False), target)
        except ConfigError as e:
            raise ConfigError(
                f"--target {target!r}: the source policy ({src_config.task}) cannot act on "
                f"{target}; approaches {', '.join(with_source)} need it: run --approaches "
                f"{' '.join(a for a in approaches if a not in with_source) or '1 2'} ({e})"
            ) from None
    if any(load_yaml(config_dir / f"{APPROACHES[a][0]}.yaml").get("prior", "none") != "none"
           for a in approaches):
        from ..teacher.teacher import resolve_prior
        resolve_prior(prior, target, label="--prior")
    t0 = time.perf_counter()
    source_path = ensure_source(source, runs_dir, dict(source_overrides or {}), progress,
                                config_dir)
    src_config, _ = read_run_config(source_path)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for a in approaches:
        summary = run_approach(a, target, prior, seeds, source_path, out, overrides, progress,
                               config_dir)
        results.append((a, out / APPROACHES[a][0], summary))
    _, run = approach_configs(approaches[0], target, prior, seeds, str(source_path), out,
                              overrides, config_dir)
    dev = jax.devices()[0]
    meta = {"target": target, "prior": prior, "seeds": seeds, "learner": learner,
            "source": str(source_path),
            "source_task": src_config.task, "eval_episodes": run.eval_episodes,
            "wall_s": time.perf_counter() - t0,
            "device": f"{dev.platform} ({getattr(dev, 'device_kind', '')}), "
                      f"{__import__('os').cpu_count()} cores",
            "agreement": prior_agreement(prior, target)}
    rows = write_results(out, results, meta)
    return rows, meta


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jaxrl3m.experiments.transfer",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", default="ColoredDoorKey", help="target task (default: %(default)s)")
    p.add_argument("--prior", default="oracle", help="prior table of the LLM teacher: a JSON "
                   "file in llm_cache/, oracle or uniform (default: %(default)s)")
    p.add_argument("--seeds", type=int, default=4, help="seeds per approach, in one vmap")
    p.add_argument("--source", default=None, help="source policy: a run folder of python -m "
                   "jaxrl3m.train (default: train configs/transfer/source.yaml once)")
    p.add_argument("--approaches", default=None,
                   help=f"comma-separated ids among {', '.join(APPROACHES)} (3k: kickstarting; "
                        f"default: {','.join(DEFAULT_APPROACHES)}, with --learner dqn 1,2,3,4)")
    p.add_argument("--learner", default="ppo", choices=tuple(LEARNERS),
                   help="ppo (default) or dqn (DQN, and DQN-Prior with the LLM teacher as prior)")
    p.add_argument("--runs-dir", default="runs", help="where studies go (default: %(default)s)")
    p.add_argument("--out", default=None, help="the study's folder (default: "
                   "RUNS_DIR/transfer/<target>-<prior>)")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="config keys for every approach, e.g. total_steps=500000")
    p.add_argument("--source-set", dest="source_overrides", nargs="*", default=[],
                   metavar="KEY=VALUE", help="config keys for training the default source")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    try:
        if args.seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
        runs_dir = Path(args.runs_dir) / "transfer"
        stem = Path(args.prior).stem.removeprefix(f"{args.target}-")
        suffix = "" if args.learner == "ppo" else f"-{args.learner}"
        out = Path(args.out) if args.out else runs_dir / f"{args.target}-{stem}{suffix}"
        approaches = args.approaches or ",".join(
            a for a in DEFAULT_APPROACHES if a in LEARNERS[args.learner][1])
        rows, meta = run_study(args.target, args.prior, args.seeds,
                               tuple(a.strip() for a in approaches.split(",") if a.strip()),
                               out, runs_dir, args.source, parse_overrides(args.overrides),
                               parse_overrides(args.source_overrides), not args.no_progress,
                               args.learner)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    print((out / "results.md").read_text())
    print(f"wrote {out / 'results.csv'}, {out / 'results.md'}, {out / 'transfer.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
