"""Orbax checkpoints of training state, PRNG keys included.

Typed PRNG keys are stored as their raw key data and wrapped back on restore. Orbax writes each
checkpoint to a temporary folder and renames it when complete, so a stopped run never leaves a
half-written checkpoint behind. Once orbax has finished, a manifest of the sha256 of every file
of the checkpoint is written into its folder (`jaxrl3m.core.integrity`); a restore verifies it
first, so bit rot or a partial copy is an error naming the file, never a silently different
state. `restore_newest` falls back to the newest checkpoint that verifies, and moves the damaged
newer ones aside (to `<run>/damaged_checkpoints/`), saying so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import shutil
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from ..errors import ConfigError
from . import integrity


class CheckpointError(ConfigError):
    """A checkpoint that cannot be written or read back as it was written."""


class CheckpointMismatch(CheckpointError):
    """An intact checkpoint of another state (other keys, another version): no older one fits
    better, so no fallback."""


def checkpoint_steps(folder: str | Path) -> list[int]:
    """The steps of the checkpoint folders in `folder`, newest first, from its listing alone
    (no orbax manager is opened: for a run folder another process may own)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir()),
                  reverse=True)


def _not_this_state(verified: bool) -> str:
    """Why a checkpoint does not fit, as far as its manifest tells."""
    return ("it verifies against its manifest, so it was written by another version of jaxrl3m "
            "or with other network or size keys" if verified else
            "it was written by another version of jaxrl3m, with other network or size keys, or "
            "it is damaged")


def _is_key(x) -> bool:
    return (isinstance(x, (jax.Array, jax.ShapeDtypeStruct))
            and jnp.issubdtype(x.dtype, jax.dtypes.prng_key))


def _key_data(x: Any) -> Any:
    return (jax.random.key_data(x) if isinstance(x, jax.Array)
            else jax.eval_shape(jax.random.key_data, x))


def _key_impl(x: Any) -> Any:
    # a template of shapes only (`runs.state_shapes`) carries the implementation in its dtype
    return jax.random.key_impl(x) if isinstance(x, jax.Array) else x.dtype._impl


def _unkey(tree: Any) -> Any:
    return jax.tree.map(lambda x: _key_data(x) if _is_key(x) else x, tree)


def _like(d: Any, t: Any) -> Any:
    """A restored leaf placed as the template's: orbax returns committed arrays, a fresh state
    is uncommitted, and a program traced for one form is compiled again for the other (every
    resume and every evaluation of a run folder paid a second compilation). Committed
    templates (placed on a mesh) keep orbax's arrays, which already follow their shardings."""
    if isinstance(d, jax.Array) and (isinstance(t, jax.ShapeDtypeStruct) or
                                     (isinstance(t, jax.Array) and not t.committed)):
        return jax.device_put(np.asarray(d))
    return d


def _rekey(data: Any, template: Any) -> Any:
    def one(d, t):
        if _is_key(t):
            return jax.random.wrap_key_data(_like(d, t), impl=_key_impl(t))
        return _like(d, t)

    return jax.tree.map(one, data, template)


class Checkpoints:
    """The checkpoints of one run: `save(step, tree)`, `latest()`, `restore(step, template)`."""

    def __init__(self, directory: str | Path, max_to_keep: int = 2):
        self.directory = Path(directory).resolve()
        self.manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                                                 create=True))

    def save(self, step: int, tree: Any) -> None:
        """Writes checkpoint `step` and, once orbax has finished, its manifest (process 0).
        A full disk (or any failed write) is a CheckpointError that names the folder; the
        checkpoints written before stay as they were."""
        try:
            self.manager.save(step, args=ocp.args.StandardSave(_unkey(tree)))
            self.manager.wait_until_finished()
            if jax.process_index() == 0:
                integrity.write_manifest(self.step_dir(step))
        except Exception as e:  # noqa: BLE001 - orbax wraps OS errors in many kinds
            err = _os_error(e)
            what = (f"{err.strerror or err}" if err is not None
                    else f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
            free = shutil.disk_usage(self.directory).free / 1e6
            older = [s for s in self.manager.all_steps() if s < step]
            raise CheckpointError(
                f"could not write checkpoint {step} in {self.directory} ({what}; {free:,.0f} MB "
                f"free there). " + ("Free some space (or fix the folder's permissions) and "
                                    f"--resume: checkpoint {max(older)} is intact."
                                    if older else "Free some space (or fix the folder's "
                                    "permissions) and train again.")) from None

    def step_dir(self, step: int) -> Path:
        return self.directory / str(int(step))

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def steps(self) -> list[int]:
        """Every complete checkpoint's step, newest first."""
        return sorted(self.manager.all_steps(), reverse=True)

    def verify(self, step: int) -> bool:
        """Checks checkpoint `step` against its manifest (False: it has none, as checkpoints
        written before 2026-12-04; IntegrityError: a file differs or is missing)."""
        return integrity.verify_manifest(self.step_dir(step))

    def restore_newest(self, template: Any, log=None) -> tuple[int, Any] | None:
        """`(step, tree)` of the newest checkpoint that verifies and restores; None if there is
        no checkpoint. Damaged newer ones are moved to `<run>/damaged_checkpoints/` (so that
        training can write those steps again) and `log` is told which and why."""
        log = log or (lambda m: print(m, file=sys.stderr))
        steps = self.steps()
        damaged: list[tuple[int, str]] = []
        for step in steps:
            try:
                tree = self.restore(step, template)
            except CheckpointMismatch:
                raise
            except CheckpointError as e:
                damaged.append((step, str(e)))
                continue
            if damaged:
                self._set_aside([s for s, _ in damaged])
                log(f"warning: checkpoint(s) {', '.join(str(s) for s, _ in damaged)} damaged "
                    f"({damaged[0][1]}); moved to {self.directory.parent / 'damaged_checkpoints'}"
                    f"; using checkpoint {step}, the newest that verifies")
            return step, tree
        if len(damaged) == 1:
            raise CheckpointError(damaged[0][1])
        if damaged:
            raise CheckpointError(
                f"no checkpoint in {self.directory} can be restored (steps "
                f"{', '.join(str(s) for s, _ in damaged)}); the newest: {damaged[0][1]}")
        return None

    def _set_aside(self, steps: list[int]) -> None:
        aside = self.directory.parent / "damaged_checkpoints"
        aside.mkdir(exist_ok=True)
        for s in steps:
            dst = aside / f"{s}-{time.strftime('%Y%m%dT%H%M%S')}"
            n = 1
            while dst.exists():
                n += 1
                dst = dst.with_name(f"{dst.name.split('.')[0]}.{n}")
            self.step_dir(s).rename(dst)
        self.manager.reload()

    def restore(self, step: int, template: Any) -> Any:
        """The tree saved at `step`, shaped like `template` (arrays, or `jax.ShapeDtypeStruct`s
        such as `runs.state_shapes`'; typed keys restored), placed as a fresh state is. A state
        field that is None in `template` may be missing from the checkpoint: checkpoints
        written before the field existed (e.g. `PPOState.options`, the posterior teacher's
        estimates) still restore."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unkey(template))
        try:
            verified = self.verify(step)
        except integrity.IntegrityError as e:
            raise CheckpointError(f"checkpoint {step} in {self.directory} is damaged: {e}"
                                  ) from None
        mismatch = self._mismatch(step, abstract)
        if mismatch:
            raise CheckpointMismatch(
                f"checkpoint {step} in {self.directory} does not fit this run's state "
                f"({_not_this_state(verified)}): "
                f"{mismatch}. Train the run again (run folders written before the core "
                "refactor of 2026-11-22 cannot be resumed)")
        try:
            try:
                data = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception:
                data = self._restore_without_none_fields(step, abstract)
        except Exception as e:  # orbax raises many kinds: tree, shape, dtype, missing files
            raise CheckpointError(
                f"checkpoint {step} in {self.directory} does not fit this run's state "
                f"({_not_this_state(verified)}): "
                f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}. Train "
                "the run again (run folders written before the core refactor of 2026-11-22 "
                "cannot be resumed)") from None
        return _rekey(data, template)

    def _mismatch(self, step: int, abstract: Any) -> str:
        """What differs between the checkpoint's stored shapes (orbax's metadata, read without
        the arrays) and the template's, or "" (also when the metadata cannot be read). Checked
        before a restore: a restore that fails half-way leaves orbax's reads pending, and
        hundreds of lines of asyncio errors follow the message."""
        from flax import serialization

        def flat(tree):
            out = {}
            for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
                key = "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))))
                               for k in path)
                out[key] = (tuple(leaf.shape), np.dtype(leaf.dtype))
            return out

        try:
            from etils import epath
            meta = ocp.StandardCheckpointHandler().metadata(
                epath.Path(self.step_dir(step) / "default"))
            stored = flat(getattr(meta, "tree", meta))
        except Exception:  # noqa: BLE001 - an older layout: orbax's restore will tell
            return ""
        want = flat(serialization.to_state_dict(abstract))
        for key, (shape, dtype) in want.items():
            if key not in stored:
                return f"it has no {key!r}"
            if stored[key] != (shape, dtype):
                return (f"{key!r} is {stored[key][1]}{list(stored[key][0])} there, "
                        f"{dtype}{list(shape)} here")
        extra = sorted(set(stored) - set(want))
        return f"it has {extra[0]!r}, which this run's state has not" if extra else ""

    def _restore_without_none_fields(self, step: int, abstract: Any) -> Any:
        from flax import serialization

        def prune(d):
            return {k: prune(v) if isinstance(v, dict) else v for k, v in d.items()
                    if v is not None}

        def fill(t, d):  # the template's None fields put back
            return {k: (None if v is None else fill(v, d[k]) if isinstance(v, dict) else d[k])
                    for k, v in t.items()}

        full = serialization.to_state_dict(abstract)
        data = self.manager.restore(step, args=ocp.args.StandardRestore(prune(full)))
        return serialization.from_state_dict(abstract, fill(full, data))

    def close(self) -> None:
        self.manager.close()

    def __enter__(self) -> "Checkpoints":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _os_error(e: BaseException) -> OSError | None:
    """The OSError behind an exception (orbax and tensorstore wrap them), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError):
            return e
        e = e.__cause__ or e.__context__
    return None

