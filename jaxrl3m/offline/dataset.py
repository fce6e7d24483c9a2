"""Offline datasets of the tasks: collection, the file format, checks and nested subsets.

    ds = collect(env, policy, params, key, episodes=100_000)       # numpy arrays + metadata
    save(ds, "datasets/DoorKey-expert.npz"); ds = load(path, env)  # checked against the task
    small = ds.subset(0.05, seed=0)                                # nested in ds.subset(0.1, 0)

A dataset holds whole episodes, one per fresh environment (`collector.episodes` with `keep`),
collected on the task's `layouts="train"` split so that evaluation on `layouts="heldout"` never
meets a layout of any dataset. An episode of `T` steps has `T + 1` observations (the last is the
one it ended in, which a truncated episode bootstraps from) and `T` transitions.

Observations are stored compactly: the remembered map as one byte per cell, the joint code
`(tag * 6 + colour) * 3 + state` (at most 197), the pose as three bytes (row, col, direction)
and the carried object as one byte of the same code; 104 bytes for a 10x10 map instead of 320.

File format: one `.npz` (numpy's zip of arrays, compressed) holding the arrays and `meta` (JSON
bytes): plain arrays any tool reads, no pickle, random access per array. Why not flashbax's
Vault: it stores a replay buffer's time-major ring of fixed-shape experience through tensorstore
(a large dependency), while episodes here have varying lengths and boundaries and are read whole
into memory (a 100,000-episode expert set, 2M transitions, is about 10 MB on disk). The metadata
records the task and its options, the policy, epsilon, seed, the layout split, the abstraction
version, counts, success and return statistics and the sha256 of every array, which `load`
checks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core import collector
from ..core.config import ConfigError
from ..envs.types import Observation, mission_of

FORMAT = "jaxrl3m-offline-dataset"
FORMAT_VERSION = 1
NUM_COLOURS, NUM_STATES = 6, 3
TRANSITION_ARRAYS = ("action", "reward", "terminated", "truncated")
EPISODE_ARRAYS = ("episode_length", "episode_return", "episode_success", "episode_policy")
OBS_ARRAYS = ("obs_grid", "obs_pose", "obs_carrying")
ARRAYS = OBS_ARRAYS + TRANSITION_ARRAYS + EPISODE_ARRAYS


class DatasetError(ConfigError):
    """A dataset file that is missing, corrupt, empty or made for another task."""


# ---------------------------------------------------------------------------------------------
# Compact observations
# ---------------------------------------------------------------------------------------------
def cell_code(cells: jax.Array) -> jax.Array:
    """`u8[...]`: the joint byte code of `u8[..., 3]` cells."""
    c = cells.astype(jnp.int32)
    return ((c[..., 0] * NUM_COLOURS + c[..., 1]) * NUM_STATES + c[..., 2]).astype(jnp.uint8)


def cell_decode(code: jax.Array) -> jax.Array:
    """`u8[..., 3]`: the cells of byte codes (inverse of `cell_code`)."""
    c = code.astype(jnp.int32)
    return jnp.stack([c // (NUM_COLOURS * NUM_STATES), (c // NUM_STATES) % NUM_COLOURS,
                      c % NUM_STATES], axis=-1).astype(jnp.uint8)


def encode_obs(obs: Observation) -> dict[str, jax.Array]:
    """The compact form of (a batch of) observations. Observations with a mission (Fetch) are
    refused: the format has no place for it yet, and a dataset without it would train a
    policy that cannot know what to fetch."""
    if mission_of(obs) is not None:
        raise ConfigError("offline datasets do not store a mission (MissionObservation) yet, "
                          "and without it a policy cannot know what to fetch: collect "
                          "datasets of a task without a mission (the DoorKey family, "
                          "KeyCorridor, LockedRoom), or train Fetch online")
    pose = jnp.concatenate([obs.agent_pos, obs.agent_dir[..., None]], axis=-1)
    return {"obs_grid": cell_code(obs.grid), "obs_pose": pose.astype(jnp.uint8),
            "obs_carrying": cell_code(obs.carrying)}


def decode_obs(grid: jax.Array, pose: jax.Array, carrying: jax.Array) -> Observation:
    """Observations from their compact form (inverse of `encode_obs`)."""
    pose = pose.astype(jnp.int32)
    return Observation(grid=cell_decode(grid), agent_pos=pose[..., :2], agent_dir=pose[..., 2],
                       carrying=cell_decode(carrying))


def _keep(tr: collector.Transition):
    """What a dataset keeps of each step and of each episode's last step."""
    step = {**encode_obs(tr.obs), "action": tr.action.astype(jnp.uint8), "reward": tr.reward,
            "terminated": tr.terminated, "truncated": tr.truncated}
    return step, encode_obs(tr.final_obs)


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Dataset:
    """Whole episodes as numpy arrays (see the module docstring) plus `meta`.

    Observation arrays have `O = M + E` rows (episode `e`'s `T_e + 1` observations in a row),
    transition arrays `M` rows, episode arrays `E` rows.
    """

    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def num_episodes(self) -> int:
        return int(self["episode_length"].shape[0])

    @property
    def num_transitions(self) -> int:
        return int(self["action"].shape[0])

    @property
    def obs_index(self) -> np.ndarray:
        """`i32[M]`: the observation each transition starts from (its next is `+ 1`)."""
        lengths = self["episode_length"].astype(np.int64)
        episode = np.repeat(np.arange(len(lengths)), lengths)
        first_step = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        first_obs = first_step + np.arange(len(lengths))
        return (first_obs[episode] + np.arange(len(episode)) - first_step[episode]).astype(np.int32)

    def observations(self, index: np.ndarray | None = None) -> Observation:
        """Decoded observations (all, or rows `index`) as a batch."""
        sel = (lambda a: a) if index is None else (lambda a: a[index])
        return decode_obs(*(jnp.asarray(sel(self[k])) for k in OBS_ARRAYS))

    def episodes(self, index: np.ndarray) -> "Dataset":
        """The episodes `index` (in that order), with metadata counts updated."""
        index = np.asarray(index, np.int64)
        lengths = self["episode_length"].astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        steps = _ranges(starts[index], lengths[index])
        obs = _ranges(starts[index] + index, lengths[index] + 1)
        arrays = {k: self[k][obs] for k in OBS_ARRAYS}
        arrays.update({k: self[k][steps] for k in TRANSITION_ARRAYS})
        arrays.update({k: self[k][index] for k in EPISODE_ARRAYS})
        return Dataset(arrays, {**self.meta, **statistics(arrays)})

    def permutation(self, seed: int) -> np.ndarray:
        """The seeded episode order behind `subset`."""
        return np.random.default_rng(seed).permutation(self.num_episodes)

    def subset(self, fraction: float, seed: int = 0) -> "Dataset":
        """The first `ceil(fraction * E)` episodes of a seeded permutation: for one seed, a
        smaller fraction's episodes are always among a larger one's (nested subsets)."""
        n = subset_size(self.num_episodes, fraction)
        out = self.episodes(self.permutation(seed)[:n])
        out.meta.update(subset={"fraction": fraction, "seed": seed, "of_episodes":
                                self.num_episodes})
        return out


def subset_size(num_episodes: int, fraction: float) -> int:
    """Episodes in a `fraction` subset (at least 1)."""
    if not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise DatasetError(f"fraction {fraction!r} is outside (0, 1]: give the share of the "
                           "dataset's episodes to use, e.g. 0.05 for 5%")
    return max(1, math.ceil(fraction * num_episodes - 1e-9))


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of `arange(s, s + l)` for each pair."""
    if len(lengths) == 0:
        return np.zeros((0,), np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())


def statistics(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Counts, success rate and return statistics of a dataset's arrays."""
    ret, length = arrays["episode_return"], arrays["episode_length"]
    e = len(length)
    return {"episodes": e, "transitions": int(length.sum()),
            "success_rate": float(arrays["episode_success"].mean()) if e else math.nan,
            "return_mean": float(ret.mean()) if e else math.nan,
            "return_std": float(ret.std()) if e else math.nan,
            "return_min": float(ret.min()) if e else math.nan,
            "return_max": float(ret.max()) if e else math.nan,
            "length_mean": float(length.mean()) if e else math.nan}


# ---------------------------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------------------------
_PROGRAMS: dict = {}


def _program(env: Any, policy: Any, batch: int):
    sig = (env, policy, batch)
    if sig not in _PROGRAMS:
        _PROGRAMS[sig] = jax.jit(lambda params, key: collector.episodes(
            env, policy, params, key, batch, keep=_keep))
    return _PROGRAMS[sig]


def collect_arrays(env: Any, policy: Any, params: Any, key: jax.Array, episodes: int,
                   batch: int = 4096, progress: Any = None) -> dict[str, np.ndarray]:
    """The arrays of `episodes` episodes of `policy` (a collector policy) in `env`, collected in
    `jit`ted batches of `batch` fresh environments (each plays exactly one episode)."""
    if episodes < 1:
        raise DatasetError(f"a dataset needs at least 1 episode, got {episodes}")
    batch = min(batch, episodes)
    parts, done, i = [], 0, 0
    while done < episodes:
        stats, steps, ends = jax.device_get(_program(env, policy, batch)(
            params, jax.random.fold_in(key, i)))
        take = min(batch, episodes - done)
        parts.append(_flatten(stats, steps, ends, take))
        done, i = done + take, i + 1
        if progress is not None:
            progress(take)
    return {k: np.concatenate([p[k] for p in parts]) for k in ARRAYS}


def _flatten(stats, steps, ends, take: int) -> dict[str, np.ndarray]:
    """Host-side: `[T, N]` step buffers of the first `take` environments to flat episodes."""
    length = np.asarray(stats.length[:take], np.int64)
    t = steps["action"].shape[0]
    mask = np.arange(t)[None, :] < length[:, None]  # [N, T]
    out = {k: np.swapaxes(steps[k][:, :take], 0, 1)[mask] for k in TRANSITION_ARRAYS}
    # observations: the T steps' observations then the final one, per episode
    obs_mask = np.arange(t + 1)[None, :] <= length[:, None]
    for k in OBS_ARRAYS:
        per_step = np.swapaxes(steps[k][:, :take], 0, 1)  # [N, T, ...]
        full = np.concatenate([per_step, np.zeros_like(per_step[:, :1])], axis=1)
        full[np.arange(take), length] = ends[k][:take]
        out[k] = full[obs_mask]
    out["episode_length"] = length.astype(np.int32)
    out["episode_return"] = np.asarray(stats.ret[:take], np.float32)
    out["episode_success"] = np.asarray(stats.success[:take], bool)
    out["episode_policy"] = np.zeros((take,), np.uint8)  # set by the caller for mixtures
    return out


def env_options(env: Any) -> dict[str, Any]:
    """The environment's options as plain values (what a dataset must match)."""
    return {f.name: getattr(env, f.name) for f in dataclasses.fields(env)}


def abstraction_version(task: str) -> int | None:
    """The version of the task's abstraction (`jaxrl3m.envs.Guidance`), None without one."""
    from .. import envs
    try:
        return envs.guidance(task).version
    except ValueError:
        return None


def make_dataset(arrays: dict[str, np.ndarray], env: Any, **info: Any) -> Dataset:
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": env.name,
            "options": env_options(env), "abstraction_version": abstraction_version(env.name),
            **info,
            **statistics(arrays)}
    return Dataset(arrays, meta)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def save(ds: Dataset, path: str | os.PathLike) -> Path:
    """Writes `ds` to `path` (`.npz`) atomically, with the sha256 of every array in its
    metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**ds.meta, "sha256": {k: sha256(ds[k]) for k in ARRAYS},
            "dtypes": {k: str(ds[k].dtype) for k in ARRAYS},
            "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
                                **{k: ds[k] for k in ARRAYS})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    ds.meta = meta
    return path


def load(path: str | os.PathLike, env: Any = None, check_hashes: bool = True) -> Dataset:
    """Reads a dataset and checks it: the file is whole (every array present, its sha256 as
    recorded, consistent counts) and, with `env`, made for that task with the same options and
    abstraction version. Raises `DatasetError` naming the file, the problem and the fix."""
    path = Path(path)
    rebuild = ("rebuild it with python -m jaxrl3m.collect (python -m jaxrl3m.collect "
               "--recipes rebuilds the standard ones)")
    if not path.is_file():
        raise DatasetError(f"no dataset at {str(path)!r}: {rebuild}")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.files)
            if "meta" not in names:
                raise DatasetError(f"{path} is not a jaxrl3m dataset (no metadata): {rebuild}")
            meta = json.loads(bytes(z["meta"]).decode())
            missing = [k for k in ARRAYS if k not in names]
            if missing:
                raise DatasetError(f"{path} is corrupt: arrays {missing} are missing; {rebuild}")
            arrays = {k: z[k] for k in ARRAYS}
    except DatasetError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError,
            json.JSONDecodeError, UnicodeDecodeError, zlib_error()) as e:
        raise DatasetError(f"{path} is corrupt or not a dataset ({type(e).__name__}: {e}); "
                           f"{rebuild}") from None
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a jaxrl3m dataset (format {meta.get('format')!r}); "
                           f"{rebuild}")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DatasetError(f"{path} has format version {meta.get('format_version')}, this "
                           f"jaxrl3m reads {FORMAT_VERSION}: {rebuild}")
    if check_hashes:
        bad = [k for k in ARRAYS if sha256(arrays[k]) != meta.get("sha256", {}).get(k)]
        if bad:
            raise DatasetError(f"{path} is corrupt: the sha256 of {bad} differs from the one "
                               f"recorded when it was written; {rebuild}")
    ds = Dataset(arrays, meta)
    _check_consistent(ds, path, rebuild)
    if env is not None:
        check_matches(ds, env, path)
    return ds


def zlib_error():
    import zlib
    return zlib.error


def _check_consistent(ds: Dataset, path: Path, rebuild: str) -> None:
    e, m = ds.num_episodes, ds.num_transitions
    if e == 0:
        raise DatasetError(f"{path} is empty (0 episodes): collect at least one episode")
    o = ds["obs_grid"].shape[0]
    lengths = ds["episode_length"]
    problems = []
    if int(lengths.sum()) != m or (lengths < 1).any():
        problems.append(f"episode lengths sum to {int(lengths.sum())}, transitions are {m}")
    if o != m + e:
        problems.append(f"{o} observations for {m} transitions in {e} episodes (want {m + e})")
    for k in TRANSITION_ARRAYS:
        if ds[k].shape[0] != m:
            problems.append(f"{k} has {ds[k].shape[0]} rows, want {m}")
    for k in EPISODE_ARRAYS:
        if ds[k].shape[0] != e:
            problems.append(f"{k} has {ds[k].shape[0]} rows, want {e}")
    if ds.meta.get("episodes") != e or ds.meta.get("transitions") != m:
        problems.append(f"metadata counts ({ds.meta.get('episodes')} episodes, "
                        f"{ds.meta.get('transitions')} transitions) differ from the arrays")
    if problems:
        raise DatasetError(f"{path} is inconsistent: {'; '.join(problems)}; {rebuild}")


def check_matches(ds: Dataset, env: Any, path: Any = "the dataset") -> None:
    """Raises `DatasetError` when `ds` was not made for `env` (task, options, abstraction)."""
    meta = ds.meta
    fix = (f"collect one for this task (python -m jaxrl3m.collect --task {env.name} ...) or "
           "set the run's task and options to the dataset's")
    if meta.get("task") != env.name:
        raise DatasetError(f"{path} holds {meta.get('task')!r} episodes, not {env.name!r}: {fix}")
    want = {k: v for k, v in env_options(env).items() if k != "layouts"}
    have = meta.get("options", {})
    differ = [k for k in want if have.get(k) != want[k]]
    if differ:
        raise DatasetError(f"{path} was collected with other task options ("
                           + ", ".join(f"{k}={have.get(k)!r} there, {want[k]!r} here"
                                       for k in differ) + f"): {fix}")
    version = abstraction_version(env.name)
    if meta.get("abstraction_version") != version:
        raise DatasetError(f"{path} was collected with abstraction version "
                           f"{meta.get('abstraction_version')}, task {env.name!r} has "
                           f"{version}: rebuild it with python -m jaxrl3m.collect")
    grid = ds["obs_grid"].shape[1:]
    if tuple(grid) != tuple(getattr(env, "grid_shape", grid)):
        raise DatasetError(f"{path} has {grid} maps, task {env.name!r} has {env.grid_shape}: "
                           f"{fix}")


def describe(ds: Dataset) -> str:
    m = ds.meta
    return (f"{m['task']}: {m['episodes']} episodes, {m['transitions']} transitions, success "
            f"{m['success_rate']:.3f}, return {m['return_mean']:.3f} +- {m['return_std']:.3f} "
            f"(policy {m.get('policy')})")
