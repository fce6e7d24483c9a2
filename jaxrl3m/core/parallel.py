"""Seeds as a named `vmap` axis, and predicates that all seeds share.

Under `jax.vmap`, a `lax.cond` whose predicate differs between seeds becomes a `select`: both
branches run for every seed. Training code that wants a real skip (the teacher while
`lambda_t = 0`, bootstrap values when no episode was truncated) reduces its predicate over the seed
axis with `any_seed`, which makes it one value for all seeds, so the `cond` stays a `cond`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

SEED_AXIS = "seed"


def vmap_seeds(fn: Callable, in_axes: Any = 0) -> Callable:
    """`jax.vmap(fn)` over seeds, with the axis named so that `any_seed` can reduce over it."""
    return jax.vmap(fn, in_axes=in_axes, axis_name=SEED_AXIS)


def any_seed(pred: jax.Array) -> jax.Array:
    """`bool[]`: `pred` true for at least one seed of the enclosing `vmap_seeds` (or `pred`
    itself outside one). A `lax.cond` on the result skips its branch for real."""
    pred = jnp.asarray(pred, bool)
    try:
        return jax.lax.psum(pred.astype(jnp.int32), SEED_AXIS) > 0
    except NameError:  # not under vmap_seeds: one seed
        return pred
