"""Offline RL from a fixed dataset, with or without an LLM prior: CQL, CQL-Prior, BC, BC x prior.

    algo = make_offline(OfflineConfig(task="DoorKey"), guided=True, objective="cql")  # CQL-Prior
    data = offline_data(dataset, algo.network, prior, algo.config.prior_floor)
    state, metrics = jax.jit(algo.train)(jax.random.key(0), Inputs(teacher=prior, data=data))

`cql` (registered `algo: cql`), one gradient step on a batch of `batch_size` transitions drawn
uniformly from the dataset (or its first `data.size` transitions, see `OfflineData`):

    L = 0.5 (Q(s, a) - y)^2 + cql_alpha * (logsumexp_{a' in A(s)} Q(s, a') - Q(s, a))
    y = r + gamma (1 - terminated) B(s')

With a prior (CQL-Prior, Yan et al. 2025): `A(s)` is `k` proposals from the prior at `s` and
`B(s') = max_i Q_target(s', a'_i)` over `k` proposals at `s'`; with `inference: exact`, one
temperature throughout: the penalty's `tau logsumexp_a(log p(a|s) + Q(s, a) / tau)` is the soft
value the target bootstraps from and the policy `softmax(log p + Q / tau)` acts with. Without
a prior (plain CQL): all 7 actions, `B = max_a Q_target(s', a)`. The pieces are the DQN-Prior
module's (`dqn.bootstrap`, `dqn.choose`) and `losses.cql_logsumexp`. The target network is
Polyak-averaged after every gradient step (`target_tau`). Evaluation: greedy over the prior's
proposals (CQL-Prior) or over all actions (CQL).

`bc` (registered `algo: bc`): cross-entropy of the dataset's actions under the network's logits;
with a prior (BC x prior) the policy is `pi_BC(a|s) p(a|s)` renormalised, at evaluation only.

The prior's log-probabilities at every dataset observation are computed once (`offline_data`),
not per gradient step; the prior is a pure function of the observation, so nothing changes but
the cost. Evaluation plays the task's held-out layouts (`layouts="heldout"`), which no dataset
contains (datasets are collected on `layouts="train"`).

An "update" is `steps_per_update` gradient steps (one metrics row); `num_updates` of them make
`gradient_steps`. The driver's progress counts gradient steps.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ..core.config import ConfigError, bounded
from ..envs.types import Observation
from ..nets import Network, NetworkSection
from ..offline.arrays import OfflineData, offline_data
from ..teacher.teacher import Prior
from . import losses
from .base import (Algorithm, GradientSection, Inputs, TaskSection, as_inputs, check_sections,
                   episode_free_metrics, register)
from .dqn import INFERENCES, QPolicy, bootstrap

static = dict(pytree_node=False)
OBJECTIVES = ("cql", "bc")


@struct.dataclass
class OfflineConfig(GradientSection, NetworkSection, TaskSection):
    """CQL's, CQL-Prior's and BC's hyperparameters (defaults: the paper's code), plus the shared
    gradient-step, task and network keys."""

    anneal_lr: bool = struct.field(**static, default=False)
    """Decay the learning rate linearly to 0 over the run."""
    k: int = bounded(5, static=True, at_least=1)
    """Proposals from the prior per state (inference=sampled)."""
    inference: str = bounded("sampled", static=True, choices=INFERENCES)
    """sampled: logsumexp and max over k proposals (the paper's); exact: weighted by log p."""
    lr: float = bounded(5e-4, within="positive")
    """Adam learning rate."""
    gamma: float = bounded(0.99, within="[0, 1]")
    """Discount."""
    cql_alpha: float = bounded(5.0, within="non-negative")
    """Weight c of the conservative penalty (cql only)."""
    tau: float = bounded(0.1, within="positive")
    """Temperature of the soft value (inference=exact) and of sampled acting."""
    prior_floor: float = bounded(0.0, within="[0, 1]")
    """The prior is (1 - prior_floor) p + prior_floor / A (exact needs > 0)."""
    target_tau: float = bounded(0.005, within="(0, 1]")
    """Polyak factor of the target network per gradient step (cql only)."""
    max_grad_norm: float = bounded(1.0, within="positive")
    """Global gradient norm clip."""

    def check(self) -> "OfflineConfig":
        bad = check_sections(self)
        if self.inference == "exact" and not float(self.prior_floor) > 0:
            bad("prior_floor", "inference=exact takes log p(a|s): give a floor > 0 (e.g. 0.01)")
        return self




class OfflineState(struct.PyTreeNode):
    params: Any
    target: Any
    opt_state: Any
    key: jax.Array
    update: jax.Array  # i32[]


METRICS = ("env_steps", "episodes", "return", "success", "length", "loss", "td_loss",
           "penalty", "q_mean")


@dataclasses.dataclass(frozen=True)
class BCPolicy:
    """Acting from BC logits (`params = (params, prior or None, unused)`), times the prior
    (renormalised) when there is one."""

    net: Network
    config: OfflineConfig
    guided: bool
    greedy: bool = True

    def __call__(self, params: Any, obs: Observation, key: jax.Array):
        p, prior, _ = params
        logits = jax.nn.log_softmax(self.net.apply(p, obs))
        if self.guided:
            logits = logits + prior.log_probs(obs, self.config.prior_floor)
        action = jnp.argmax(logits, -1) if self.greedy else jax.random.categorical(key, logits)
        return action.astype(jnp.int32), None


@dataclasses.dataclass(frozen=True)
class Offline(Algorithm):
    """Pure functions of one configuration's shapes (see `make_offline`)."""

    objective: str = "cql"

    head: ClassVar[str] = "q"
    metrics: ClassVar[tuple[str, ...]] = METRICS
    offline: ClassVar[bool] = True
    progress_unit: ClassVar[str] = " gradient steps"
    evaluation_axes: ClassVar[Any] = (0, None, None)

    def act(self, params: Any, obs: Observation) -> jax.Array:
        return self.network.apply(params, obs)

    def policy(self, greedy: bool = True):
        if self.objective == "bc":
            return BCPolicy(self.network, self.config, self.guided, greedy)
        return QPolicy(self.network, self.config, self.guided, greedy)

    @property
    def evaluation_needs_teacher(self) -> bool:
        return self.guided

    def evaluation_params(self, params: Any, inputs: Any = None) -> Any:
        prior = as_inputs(inputs).teacher
        return (params, prior if self.guided else None, jnp.float32(0.0))

    def prepare(self, ds: Any, teacher: Any = None) -> tuple[OfflineData, dict]:
        """A dataset on the device with the prior's log-probabilities (`offline_data`)."""
        return offline_data(ds, self.network, teacher, float(self.config.prior_floor)), {}

    def init(self, key: jax.Array, params: Any = None, config: OfflineConfig | None = None
             ) -> OfflineState:
        c = self.hp(config)
        k_params, key = jax.random.split(key)
        if params is None:
            params = self.init_params(k_params)
        return OfflineState(params=params, target=params,
                            opt_state=self.optimizer(c).init(params), key=key,
                            update=jnp.zeros((), jnp.int32))

    def loss(self, params: Any, target: Any, data: OfflineData, idx: jax.Array, key: jax.Array,
             c: OfflineConfig) -> tuple[jax.Array, dict]:
        """The objective on the transitions `idx` of `data` (pure; tests call it)."""
        net, guided = self.network, self.guided
        o = data.obs_index[idx]
        a = data.action[idx]
        out = net.apply_codes(params, data.cells[o], data.carried[o])
        if self.objective == "bc":
            ce = -jnp.take_along_axis(jax.nn.log_softmax(out), a[:, None], -1)[:, 0]
            loss = ce.mean()
            return loss, {"loss": loss, "td_loss": jnp.float32(jnp.nan), "penalty": loss,
                          "q_mean": jnp.float32(jnp.nan)}
        k_boot, k_pen = jax.random.split(key)
        q_next = net.apply_codes(target, data.cells[o + 1], data.carried[o + 1])
        boot = bootstrap(k_boot, q_next, data.logp[o + 1] if guided else None, c)
        y = data.reward[idx] + c.gamma * (1.0 - data.terminated[idx]) * boot
        q_a = jnp.take_along_axis(out, a[:, None], -1)[:, 0]
        td = 0.5 * jnp.square(q_a - jax.lax.stop_gradient(y))
        penalty = losses.cql_logsumexp(k_pen, out, data.logp[o] if guided else None, c.k,
                                       c.inference, c.tau) - q_a
        loss = jnp.mean(td + c.cql_alpha * penalty)
        return loss, {"loss": loss, "td_loss": td.mean(), "penalty": penalty.mean(),
                      "q_mean": q_a.mean()}

    def update(self, state: OfflineState, inputs: Inputs, num_updates: int = 1,
               config: OfflineConfig | None = None) -> tuple[OfflineState, dict]:
        """`num_updates` updates of `steps_per_update` gradient steps; `inputs`:
        `Inputs(teacher=prior or None, data=OfflineData)`."""
        c = self.hp(config)
        inputs = as_inputs(inputs)
        prior, data = inputs.teacher, inputs.data
        if not isinstance(data, OfflineData):
            raise ConfigError(f"{self.objective} learns from a dataset: pass "
                              "Inputs(teacher=prior, data=offline_data(dataset, ...))")
        if self.guided and not isinstance(prior, Prior):
            raise ConfigError(f"{self.objective}-prior needs a prior: give prior=oracle, a table "
                              "file, uniform or shuffled:<prior>")
        tx = self.optimizer(c)

        def grad_step(carry, key):
            params, target, opt_state = carry
            k_idx, k_loss = jax.random.split(key)
            idx = jax.random.randint(k_idx, (c.batch_size,), 0, data.size)
            grads, stats = jax.grad(self.loss, has_aux=True)(params, target, data, idx, k_loss, c)
            updates, opt_state = tx.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            target = optax.incremental_update(params, target, c.target_tau)
            return (params, target, opt_state), stats

        def one_update(state: OfflineState, _):
            key, k_steps = jax.random.split(state.key)
            (params, target, opt_state), stats = jax.lax.scan(
                grad_step, (state.params, state.target, state.opt_state),
                jax.random.split(k_steps, c.steps_per_update))
            metrics = episode_free_metrics({k: v.mean() for k, v in stats.items()},
                                           state.update, c.steps_per_update)
            state = OfflineState(params=params, target=target, opt_state=opt_state, key=key,
                                 update=state.update + 1)
            return state, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, state, None, num_updates)


def make_offline(config: OfflineConfig, guided: bool = True, env: Any = None,
                 past_policies: tuple[str, ...] = (), objective: str = "cql") -> Offline:
    """CQL (-Prior with `guided`) or BC (x prior with `guided`) for `config` (checked)."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective {objective!r} is unknown; valid: {', '.join(OBJECTIVES)}")
    if past_policies:
        raise ConfigError("offline algorithms take the prior table alone; past policies "
                          "(teacher=source or prior+source) need algo=ppo")
    if env is not None:
        raise ConfigError("offline algorithms play the task's own held-out layouts")
    return Offline(config.check(), guided, objective=objective)


def _cql(config, guided=True, env=None, past_policies=()):
    return make_offline(config, guided, env, past_policies, "cql")


def _bc(config, guided=True, env=None, past_policies=()):
    return make_offline(config, guided, env, past_policies, "bc")


register("cql", OfflineConfig, _cql, "offline CQL from a dataset; with a prior, CQL-Prior "
         "(logsumexp and target over k proposals)")
register("bc", OfflineConfig, _bc, "offline behaviour cloning; with a prior, BC x prior")
