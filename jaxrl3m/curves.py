"""Learning curves: reading `metrics.csv`, smoothing success, steps to a threshold, plots.

Training reports, per update, the success rate over the episodes that ended during that update's
rollout and how many did. `windowed_success` pools the episodes of the last `window` updates
(weighted by their counts), which is what "reaches 0.9 success" is measured on.
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from .teacher.table import atomic_write_text


def write_csv(path: str | Path, rows: list[dict], columns: Iterable[str]) -> None:
    """Writes `rows` atomically (the previous file stays whole until the new one is)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _num(v) for k, v in row.items()} for row in csv.DictReader(f)]


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


def windowed_success(success: np.ndarray, episodes: np.ndarray, window: int = 5,
                     min_episodes: int = 50) -> np.ndarray:
    """Success rate over the episodes ended in the last `window` updates; NaN while fewer than
    `min_episodes` ended there (a rate from a handful of episodes says little)."""
    s = np.nan_to_num(success) * episodes
    cs, ce = np.cumsum(s, -1), np.cumsum(episodes, -1)
    pad = lambda c: np.concatenate([np.zeros(c.shape[:-1] + (window,)), c], -1)[..., :-window]
    num, den = cs - pad(cs), ce - pad(ce)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den >= min_episodes, num / np.maximum(den, 1), np.nan)


def steps_to(env_steps: np.ndarray, curve: np.ndarray, threshold: float = 0.9) -> float:
    """The first `env_steps` at which `curve >= threshold`; NaN if never."""
    hit = np.flatnonzero(np.nan_to_num(curve, nan=-1.0) >= threshold)
    return float(env_steps[hit[0]]) if hit.size else math.nan


def plot_learning_curves(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                         title: str = "", ylabel: str = "success rate (last 5 updates)",
                         threshold: float | None = 0.9) -> Path | None:
    """One line per label (mean over seeds) with the min-max band; `curves[label] = (steps
    f[U], values f[S, U])`. Written atomically; returns None when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    path = Path(path)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (steps, values) in curves.items():
        values = np.atleast_2d(values)
        with warnings.catch_warnings():  # all-NaN columns (no episode ended yet) stay NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, lo, hi = (np.nanmean(values, 0), np.nanmin(values, 0), np.nanmax(values, 0))
        ax.plot(steps, mean, label=f"{label} ({values.shape[0]} seeds)")
        if values.shape[0] > 1:
            ax.fill_between(steps, lo, hi, alpha=0.2)
    if threshold is not None:
        ax.axhline(threshold, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("environment steps")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
