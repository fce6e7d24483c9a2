"""Offline RL from a fixed dataset, with or without an LLM prior: CQL, CQL-Prior, BC, BC x prior.

    algo = make_offline(OfflineConfig(task="DoorKey"), guided=True, objective="cql")  # CQL-Prior
    data = offline_data(dataset, algo.network, prior, algo.config.prior_floor)
    state, metrics = jax.jit(algo.train)(jax.random.key(0), (prior, data))

`cql` (registered `algo: cql`), one gradient step on a batch of `batch_size` transitions drawn
uniformly from the dataset (or its first `data.size` transitions, see `OfflineData`):

    L = 0.5 (Q(s, a) - y)^2 + cql_alpha * (logsumexp_{a' in A(s)} Q(s, a') - Q(s, a))
    y = r + gamma (1 - terminated) B(s')

With a prior (CQL-Prior, Yan et al. 2025): `A(s)` is `k` proposals from the prior at `s` and
`B(s') = max_i Q_target(s', a'_i)` over `k` proposals at `s'`; with `posterior: exact`,
`logsumexp_a(log p(a|s) + Q(s, a))` and the soft value `tau logsumexp(log p + Q / tau)`. Without
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
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ..core.config import ConfigError
from ..envs.types import Observation
from ..nets import Network, NetworkSection
from ..teacher.teacher import Prior, Teacher
from . import losses
from .base import TaskSection, config_error, register, static_fields
from .dqn import POSTERIORS, QPolicy, bootstrap
from .optim import adam

static = dict(pytree_node=False)
OBJECTIVES = ("cql", "bc")


@struct.dataclass
class OfflineConfig(NetworkSection, TaskSection):
    """CQL's, CQL-Prior's and BC's hyperparameters (defaults: the paper's code), plus the shared
    task and network keys."""

    batch_size: int = struct.field(**static, default=128)
    """Transitions per gradient step."""
    gradient_steps: int = struct.field(**static, default=10_000)
    """Gradient steps to train for (rounded down to whole updates)."""
    steps_per_update: int = struct.field(**static, default=100)
    """Gradient steps per update (one metrics row; log_every updates make a checkpoint)."""
    anneal_lr: bool = struct.field(**static, default=False)
    """Decay the learning rate linearly to 0 over the run."""
    k: int = struct.field(**static, default=5)
    """Proposals from the prior per state (posterior=sampled)."""
    posterior: str = struct.field(**static, default="sampled")
    """sampled: logsumexp and max over k proposals (the paper's); exact: weighted by log p."""
    lr: float = 5e-4
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount."""
    cql_alpha: float = 5.0
    """Weight c of the conservative penalty (cql only)."""
    tau: float = 0.1
    """Temperature of the soft value (posterior=exact) and of sampled acting."""
    prior_floor: float = 0.0
    """The prior is (1 - prior_floor) p + prior_floor / A (exact needs > 0)."""
    target_tau: float = 0.005
    """Polyak factor of the target network per gradient step (cql only)."""
    max_grad_norm: float = 1.0
    """Global gradient norm clip."""

    @property
    def num_updates(self) -> int:
        return self.gradient_steps // self.steps_per_update

    def check(self) -> "OfflineConfig":
        bad = config_error
        self.check_task(bad)
        self.check_network(bad)
        for key in ("batch_size", "gradient_steps", "steps_per_update", "k"):
            if getattr(self, key) < 1:
                bad(key, f"must be at least 1, got {getattr(self, key)}")
        if self.num_updates < 1:
            bad("gradient_steps", f"{self.gradient_steps} is less than one update "
                                  f"(steps_per_update = {self.steps_per_update})")
        if self.posterior not in POSTERIORS:
            bad("posterior", f"{self.posterior!r} is unknown; valid: {', '.join(POSTERIORS)}")
        for key in ("lr", "tau", "max_grad_norm", "target_tau"):
            if not float(getattr(self, key)) > 0:
                bad(key, f"must be positive, got {getattr(self, key)}")
        for key in ("gamma", "prior_floor", "target_tau"):
            if not 0 <= float(getattr(self, key)) <= 1:
                bad(key, f"must be in [0, 1], got {getattr(self, key)}")
        if not float(self.cql_alpha) >= 0:
            bad("cql_alpha", f"must be >= 0, got {self.cql_alpha}")
        if self.posterior == "exact" and not float(self.prior_floor) > 0:
            bad("prior_floor", "posterior=exact takes log p(a|s): give a floor > 0 (e.g. 0.01)")
        return self


STATIC_FIELDS = static_fields(OfflineConfig)


class OfflineData(struct.PyTreeNode):
    """A dataset on the device, ready for gradient steps (`offline_data`).

    Observation rows `[O]`: the network's input codes and the prior's log-probabilities;
    transition rows `[M]`. Batches are drawn from the first `size` transitions, so one compiled
    program serves every nested subset of a dataset ordered by its subset permutation (and
    datasets padded to one capacity can be stacked and vmapped).
    """

    cells: jax.Array  # i16[O, C]
    carried: jax.Array  # i16[O]
    logp: jax.Array  # f32[O, A]: log p(.|s) of the prior (zeros without one)
    obs_index: jax.Array  # i32[M]: the transition's observation (the next one is + 1)
    action: jax.Array  # i32[M]
    reward: jax.Array  # f32[M]
    terminated: jax.Array  # f32[M]
    size: jax.Array  # i32[]: transitions to sample from


def offline_data(ds: Any, net: Network, prior: Prior | None, floor: float = 0.0,
                 transitions: int | None = None, capacity: tuple[int, int] | None = None,
                 chunk: int = 8192) -> OfflineData:
    """`ds` (`jaxrl3m.offline.dataset.Dataset`) on the device: codes and prior log-probabilities
    of every observation (in jitted chunks), transitions. `transitions`: sample only from the
    first that many (default all). `capacity = (O, M)`: pad the arrays to these sizes."""
    o_count, m_count = ds["obs_grid"].shape[0], ds.num_transitions
    o_cap, m_cap = capacity or (o_count, m_count)
    if o_cap < o_count or m_cap < m_count:
        raise ValueError(f"capacity {capacity} is smaller than the dataset ({o_count}, {m_count})")
    cells, carried, logp = [], [], []
    fn = _features_fn(net, prior is not None)
    for start in range(0, o_count, chunk):
        sl = slice(start, min(start + chunk, o_count))
        part = {k: ds[k][sl] for k in ("obs_grid", "obs_pose", "obs_carrying")}
        n = sl.stop - sl.start
        pad = {k: np.concatenate([v, np.zeros((chunk - n, *v.shape[1:]), v.dtype)])
               for k, v in part.items()}  # one shape: one compiled program
        c, cr, lp = jax.device_get(fn(pad, prior, jnp.float32(floor)))
        cells.append(c[:n])
        carried.append(cr[:n])
        logp.append(lp[:n])

    def padded(parts, rows):
        a = np.concatenate(parts)
        return np.concatenate([a, np.zeros((rows - len(a), *a.shape[1:]), a.dtype)])

    m = m_count if transitions is None else transitions
    return OfflineData(
        cells=jnp.asarray(padded(cells, o_cap)), carried=jnp.asarray(padded(carried, o_cap)),
        logp=jnp.asarray(padded(logp, o_cap)),
        obs_index=jnp.asarray(padded([ds.obs_index], m_cap)),
        action=jnp.asarray(padded([ds["action"].astype(np.int32)], m_cap)),
        reward=jnp.asarray(padded([ds["reward"].astype(np.float32)], m_cap)),
        terminated=jnp.asarray(padded([ds["terminated"].astype(np.float32)], m_cap)),
        size=jnp.asarray(m, jnp.int32))


_FEATURES: dict = {}


def _features_fn(net: Network, guided: bool):
    from ..offline.dataset import decode_obs
    if (net, guided) not in _FEATURES:
        def features(part, prior, floor):
            obs = decode_obs(part["obs_grid"], part["obs_pose"], part["obs_carrying"])
            cells, carried = net.encode(obs)
            logp = prior.log_probs(obs, floor) if guided else jnp.zeros(
                (obs.agent_dir.shape[0], net.num_actions))
            return cells, carried, logp  # int16 codes (nets.encoders.CODE_DTYPE)
        _FEATURES[(net, guided)] = jax.jit(features)
    return _FEATURES[(net, guided)]


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
class Offline:
    """Pure functions of one configuration's shapes (see `make_offline`)."""

    config: OfflineConfig
    guided: bool = True
    objective: str = "cql"
    metrics: tuple[str, ...] = METRICS
    progress_unit: str = " gradient steps"

    @property
    def steps_per_update(self) -> int:
        return self.config.steps_per_update

    @property
    def env(self):
        """The held-out layouts of the task (what evaluation plays)."""
        return dataclasses.replace(self.config.make_env(), layouts="heldout")

    @property
    def network(self) -> Network:
        return Network.from_config(self.config, "q", self.env.num_actions)

    def teacher(self, table: Any, past: tuple = ()) -> Teacher:
        if past:
            raise ConfigError("offline algorithms take the prior table alone (teacher=prior)")
        return Teacher.create(self.config.task, table)

    def act(self, params: Any, obs: Observation) -> jax.Array:
        return self.network.apply(params, obs)

    def policy(self, greedy: bool = True):
        if self.objective == "bc":
            return BCPolicy(self.network, self.config, self.guided, greedy)
        return QPolicy(self.network, self.config, self.guided, greedy)

    def evaluation_params(self, params: Any, inputs: Any) -> Any:
        prior = inputs[0] if isinstance(inputs, tuple) else inputs
        return (params, prior if self.guided else None, jnp.float32(0.0))

    evaluation_axes = (0, None, None)

    def _hp(self, config: OfflineConfig | None) -> OfflineConfig:
        if config is None:
            return self.config
        for name in STATIC_FIELDS:
            if getattr(config, name) != getattr(self.config, name):
                raise ConfigError(f"config key {name!r} is static; build a new algorithm")
        return config

    def optimizer(self, c: OfflineConfig) -> optax.GradientTransformation:
        return adam(c.lr, c.max_grad_norm, c.num_updates * c.steps_per_update, c.anneal_lr)

    def init(self, key: jax.Array, params: Any = None, config: OfflineConfig | None = None
             ) -> OfflineState:
        c = self._hp(config)
        k_params, key = jax.random.split(key)
        if params is None:
            obs = jax.tree.map(lambda x: x[None], self.env.reset(jax.random.key(0)).obs)
            params = self.network.init(k_params, obs)
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
                                       c.posterior) - q_a
        loss = jnp.mean(td + c.cql_alpha * penalty)
        return loss, {"loss": loss, "td_loss": td.mean(), "penalty": penalty.mean(),
                      "q_mean": q_a.mean()}

    def update(self, state: OfflineState, inputs: tuple, num_updates: int = 1,
               config: OfflineConfig | None = None) -> tuple[OfflineState, dict]:
        """`num_updates` updates of `steps_per_update` gradient steps; `inputs = (prior or None,
        OfflineData)`."""
        c = self._hp(config)
        prior, data = inputs
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
            nan = jnp.float32(jnp.nan)
            metrics = {k: v.mean() for k, v in stats.items()}
            metrics.update(env_steps=((state.update + 1) * c.steps_per_update).astype(
                jnp.float32), episodes=jnp.float32(0.0), success=nan, length=nan)
            metrics["return"] = nan
            state = OfflineState(params=params, target=target, opt_state=opt_state, key=key,
                                 update=state.update + 1)
            return state, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, state, None, num_updates)

    def train(self, key: jax.Array, inputs: tuple, params: Any = None,
              config: OfflineConfig | None = None) -> tuple[OfflineState, dict]:
        c = self._hp(config)
        return self.update(self.init(key, params, c), inputs, c.num_updates, c)


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
    return Offline(config.check(), guided, objective)


def _cql(config, guided=True, env=None, past_policies=()):
    return make_offline(config, guided, env, past_policies, "cql")


def _bc(config, guided=True, env=None, past_policies=()):
    return make_offline(config, guided, env, past_policies, "bc")


register("cql", OfflineConfig, _cql, "offline CQL from a dataset; with a prior, CQL-Prior "
         "(logsumexp and target over k proposals)")
register("bc", OfflineConfig, _bc, "offline behaviour cloning; with a prior, BC x prior")
