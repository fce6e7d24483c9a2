"""Orbax checkpoints of training state, PRNG keys included.

Typed PRNG keys are stored as their raw key data and wrapped back on restore. Orbax writes each
checkpoint to a temporary folder and renames it when complete, so a stopped run never leaves a
half-written checkpoint behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


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
        self.manager.save(step, args=ocp.args.StandardSave(_unkey(tree)))
        self.manager.wait_until_finished()

    def latest(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, step: int, template: Any) -> Any:
        """The tree saved at `step`, shaped like `template` (arrays, or `jax.ShapeDtypeStruct`s
        such as `runs.state_shapes`'; typed keys restored), placed as a fresh state is. A state
        field that is None in `template` may be missing from the checkpoint: checkpoints
        written before the field existed (e.g. `PPOState.options`, the posterior teacher's
        estimates) still restore."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _unkey(template))
        try:
            try:
                data = self.manager.restore(step, args=ocp.args.StandardRestore(abstract))
            except Exception:
                data = self._restore_without_none_fields(step, abstract)
        except Exception as e:  # orbax raises many kinds: tree, shape, dtype, missing files
            from .config import ConfigError
            raise ConfigError(
                f"checkpoint {step} in {self.directory} does not fit this run's state (it was "
                f"written by another version of jaxrl3m, with other network or size keys, or "
                f"it is damaged): {type(e).__name__}: {str(e).splitlines()[0][:300]}. Train "
                "the run again (run folders written before the core refactor of 2026-11-22 "
                "cannot be resumed)") from None
        return _rekey(data, template)

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
