"""One collector: environment steps for any policy, in `lax.scan`, with episode statistics.

    carry = collector.reset(env, key, num_envs)
    carry, tr = collector.rollout(env, policy, params, carry, key, num_steps)   # tr: [T, N]
    stats = collector.episodes(env, policy, params, key, num_episodes)         # one episode each

A policy is `policy(params, obs [N], key) -> (action i32[N], extras)`: `extras` is any pytree the
learner wants kept per step (PPO keeps its log-probabilities, values and input codes). `Sample`
and `Greedy` turn a `logits(params, obs)` function into a policy, `Random` acts uniformly.
A recurrent policy (a Decision Transformer keeps its last K steps) also has
`initial_memory(params, obs) -> memory`, is called `policy(params, obs, key, memory) -> (action,
extras, memory)` and sees each step's outcome through `end_step(params, memory, reward, done) ->
memory`; `reset(..., policy, params)` starts its memory. Policies must be hashable (frozen dataclasses or module-level functions) so that one compiled
program serves every call with the same shapes; parameters (a network's weights, a teacher's
table) are the `params` argument, never closures.

The environment follows the library's autoreset convention (`jaxrl3m.envs.types.TimeStep`): a
step that ends an episode already starts the next one, `reward`, `terminated`, `truncated`
describe the transition that ended and `final_obs` is the observation it ended in. The
collector adds, per step, the return and length of the episode that ended there, so episode
statistics are computed here once for every user: training metrics, held-out evaluation, the
teacher acting alone, random rollouts and the throughput benchmark. On a device mesh
(`jaxrl3m.core.parallel.using`), the carry's environments are placed on the mesh's `env` axis.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from ..envs.autoreset import batch_step
from ..envs.types import Observation
from .parallel import shard_envs

Policy = Callable[[Any, Observation, jax.Array], tuple[jax.Array, Any]]


class Carry(struct.PyTreeNode):
    """What the collector carries from one rollout to the next (`[N]` environments)."""

    state: Any  # the environments' states
    obs: Observation  # the observations the next actions are chosen from
    ep_return: jax.Array  # f32[N]: return so far of each environment's current episode
    ep_length: jax.Array  # i32[N]: steps so far of each environment's current episode
    memory: Any = None  # a recurrent policy's memory (None: the policy has none)
    # Episodes by the rollout they started in (`reset(num_steps=...)`, training's collectors):
    rollouts: Any = None  # i32[]: rollouts done
    by_start: Any = None  # f32[N, K + 1, 2]: (ended, succeeded) per start rollout, a ring


class Transition(struct.PyTreeNode):
    """One step of `N` environments (a rollout stacks them: `[T, N]`)."""

    obs: Observation  # the observation the action was chosen from
    action: jax.Array  # i32
    reward: jax.Array  # f32
    terminated: jax.Array  # bool: the episode reached an absorbing state (success or lava)
    truncated: jax.Array  # bool: the time limit cut the episode
    final_obs: Observation  # the observation the step ended in (before an autoreset)
    episode_return: jax.Array  # f32: return of the episode that ended at this step, else 0
    episode_length: jax.Array  # i32: length of the episode that ended at this step, else 0
    extras: Any  # the policy's per-step outputs

    @property
    def done(self) -> jax.Array:
        return self.terminated | self.truncated

    @property
    def success(self) -> jax.Array:
        """bool: an episode ended here with a positive reward (the door opened)."""
        return self.terminated & (self.reward > 0)


class EpisodeStats(struct.PyTreeNode):
    """One finished episode per environment (`episodes`)."""

    success: jax.Array  # bool[N]: the episode ended with a positive reward
    lava: jax.Array  # bool[N]: the episode ended in an absorbing state without reward (lava)
    ret: jax.Array  # f32[N]: the episode's return
    length: jax.Array  # i32[N]: steps taken


# ---------------------------------------------------------------------------------------------
# Policies
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Sample:
    """Samples actions from `logits(params, obs) -> f32[N, A]` (logits or log-probabilities);
    with `greedy`, takes the most likely action instead."""

    logits: Callable[[Any, Observation], jax.Array]
    greedy: bool = False

    def __call__(self, params: Any, obs: Observation, key: jax.Array):
        logits = self.logits(params, obs)
        if self.greedy:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32), None
        return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32), None


@dataclasses.dataclass(frozen=True)
class Random:
    """Uniformly random actions (ignores `params`)."""

    num_actions: int

    def __call__(self, params: Any, obs: Observation, key: jax.Array):
        n = obs.agent_dir.shape[0]
        return jax.random.randint(key, (n,), 0, self.num_actions, jnp.int32), None


# ---------------------------------------------------------------------------------------------
# Stepping
# ---------------------------------------------------------------------------------------------
def reset(env: Any, key: jax.Array, num_envs: int, policy: Any = None, params: Any = None,
          num_steps: int | None = None) -> Carry:
    """`num_envs` fresh episodes (layouts drawn from `key`); a recurrent `policy`'s memory
    starts from `policy.initial_memory(params, obs)`. With `num_steps` (the rollout length of a
    learner), the carry also counts episodes by the rollout they started in, which
    `episode_metrics` reports once all of them have ended (`STARTED_METRICS`)."""
    ts = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    memory = policy.initial_memory(params, ts.obs) if is_recurrent(policy) else None
    lag = start_lag(env, num_steps)
    rollouts, by_start = ((None, None) if lag is None else
                          (jnp.zeros((), jnp.int32), jnp.zeros((num_envs, lag + 1, 2))))
    return shard_envs(Carry(state=ts.state, obs=ts.obs,
                            ep_return=jnp.zeros((num_envs,), jnp.float32),
                            ep_length=jnp.zeros((num_envs,), jnp.int32), memory=memory,
                            rollouts=rollouts, by_start=by_start))


def start_lag(env: Any, num_steps: int | None) -> int | None:
    """Rollouts after the one an episode started in by which it has surely ended:
    `ceil((max_steps - 1) / num_steps)` (None without a rollout length or a time limit)."""
    horizon = horizon_of(env)
    if num_steps is None or not horizon:
        return None
    return max(1, -(-(horizon - 1) // num_steps))


def is_recurrent(policy: Any) -> bool:
    return hasattr(policy, "initial_memory")


def step(env: Any, policy: Policy, params: Any, carry: Carry, key: jax.Array
         ) -> tuple[Carry, Transition]:
    """One action in every environment, with the returns and lengths of the episodes that end."""
    memory = carry.memory
    if memory is None:
        action, extras = policy(params, carry.obs, key)
    else:
        action, extras, memory = policy(params, carry.obs, key, memory)
    ts = batch_step(env, carry.state, action)
    done = ts.terminated | ts.truncated
    if memory is not None:
        memory = policy.end_step(params, memory, ts.reward, done)
    ep_return = carry.ep_return + ts.reward
    ep_length = carry.ep_length + 1
    tr = Transition(obs=carry.obs, action=action, reward=ts.reward, terminated=ts.terminated,
                    truncated=ts.truncated, final_obs=ts.final_obs,
                    episode_return=jnp.where(done, ep_return, 0.0),
                    episode_length=jnp.where(done, ep_length, 0), extras=extras)
    carry = carry.replace(state=ts.state, obs=ts.obs, ep_return=jnp.where(done, 0.0, ep_return),
                          ep_length=jnp.where(done, 0, ep_length), memory=memory)
    return shard_envs(carry), tr


def rollout(env: Any, policy: Policy, params: Any, carry: Carry, key: jax.Array,
            num_steps: int) -> tuple[Carry, Transition]:
    """`num_steps` steps of every environment in one `lax.scan`; transitions are `[T, N]`.
    Episodes run across rollouts: pass the returned carry to the next call."""
    new, tr = jax.lax.scan(lambda c, k: step(env, policy, params, c, k), carry,
                           jax.random.split(key, num_steps))
    if carry.by_start is not None:
        new = new.replace(**count_starts(tr, carry.rollouts, carry.by_start))
    return new, tr


def count_starts(tr: Transition, rollouts: jax.Array, by_start: jax.Array) -> dict:
    """The carry's count of episodes by start rollout, after the rollout `tr` (number
    `rollouts + 1`): each episode that ended in it is added to the slot of the rollout it
    started in (`length` steps back), in a ring of `K + 1` slots; the slot of this rollout is
    emptied first (it last held rollout `r - K - 1`'s, reported by the previous call)."""
    t, n = tr.reward.shape
    slots = by_start.shape[1]
    r = rollouts + 1
    step_idx = jnp.arange(t, dtype=jnp.int32)[:, None]
    age = jnp.clip(-((step_idx - tr.episode_length + 1) // t), 0, slots - 1)  # [T, N]
    done = tr.done.astype(jnp.float32)
    onehot = jax.nn.one_hot((r - age) % slots, slots, dtype=jnp.float32) * done[..., None]
    added = jnp.stack([onehot.sum(0), (onehot * tr.success[..., None]).sum(0)], -1)
    keep = (jnp.arange(slots) != r % slots)[None, :, None]
    return {"rollouts": r, "by_start": by_start * keep + added}


def horizon_of(env: Any) -> int | None:
    """The environment's episode time limit (None when it has none to tell)."""
    return getattr(env, "horizon", None) or getattr(env, "max_steps", None)


def at_truncations(tr: Transition, fn: Callable[[Observation], Any],
                   max_steps: int | None = None) -> Any:
    """`fn(final observation)` at the steps where an episode was truncated (the time limit cut
    it: its value is bootstrapped from there), zeros elsewhere; every leaf `[T, N, ...]`.

    `fn` maps a batch of observations to a pytree of `[B, ...]` arrays. It runs on a gathered
    batch of `N * ceil(T / max_steps)` observations, not on all `T * N`: an environment truncates
    at most once every `max_steps` steps, so that many slots hold every truncation of the rollout
    (`max_steps=None`: all `T * N`). Skipped when no seed truncated an episode (a real `cond`
    under `vmap` over seeds: `jaxrl3m.core.parallel.any_seed`).
    """
    from .parallel import any_seed
    t, n = tr.reward.shape
    cut = (tr.truncated & ~tr.terminated).reshape(-1)
    cap = t * n if max_steps is None else min(t * n, n * -(-t // max_steps))
    flat_obs = jax.tree.map(lambda x: x.reshape(t * n, *x.shape[2:]), tr.final_obs)
    shapes = jax.eval_shape(fn, jax.tree.map(lambda x: x[:cap], flat_obs))

    def zeros():
        return jax.tree.map(lambda s: jnp.zeros((t * n, *s.shape[1:]), s.dtype), shapes)

    def compute():
        # The unused slots repeat index 0, whose value is then fn of its own observation.
        idx = jnp.nonzero(cut, size=cap, fill_value=0)[0]
        out = fn(jax.tree.map(lambda x: x[idx], flat_obs))
        return jax.tree.map(lambda z, o: z.at[idx].set(o), zeros(), out)

    full = jax.lax.cond(any_seed(cut.any()), compute, zeros)
    return jax.tree.map(lambda x: jnp.where(cut.reshape(-1, *([1] * (x.ndim - 1))), x, 0)
                        .reshape(t, n, *x.shape[1:]), full)


STARTED_METRICS = ("started_update", "started_episodes", "started_success")
"""`episode_metrics(tr, carry)`'s count of episodes by the update they *started* in: those
of update `started_update` (K = `start_lag` updates back, 0 while there is none), how many,
and their success rate. All of them have ended, so the rate is not biased towards short
episodes as the rate of the episodes that *ended* in an update is (early in a run only the
quick successes and deaths have ended; time-limit failures end `max_steps` later)."""


def episode_metrics(tr: Transition, carry: Carry | None = None) -> dict[str, jax.Array]:
    """Statistics of the episodes that ended in a rollout: `episodes` (how many), `return`,
    `success` and `length` (means over them; NaN when none ended). With the `carry` after the
    rollout (one `reset` with `num_steps`), also `STARTED_METRICS`."""
    done = tr.done
    count = done.sum()

    def mean(x):
        total = jnp.sum(jnp.where(done, x, 0).astype(jnp.float32))
        return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)

    out = {"episodes": count.astype(jnp.float32), "return": mean(tr.episode_return),
           "success": mean(tr.success), "length": mean(tr.episode_length)}
    if carry is not None and carry.by_start is not None:
        slots = carry.by_start.shape[1]
        first = carry.rollouts - (slots - 1)  # the start rollout whose episodes have all ended
        ended, won = carry.by_start[:, (carry.rollouts + 1) % slots].sum(0)
        ended = jnp.where(first >= 1, ended, 0.0)
        out.update(started_update=jnp.maximum(first, 0).astype(jnp.float32),
                   started_episodes=ended,
                   started_success=jnp.where(ended > 0, won / jnp.maximum(ended, 1), jnp.nan))
    return out


def episodes(env: Any, policy: Policy, params: Any, key: jax.Array,
             num_episodes: int, keep: Callable[[Transition], tuple[Any, Any]] | None = None
             ) -> EpisodeStats | tuple[EpisodeStats, Any, Any]:
    """Exactly one episode in each of `num_episodes` fresh environments, stepping (`step`) until
    every one has ended (each ends by the time limit at the latest); jit it with `env`,
    `policy`, `num_episodes` and `keep` static.

    With `keep(tr) -> (per_step, per_end)` (a module-level function: offline datasets) it
    returns `(stats, steps, ends)`: `steps` stacks `per_step` of every step, `[max_steps, N]`
    (rows at or after an episode's `length` are leftovers: mask them), `ends` holds `per_end`
    of the step each episode ended on, `[N]`.
    """
    k_reset, k_act = jax.random.split(key)
    zeros = jnp.zeros((num_episodes,), bool)
    init = EpisodeStats(success=zeros, lava=zeros, ret=jnp.zeros((num_episodes,)),
                        length=jnp.zeros((num_episodes,), jnp.int32))
    carry0 = reset(env, k_reset, num_episodes, policy, params)
    kept = None
    if keep is not None:
        horizon = horizon_of(env)
        shapes = jax.eval_shape(lambda c: keep(step(env, policy, params, c, k_act)[1]), carry0)
        kept = (jax.tree.map(lambda s: jnp.zeros((horizon, *s.shape), s.dtype), shapes[0]),
                jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes[1]))

    def body(loop):
        t, carry, live, stats, kept = loop
        carry, tr = step(env, policy, params, carry, jax.random.fold_in(k_act, t))
        ended = live & tr.done
        stats = EpisodeStats(success=stats.success | (ended & tr.success),
                             lava=stats.lava | (ended & tr.terminated & (tr.reward <= 0)),
                             ret=jnp.where(ended, tr.episode_return, stats.ret),
                             length=jnp.where(ended, tr.episode_length, stats.length))
        if kept is not None:
            per_step, per_end = keep(tr)
            sel = lambda new, old: jnp.where(ended.reshape(-1, *([1] * (new.ndim - 1))), new, old)
            kept = (jax.tree.map(lambda buf, x: buf.at[t].set(x), kept[0], per_step),
                    jax.tree.map(sel, per_end, kept[1]))
        return t + 1, carry, live & ~tr.done, stats, kept

    loop = (jnp.zeros((), jnp.int32), carry0, ~zeros, init, kept)
    out = jax.lax.while_loop(lambda loop: loop[2].any(), body, loop)
    return out[3] if keep is None else (out[3], *out[4])
