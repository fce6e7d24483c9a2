"""Metrics of runs: `metrics.csv` (append-only), windowed success, steps to a threshold, plots.

The headline learning curve of a run is its periodic held-out evaluation (`eval_success`, every
`eval_every` updates: fresh episodes of the evaluation policy on held-out layouts), which is what
"reaches 0.9 success" is measured on (`curves`, `steps_to`). Training also reports, per update,
the episodes that ended in its rollout and, once they have all ended, those that started in it
(`started_*`); `training_curves` pools the latter over `window` updates (`windowed_success`): a
rate of the episodes that *ended* in a window is biased towards short episodes early in a run.

`metrics.csv` is appended to after every chunk of updates (`MetricsLog`), never rewritten while a
run trains: a run killed mid-write loses at most the line being written, which `read_csv` drops,
and `--resume` cuts the file back to the last checkpoint once, atomically. Any other line that
is not a row of numbers (an edit, a damaged file), or a (seed, update) given twice, is an error
naming the line: `MetricsLog.read` never drops one silently.
"""

from __future__ import annotations

import csv
import io
import math
import os
import textwrap
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ConfigError
from .io import atomic_write_text


def write_csv(path: str | Path, rows: list[dict], columns: Iterable[str]) -> None:
    """Writes `rows` atomically (the previous file stays whole until the new one is)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(_format(r) for r in rows)
    atomic_write_text(path, buf.getvalue())


def _format(row: dict) -> dict:
    return {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}


def _whole_lines(path: str | Path) -> str:
    """A file's text without a cut last line (a writer killed mid-line)."""
    with open(path, newline="") as f:
        text = f.read()
    return text[:text.rfind("\n") + 1] if text and not text.endswith("\n") else text


def read_csv(path: str | Path) -> list[dict]:
    """The rows of a CSV file as numbers where they parse; a partial last row (a writer killed
    mid-line) is dropped."""
    rows = list(csv.DictReader(io.StringIO(_whole_lines(path))))
    return [{k: _num(v) for k, v in row.items()} for row in rows
            if None not in row.values() and None not in row]


class MetricsError(ConfigError):
    """A metrics file that is not what the run wrote."""


class MetricsLog:
    """`metrics.csv` of a run, appended to one chunk of rows at a time (flushed and synced)."""

    def __init__(self, path: str | Path, columns: Iterable[str]):
        self.path, self.columns = Path(path), list(columns)

    def read(self) -> list[dict]:
        """The rows, checked: every complete line a row of numbers under this run's columns,
        each (seed, update) once; only a cut last line (a kill mid-write) is dropped."""
        if not self.path.exists():
            return []
        lines = _whole_lines(self.path).splitlines()
        fix = ("restore the file, or delete that line (the rows after the last checkpoint "
               "are rewritten on --resume)")
        if not lines:
            return []
        if lines[0].split(",") != self.columns:
            raise MetricsError(f"{self.path}: line 1 is not this run's header "
                               f"({','.join(self.columns[:4])},...); {fix}")
        rows, seen = [], set()
        for n, line in enumerate(lines[1:], start=2):
            cells = line.split(",")
            values = [_num(v) for v in cells]
            if len(cells) != len(self.columns) or not all(
                    isinstance(v, (int, float)) for v in values):
                raise MetricsError(f"{self.path}: line {n} is not a row of "
                                   f"{len(self.columns)} numbers ({line[:80]!r}); {fix}")
            row = dict(zip(self.columns, values))
            key = (row["seed"], row["update"])
            if key in seen:
                raise MetricsError(f"{self.path}: line {n} repeats seed {key[0]}, update "
                                   f"{key[1]} (two processes wrote this run?); {fix}")
            seen.add(key)
            rows.append(row)
        return rows

    def truncate(self, last_update: int) -> list[dict]:
        """Keeps the rows up to `last_update` (a resumed run's checkpoint), atomically; returns
        them."""
        rows = [r for r in self.read() if r["update"] <= last_update]
        write_csv(self.path, rows, self.columns)
        return rows

    def append(self, rows: list[dict]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerows(_format(r) for r in rows)
        with open(self.path, "a") as f:
            f.write(buf.getvalue())
            f.flush()
            os.fsync(f.fileno())


def _num(v: str):
    try:
        f = float(v)
    except ValueError:
        return v
    return int(f) if f.is_integer() and "." not in v and "e" not in v.lower() else f


def by_seed(rows: list[dict], key: str) -> np.ndarray:
    """`f64[S, U]`: column `key` per seed (rows ordered by update)."""
    seeds = sorted({r["seed"] for r in rows})
    return np.array([[r[key] for r in rows if r["seed"] == s] for s in seeds], dtype=float)


WINDOW = 5
"""Updates pooled by `windowed_success`."""
MIN_EPISODES = 50
"""Fewest ended episodes in the window for a success rate (NaN below)."""


def windowed_success(success: np.ndarray, episodes: np.ndarray, window: int = WINDOW,
                     min_episodes: int = MIN_EPISODES) -> np.ndarray:
    """Success rate over the episodes ended in the last `window` updates; NaN while fewer than
    `min_episodes` ended there (a rate from a handful of episodes says little)."""
    s = np.nan_to_num(success) * episodes
    cs, ce = np.cumsum(s, -1), np.cumsum(episodes, -1)
    pad = lambda c: np.concatenate([np.zeros(c.shape[:-1] + (window,)), c], -1)[..., :-window]
    num, den = cs - pad(cs), ce - pad(ce)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den >= min_episodes, num / np.maximum(den, 1), np.nan)


def has_column(rows: list[dict], key: str) -> bool:
    """Whether the rows have `key` with at least one finite value."""
    return any(isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) for r in rows)


def evaluation_curves(rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """`(env_steps f[E], success f[S, E], return f[S, E])` of the periodic held-out
    evaluations (`eval_success`, `eval_return`) at the E updates that were evaluated; None
    when the run made none."""
    if not has_column(rows, "eval_success"):
        return None
    evaluated = sorted({r["update"] for r in rows if math.isfinite(r["eval_success"])})
    keep = [r for r in rows if r["update"] in set(evaluated)]
    return (by_seed(keep, "env_steps")[0], by_seed(keep, "eval_success"),
            by_seed(keep, "eval_return"))


def training_curves(rows: list[dict], window: int = WINDOW
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(env_steps f[U], success f[S, U], return f[S, U])` of the training episodes.

    Runs that count episodes by the update they started in (`started_*` columns,
    `collector.STARTED_METRICS`): the success rate of the episodes that started in the last
    `window` updates at each update, placed at that update (known `K` updates later, once they
    have all ended; the last `K` updates are NaN): not biased towards short episodes. The
    return column is then NaN (it is not counted by start). Older runs: the episodes that
    ended in the last `window` updates (`windowed_success`), which early in a run reads high."""
    steps = by_seed(rows, "env_steps")[0]
    if not has_column(rows, "started_episodes"):
        episodes = by_seed(rows, "episodes")
        return (steps, windowed_success(by_seed(rows, "success"), episodes, window),
                windowed_success(by_seed(rows, "return"), episodes, window))
    seeds = sorted({r["seed"] for r in rows})
    updates = len(steps)
    success, episodes = np.zeros((len(seeds), updates)), np.zeros((len(seeds), updates))
    known = np.zeros(updates, bool)
    for r in rows:
        u = int(r["started_update"])
        if 1 <= u <= updates:
            s = seeds.index(r["seed"])
            episodes[s, u - 1] = r["started_episodes"]
            success[s, u - 1] = r["started_success"]
            known[u - 1] = True
    curve = windowed_success(success, episodes, window)
    curve[:, ~known] = np.nan
    return steps, curve, np.full_like(curve, np.nan)


def curves(rows: list[dict], window: int = WINDOW) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The headline curves of a run's metrics rows, `(env_steps f[U], success f[S, U],
    return f[S, U])`: the periodic held-out evaluations where the run made them
    (`evaluation_curves`), else the training episodes' (`training_curves`)."""
    return evaluation_curves(rows) or training_curves(rows, window)


def last_finite(curve: np.ndarray) -> np.ndarray:
    """`f[S]`: each row's last finite value (NaN for a row without one)."""
    curve = np.atleast_2d(np.asarray(curve, float))
    out = np.full(curve.shape[0], np.nan)
    for s, row in enumerate(curve):
        known = np.flatnonzero(np.isfinite(row))
        if known.size:
            out[s] = row[known[-1]]
    return out


def steps_to(env_steps: np.ndarray, curve: np.ndarray, threshold: float = 0.9) -> float:
    """The first `env_steps` at which `curve >= threshold`; NaN if never."""
    hit = np.flatnonzero(np.nan_to_num(curve, nan=-1.0) >= threshold)
    return float(env_steps[hit[0]]) if hit.size else math.nan


def plot_learning_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                         title: str = "", ylabel: str = "success rate",
                         threshold: float | None = 0.9, styles: dict[str, str] | None = None,
                         colors: dict[str, str] | None = None) -> Path | None:
    """One line per label (mean over seeds) with the min-max band; `curves[label] = (steps
    f[U], values f[S, U])`; `styles[label]` a line style, `colors[label]` a colour. Beyond 6 curves the bands are left out
    and the legend goes beside the axes. Written atomically; returns None when matplotlib is
    missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = Path(path)
    many = len(curves) > 6
    fig, ax = plt.subplots(figsize=(10.0, 4.8) if many else (6.4, 4.0))
    for label, (steps, values) in curves.items():
        values = np.atleast_2d(values)
        with warnings.catch_warnings():  # all-NaN columns (no episode ended yet) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, lo, hi = (np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0))
        line, = ax.plot(steps, mean, (styles or {}).get(label, "-"),
                        label=f"{label} ({values.shape[0]} seeds)", color=(colors or {}).get(label))
        if values.shape[0] > 1 and not many:  # the band in its line's colour
            ax.fill_between(steps, lo, hi, alpha=0.2, color=line.get_color())
    if threshold is not None:
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    if many:  # long titles span the legend too
        fig.suptitle(title)
    else:
        ax.set_title(textwrap.fill(title, 60), fontsize=10)
    ax.grid(alpha=0.3)
    if many:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    else:
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
