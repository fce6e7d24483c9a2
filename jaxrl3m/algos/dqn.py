"""DQN and DQN-Prior: Q-learning from thousands of parallel environments, with an LLM prior as
the proposal distribution (Yan et al., ICLR 2025, "direct posterior sampling").

    dqn = make_dqn(DQNConfig(task="DoorKey"), guided=True)            # DQN-Prior
    prior = dqn.teacher(oracle_table("DoorKey"))                        # any teacher.Prior
    state, metrics = jax.jit(dqn.train)(jax.random.key(0), prior)

The learner is PQN-style (Gallici et al., 2024): no replay buffer. Each update collects
`num_envs x num_steps` transitions with the common collector, computes Q(lambda) targets with the
target network (`losses.q_lambda_targets`; `q_lambda = 0` is the one-step target), then runs
epochs of minibatch regression `0.5 (Q(s, a) - G)^2`. Why not a replay buffer: with thousands of
environments in one `jit`, fresh on-policy batches decorrelate samples as a buffer would, and
nothing is kept in device memory but the rollout (PQN matches or beats replay-based DQN at a
fraction of the wall time); the LLM prior changes which actions are proposed, not how data is
stored, so the comparison DQN vs DQN-Prior is unaffected by the choice. The target network is
`target_tau`-Polyak-averaged once per update (1.0: the parameters at the start of the update,
PQN's choice, frozen during its epochs).

With a prior (`guided=True`), in state `s`:
- acting (`inference=sampled`, the paper's): draw `k` proposals `a_1..a_k ~ p(.|s)`, choose
  `a_i` with probability `softmax_i(Q(s, a_i) / tau)`; with probability `epsilon` a proposal
  uniformly instead (epsilon over the proposals); evaluation takes the proposal with the highest Q;
- target: `B(s') = max_i Q_target(s', a'_i)` over `k` proposals at `s'`, drawn afresh at update
  time (the prior's probabilities at every visited state are kept from acting: no second pass);
- `inference=exact`: KL-regularised soft Q-learning with the prior as reference policy. Act
  from `softmax(log p(a|s) + Q(s, a) / tau)` (the `k -> infinity` limit of the sampled choice,
  Proposition 1), bootstrap from the soft value
  `B(s') = tau * logsumexp_a(log p(a|s') + Q_target(s', a) / tau)`, and subtract from each
  Q(lambda) continuation the next action's `tau log(pi / p) = Q_target(s', a') - B(s')`, so
  that the targets' fixed point is the soft Q-function (tested on Frozen Lake against soft
  value iteration). `prior_floor > 0` keeps `log p` finite. The `k -> infinity` limit holds
  for acting only: the sampled variant's target, a max over `k` proposals, tends to a hard max
  over the prior's support as `k` grows, not to this soft value.
Without a prior (`guided=False`) the same code is plain DQN: epsilon-greedy over all actions, the
target's max over all actions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import struct

from ..core import collector
from ..core.config import ConfigError, bounded
from ..envs.types import Observation
from ..nets import Network, NetworkSection
from ..teacher.teacher import Prior, Teacher, propose
from . import losses
from .base import Algorithm, RolloutSection, TaskSection, as_inputs, check_sections, register
from .optim import minibatch_epochs

INFERENCES = ("sampled", "exact")


@struct.dataclass
class DQNConfig(RolloutSection, NetworkSection, TaskSection):
    """DQN's and DQN-Prior's hyperparameters, plus the shared task and network keys (static
    fields fix shapes and code; the others are pytree leaves)."""

    # --- RolloutSection's keys with DQN's defaults (update_epochs, lr, max_grad_norm) ---
    update_epochs: int = bounded(2, static=True, at_least=1)
    """Passes over each rollout."""
    # --- the prior (static part) ---
    k: int = bounded(5, static=True, at_least=1)
    """Proposals drawn from the prior per state (inference=sampled); the paper's code uses 5."""
    inference: str = bounded("sampled", static=True, choices=INFERENCES)
    """sampled: k proposals re-weighted by softmax(Q / tau) (DQN-Prior); exact: the k -> infinity
    limit softmax(log p + Q / tau) and its soft target."""
    # --- coefficients (pytree leaves) ---
    lr: float = bounded(1e-3, within="positive")
    """Adam learning rate."""
    q_lambda: float = bounded(0.65, within="[0, 1]")
    """lambda of the Q(lambda) targets; 0 is the one-step TD target."""
    tau: float = bounded(0.1, within="positive")
    """Temperature of the choice among proposals, softmax(Q(s, a_i) / tau) (the paper's 0.1)."""
    prior_floor: float = bounded(0.0, within="[0, 1]")
    """The prior is (1 - prior_floor) p + prior_floor / A (exact needs > 0: log 0 otherwise)."""
    epsilon_start: float = bounded(1.0, within="[0, 1]")
    """Exploration at the first update: a uniformly random action (plain DQN) or proposal."""
    epsilon_end: float = bounded(0.05, within="[0, 1]")
    """Exploration after epsilon_fraction of the updates."""
    epsilon_fraction: float = bounded(0.2, within="[0, 1]")
    """Share of the run over which epsilon decays linearly."""
    target_tau: float = bounded(1.0, within="(0, 1]")
    """Polyak factor of the target network per update (1.0: the parameters at the start of each
    update)."""
    max_grad_norm: float = bounded(10.0, within="positive")
    """Global gradient norm clip."""

    def check(self) -> "DQNConfig":
        """Raises `ConfigError` naming the field and the fix; returns self."""
        bad = check_sections(self)
        if self.inference == "exact" and not float(self.prior_floor) > 0:
            bad("prior_floor", "inference=exact takes log p(a|s): give a floor > 0 (e.g. 0.01) "
                               "so that log 0 never appears")
        return self




class DQNState(struct.PyTreeNode):
    """Everything that changes during training (a checkpoint saves exactly this)."""

    params: Any
    target: Any  # the target network's parameters
    opt_state: Any
    env: collector.Carry
    key: jax.Array
    update: jax.Array  # i32[]


METRICS = ("env_steps", "episodes", "return", "success", "length", *collector.STARTED_METRICS,
           "epsilon", "q_mean", "target_mean", "loss")


def epsilon_at(c: DQNConfig, update: jax.Array) -> jax.Array:
    """Linear decay from epsilon_start to epsilon_end over epsilon_fraction of the updates."""
    span = jnp.maximum(c.epsilon_fraction * c.num_updates, 1.0)
    frac = jnp.minimum(update.astype(jnp.float32) / span, 1.0)
    return (c.epsilon_start + frac * (c.epsilon_end - c.epsilon_start)).astype(jnp.float32)


# ---------------------------------------------------------------------------------------------
# Acting and bootstrapping: the one place where the prior meets the Q-values
# ---------------------------------------------------------------------------------------------
def choose(key: jax.Array, q: jax.Array, logp: jax.Array | None, c: DQNConfig,
           epsilon: jax.Array, greedy: bool) -> jax.Array:
    """`i32[N]`: actions from Q-values `q` (`f32[N, A]`) and the prior's log-probabilities
    (`None`: no prior, epsilon-greedy over all actions)."""
    k_prop, k_pick, k_eps, k_rand = jax.random.split(key, 4)
    n, num_actions = q.shape
    if logp is None:
        best = jnp.argmax(q, axis=-1)
        rand = jax.random.randint(k_rand, (n,), 0, num_actions)
    elif c.inference == "exact":
        post = logp + q / c.tau
        best = jnp.argmax(post, axis=-1) if greedy else jax.random.categorical(k_pick, post)
        rand = jax.random.categorical(k_rand, logp)  # a proposal: a draw from the prior
    else:
        props = propose(k_prop, logp, c.k)  # (N, k)
        q_i = jnp.take_along_axis(q, props, axis=-1)
        pick = jnp.argmax(q_i, axis=-1) if greedy else jax.random.categorical(k_pick, q_i / c.tau)
        best = jnp.take_along_axis(props, pick[:, None], axis=-1)[:, 0]
        rand = props[jnp.arange(n), jax.random.randint(k_rand, (n,), 0, c.k)]
    explore = jax.random.uniform(k_eps, (n,)) < epsilon
    return jnp.where(explore, rand, best).astype(jnp.int32)


def bootstrap(key: jax.Array, q_next: jax.Array, logp_next: jax.Array | None, c: DQNConfig
              ) -> jax.Array:
    """`f32[...]`: the value of next states from target Q-values `q_next` (`f32[..., A]`): the max
    over all actions (no prior), over `k` fresh proposals from the prior (sampled), or the soft
    value `tau * logsumexp(log p + Q / tau)` (exact)."""
    if logp_next is None:
        return q_next.max(axis=-1)
    if c.inference == "exact":
        return losses.soft_value(q_next, logp_next, c.tau)
    props = propose(key, logp_next, c.k)
    return jnp.take_along_axis(q_next, props, axis=-1).max(axis=-1)


@dataclasses.dataclass(frozen=True)
class QPolicy:
    """Acting for the collector: `params = (q_params, prior or None, epsilon)`; keeps the input
    codes and the prior's log-probabilities the update needs."""

    net: Network
    config: DQNConfig
    guided: bool
    greedy: bool = False

    def __call__(self, params: Any, obs: Observation, key: jax.Array):
        q_params, prior, epsilon = params
        cells, carried = self.net.encode(obs)
        q = self.net.apply_codes(q_params, cells, carried)
        logp = prior.log_probs(obs, self.config.prior_floor) if self.guided else None
        action = choose(key, q, logp, self.config, epsilon, self.greedy)
        extras = {"cells": cells, "carried": carried}
        if self.guided:
            extras["logp"] = logp
        return action, extras


# ---------------------------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DQN(Algorithm):
    """Pure functions for one configuration's shapes (see `make_dqn`)."""

    head: ClassVar[str] = "q"
    metrics: ClassVar[tuple[str, ...]] = METRICS
    evaluation_axes: ClassVar[Any] = (0, None, None)

    def act(self, params: Any, obs: Observation) -> jax.Array:
        """`f32[N, A]`: the Q-values (plain DQN acts greedily on them)."""
        return self.network.apply(params, obs)

    def policy(self, greedy: bool = True) -> QPolicy:
        """The collector policy for evaluation, with `evaluation_params`."""
        return QPolicy(self.network, self.config, self.guided, greedy)

    @property
    def evaluation_needs_teacher(self) -> bool:
        return self.guided

    def evaluation_params(self, params: Any, inputs: Any = None) -> Any:
        """What `policy` acts from (no exploration): the Q-network's parameters (per seed), the
        prior and epsilon = 0 (shared); `evaluation_axes` is its vmap prefix."""
        prior = as_inputs(inputs).teacher
        return (params, prior if self.guided else None, jnp.float32(0.0))

    def _check_prior(self, prior: Any) -> None:
        if not self.guided:
            return
        if not isinstance(prior, Prior):
            raise ConfigError("DQN-Prior needs a prior: pass Teacher.create(task, table) (or "
                              "dqn.teacher(table)); build plain DQN with guided=False")
        if isinstance(prior, Teacher) and prior.options != self.config.options:
            raise ConfigError(f"the prior's options {list(prior.options)} are not task "
                              f"{self.config.task!r}'s {list(self.config.options)}")

    def init(self, key: jax.Array, params: Any = None, config: DQNConfig | None = None
             ) -> DQNState:
        c = self.hp(config)
        k_params, k_env, key = jax.random.split(key, 3)
        if params is None:
            params = self.init_params(k_params)
        return DQNState(params=params, target=params, opt_state=self.optimizer(c).init(params),
                        env=collector.reset(self.env, k_env, c.num_envs,
                                            num_steps=c.num_steps), key=key,
                        update=jnp.zeros((), jnp.int32))

    def update(self, state: DQNState, inputs: Any = None, num_updates: int = 1,
               config: DQNConfig | None = None) -> tuple[DQNState, dict[str, jax.Array]]:
        """`num_updates` updates in one `lax.scan` (jit it with `num_updates` static);
        `inputs`: the prior (or an `Inputs` holding it)."""
        c = self.hp(config)
        prior = as_inputs(inputs).teacher
        self._check_prior(prior)
        env, net, tx, guided = self.env, self.network, self.optimizer(c), self.guided
        policy = QPolicy(net, c, guided)

        def one_update(state: DQNState, _):
            key, k_roll, k_boot, k_epochs = jax.random.split(state.key, 4)
            epsilon = epsilon_at(c, state.update)
            target = jax.tree.map(lambda t, p: (1.0 - c.target_tau) * t + c.target_tau * p,
                                  state.target, state.params)

            # COLLECT TRAJECTORIES
            carry, tr = collector.rollout(env, policy, (state.params, prior if guided else None,
                                                        epsilon), state.env, k_roll, c.num_steps)

            # TARGETS: B(s') of every transition's next observation under the target network
            t, n = tr.reward.shape
            q_seen = net.apply_codes(target, tr.extras["cells"], tr.extras["carried"])
            q_next = jnp.concatenate([q_seen[1:], net.apply(target, carry.obs)[None]], axis=0)
            logp_next = None
            if guided:
                logp_next = jnp.concatenate(
                    [tr.extras["logp"][1:], prior.log_probs(carry.obs, c.prior_floor)[None]], 0)

            # a truncated episode bootstraps from where it was cut
            cut = (tr.truncated & ~tr.terminated)[..., None]
            q_final, lp_final = collector.at_truncations(
                tr, lambda obs: (net.apply(target, obs), prior.log_probs(obs, c.prior_floor)
                                 if guided else None), collector.horizon_of(env))
            q_next = jnp.where(cut, q_final, q_next)
            if guided:
                logp_next = jnp.where(cut, lp_final, logp_next)
            boot = bootstrap(k_boot, q_next, logp_next, c)
            correction = None
            if guided and c.inference == "exact":  # the next action's tau log(pi / p)
                q_taken = jnp.take_along_axis(q_next[:-1], tr.action[1:, :, None], -1)[..., 0]
                correction = jnp.concatenate([q_taken - boot[:-1], jnp.zeros((1, n))], 0)
            targets = losses.q_lambda_targets(tr.reward, boot, tr.terminated, tr.done, c.gamma,
                                              c.q_lambda, correction)

            # UPDATE NETWORK
            batch = {"cells": tr.extras["cells"], "carried": tr.extras["carried"],
                     "action": tr.action, "target": targets}
            batch = jax.tree.map(lambda x: x.reshape(c.batch_size, *x.shape[2:]), batch)

            def loss_fn(params, mb):
                q = net.apply_codes(params, mb["cells"], mb["carried"])
                q_a = jnp.take_along_axis(q, mb["action"][:, None], axis=-1)[:, 0]
                loss = 0.5 * jnp.mean(jnp.square(q_a - mb["target"]))
                return loss, {"loss": loss, "q_mean": q_a.mean()}

            (params, opt_state), stats = minibatch_epochs(
                loss_fn, tx, state.params, state.opt_state, batch, k_epochs, c.update_epochs,
                c.num_minibatches)

            # METRICS
            metrics = {k: v.mean() for k, v in stats.items()}
            metrics.update(collector.episode_metrics(tr, carry))
            metrics["env_steps"] = ((state.update + 1) * c.batch_size).astype(jnp.float32)
            metrics["epsilon"] = epsilon
            metrics["target_mean"] = targets.mean()
            state = DQNState(params=params, target=target, opt_state=opt_state, env=carry,
                             key=key, update=state.update + 1)
            return state, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, state, None, num_updates)


def make_dqn(config: DQNConfig, guided: bool = True, env: Any = None,
             past_policies: tuple[str, ...] = ()) -> DQN:
    """The algorithm for `config` (checked): DQN-Prior with `guided=True` (the run's prior table
    is the proposal distribution), plain DQN with `guided=False`. `env` replaces the task's
    environment (probe tasks such as `jaxrl3m.envs.frozen_lake.FrozenLake`)."""
    if past_policies:
        raise ConfigError("DQN-Prior's prior is the teacher's table alone; past policies "
                          "(teacher=source or prior+source) need algo=ppo")
    return DQN(config.check(), guided, env)


register("dqn", DQNConfig, make_dqn,
         "DQN (PQN-style, Q(lambda)); with a prior, DQN-Prior: k proposals re-weighted by Q")
