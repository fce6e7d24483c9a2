"""Optimisation pieces every gradient-based algorithm shares."""

from __future__ import annotations

from typing import Any, Callable

import jax
import optax

from ..core.parallel import shard_envs


def minibatch_epochs(loss_fn: Callable[[Any, Any], tuple[jax.Array, dict]],
                     tx: optax.GradientTransformation, params: Any, opt_state: Any, batch: Any,
                     key: jax.Array, epochs: int, num_minibatches: int
                     ) -> tuple[tuple[Any, Any], dict]:
    """`epochs` passes over `batch` (a pytree with a leading sample axis), each shuffled and cut
    into `num_minibatches` minibatches, one gradient step per minibatch, all in `lax.scan`.

    `loss_fn(params, minibatch) -> (loss, stats)`. Returns `((params, opt_state), stats)` with
    each stat `f32[epochs, num_minibatches]`.
    """
    size = jax.tree.leaves(batch)[0].shape[0]

    def epoch(carry, key):
        perm = jax.random.permutation(key, size)
        mbs = jax.tree.map(lambda x: x[perm].reshape(num_minibatches, -1, *x.shape[1:]), batch)
        # On a mesh, each device of a seed takes a slice of every minibatch (the gradient is
        # then summed across them): the same minibatches as on one device, computed in parts.
        mbs = shard_envs(mbs, axis=1)

        def minibatch(carry, mb):
            mb = shard_envs(mb)
            params, opt_state = carry
            grads, stats = jax.grad(loss_fn, has_aux=True)(params, mb)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), stats

        return jax.lax.scan(minibatch, carry, mbs)

    return jax.lax.scan(epoch, (params, opt_state), jax.random.split(key, epochs))


def adam(lr: float | jax.Array, max_grad_norm: float | jax.Array, total_steps: int,
         anneal: bool) -> optax.GradientTransformation:
    """Adam (eps 1e-5) after global-norm clipping; with `anneal`, the learning rate decays
    linearly to 0 over `total_steps` gradient steps."""
    rate = (lambda count: lr * (1.0 - jax.numpy.minimum(count, total_steps) / total_steps)) \
        if anneal else lr
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(rate, eps=1e-5))
