"""PPO guided by a teacher, trained end to end in one `jit` (PureJaxRL style), on the core.

    loss = L_clip + vf_coef * L_value - ent_coef * H[pi_theta] + lambda_t * mean_s KL(pi_L || pi_theta)

With `kl_direction="reverse"` the KL term is `KL(pi_theta || p)` to the prior (floored), and with a
constant `lambda_t = alpha` this is GFlan-Prior, the variational view of an LLM prior (Yan et al.,
ICLR 2025): maximise `E[return] - alpha * KL(pi_theta || p)`.

`make_train(config)` returns a `PPO` algorithm of pure functions (`jaxrl3m.algos.base`):

    ppo = make_train(PPOConfig(task="DoorKey", kl_coef=1.0))
    teacher = Teacher.create("DoorKey", table)                        # jaxrl3m.teacher.teacher
    out = jax.jit(ppo.train)(jax.random.key(0), teacher)              # one seed, one jit
    outs = jax.jit(jax.vmap(ppo.train, (0, None)))(keys, teacher)     # seeds as a vmap

One update: a rollout by the common collector (`jaxrl3m.core.collector`), GAE that bootstraps
truncated episodes from their final observation (`advantages`), the teacher `pi_L` on the first
`teacher_envs` environments' states in one batch (`teacher_targets`), then epochs of shuffled
minibatches (`jaxrl3m.algos.optim.minibatch_epochs`) on `ppo_loss`. The teacher is an argument,
never a closure, so one compiled program serves every table of a shape. Both skips are real
under `vmap` over seeds (`jaxrl3m.core.parallel.any_seed`): the teacher is not computed while
`lambda_t = 0` (it depends on the update count only, which all seeds share), and final
observations' values only when some episode was truncated.

Past policies (transfer learning): `make_train(config, past_policies=("DoorKey",))` expects a
teacher whose table has a column for the frozen policy learned on DoorKey ("follow the policy
that solved DoorKey") and whose `past` holds its parameters (`PPO.teacher`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from ..core import collector
from ..core.config import ConfigError
from ..core.parallel import any_seed
from ..envs.abstraction import NUM_ABSTRACT_STATES, abstract_state
from ..envs.types import Observation
from ..nets import Network, NetworkSection
from ..teacher.posterior import (OptionValues, accumulate, option_advantage_samples,
                                 posterior_table)
from ..teacher.teacher import Teacher, floored_log
from . import losses
from .base import TaskSection, config_error, register, static_fields
from .optim import adam, minibatch_epochs

static = dict(pytree_node=False)
KL_DIRECTIONS = ("forward", "reverse")


@struct.dataclass
class PPOConfig(NetworkSection, TaskSection):
    """PPO's hyperparameters, plus the shared task and network keys. Static fields fix shapes
    and code paths (changing one recompiles); the others are pytree leaves, so they can be
    traced and `vmap`ped (a sweep over `kl_coef` is one program)."""

    # --- sizes (static) ---
    num_envs: int = struct.field(**static, default=64)
    """Parallel environments."""
    num_steps: int = struct.field(**static, default=32)
    """Rollout length per update; one update consumes num_envs * num_steps env steps."""
    total_steps: int = struct.field(**static, default=1_000_000)
    """Environment steps to train for (rounded down to whole updates)."""
    update_epochs: int = struct.field(**static, default=4)
    """Passes over each rollout."""
    num_minibatches: int = struct.field(**static, default=4)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    # --- guidance (static part) ---
    kl_direction: str = struct.field(**static, default="forward")
    """forward: `KL(pi_L || pi_theta)`, the LLM teacher (RL3M4TL); reverse: `KL(pi_theta || p)`,
    the variational view of an LLM prior (GFlan-Prior; use a constant schedule: kl_coef is
    alpha), with the prior floored by prior_floor."""
    kl_schedule: str = struct.field(**static, default="constant")
    """lambda_t schedule: constant, linear or exponential (see losses.kl_weight)."""
    teacher_envs: int = struct.field(**static, default=256)
    """pi_L is computed on the first min(teacher_envs, num_envs) environments' states, which
    enter the KL term (all environments are i.i.d., so this subsamples states without bias;
    the teacher's skills cost more than an environment step)."""
    anneal_lr: bool = struct.field(**static, default=True)
    """Decay the learning rate linearly to 0 over the run."""
    posterior: bool = struct.field(**static, default=False)
    """The posterior teacher (jaxrl3m.teacher.posterior): the prior table re-weighted per
    abstract state by the agent's own estimate of each option's advantage,
    `P(k|s) ∝ P_LLM(k|s) exp(Q(s,k) / posterior_tau)`, updated inside every update from the
    teacher environments' transitions. False: the table as given (the fixed teacher)."""
    # --- coefficients (pytree leaves) ---
    lr: float = 3e-3
    """Adam learning rate."""
    gamma: float = 0.99
    """Discount."""
    gae_lambda: float = 0.95
    """GAE lambda."""
    clip_eps: float = 0.2
    """PPO clip range (policy and value)."""
    ent_coef: float = 0.01
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient norm clip."""
    kl_coef: float = 0.0
    """lambda_0, the guidance weight at the first update; 0 is plain PPO."""
    kl_decay: float = 0.0
    """linear: subtracted per update; exponential: factor per update."""
    kl_floor: float = 0.0
    """lambda_t never decays below this (until the cut-off)."""
    kl_cutoff: int = -1
    """Update from which lambda_t = 0; -1 never."""
    prior_floor: float = 0.01
    """kl_direction=reverse: the prior is (1 - prior_floor) p + prior_floor / A, so that an
    action the prior rules out costs a finite KL (log 0 never appears)."""
    posterior_tau: float = 0.01
    """posterior: the temperature of the options' advantages (smaller: trust them sooner)."""
    posterior_floor: float = 0.05
    """posterior: the prior is floored to `(1 - floor) p + floor / K` before the update, so that
    an option the table rules out (a one-hot wrong row) can still win."""
    posterior_rate: float = 0.05
    """posterior: the weight of one update's samples in the running advantage estimates."""

    # --- derived sizes ---
    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_updates(self) -> int:
        return self.total_steps // self.batch_size

    @property
    def num_teacher_envs(self) -> int:
        return min(self.teacher_envs, self.num_envs)

    def check(self) -> "PPOConfig":
        """Raises `ConfigError` naming the field and the fix; returns self."""
        bad = config_error
        self.check_task(bad)
        self.check_network(bad)
        for key in ("num_envs", "num_steps", "total_steps", "update_epochs", "num_minibatches",
                    "teacher_envs"):
            if getattr(self, key) < 1:
                bad(key, f"must be at least 1, got {getattr(self, key)}")
        if self.batch_size % self.num_minibatches:
            bad("num_minibatches", f"{self.num_minibatches} does not divide num_envs * "
                                   f"num_steps = {self.batch_size}")
        if self.num_updates < 1:
            bad("total_steps", f"{self.total_steps} is less than one update "
                               f"(num_envs * num_steps = {self.batch_size})")
        if self.kl_schedule not in losses.KL_SCHEDULES:
            bad("kl_schedule", f"{self.kl_schedule!r} is unknown; valid: "
                               f"{', '.join(losses.KL_SCHEDULES)}")
        for key in ("lr", "clip_eps", "max_grad_norm"):
            if not float(getattr(self, key)) > 0:
                bad(key, f"must be positive, got {getattr(self, key)}")
        for key in ("ent_coef", "vf_coef", "kl_coef", "kl_decay", "kl_floor"):
            if not float(getattr(self, key)) >= 0:
                bad(key, f"must be non-negative, got {getattr(self, key)}")
        for key in ("gamma", "gae_lambda"):
            if not 0 <= float(getattr(self, key)) <= 1:
                bad(key, f"must be in [0, 1], got {getattr(self, key)}")
        if self.kl_direction not in KL_DIRECTIONS:
            bad("kl_direction", f"{self.kl_direction!r} is unknown; valid: "
                                f"{', '.join(KL_DIRECTIONS)}")
        if not 0 < float(self.prior_floor) <= 1:
            bad("prior_floor", f"must be in (0, 1] (log 0 otherwise), got {self.prior_floor}")
        if not float(self.posterior_tau) > 0:
            bad("posterior_tau", f"must be positive (it divides the options' advantages), got "
                                 f"{self.posterior_tau}")
        if not 0 <= float(self.posterior_floor) < 1:
            bad("posterior_floor", f"must be in [0, 1), got {self.posterior_floor}")
        if not 0 < float(self.posterior_rate) <= 1:
            bad("posterior_rate", f"must be in (0, 1], got {self.posterior_rate}")
        if self.kl_schedule == "exponential" and not 0 < float(self.kl_decay) <= 1:
            bad("kl_decay", f"an exponential schedule needs a factor in (0, 1], got "
                            f"{self.kl_decay}")
        return self


STATIC_FIELDS = static_fields(PPOConfig)


# ---------------------------------------------------------------------------------------------
# State and outputs
# ---------------------------------------------------------------------------------------------
class PPOState(struct.PyTreeNode):
    """Everything that changes during training (a checkpoint saves exactly this)."""

    params: Any
    opt_state: Any
    env: collector.Carry  # [N]: the environments, their observations and running returns
    key: jax.Array  # PRNG key
    update: jax.Array  # i32[]: updates done
    options: Any = None  # posterior teacher: OptionValues [abstract states, options]; else None


METRICS = ("env_steps", "episodes", "return", "success", "length", "kl_teacher", "lambda",
           "entropy", "policy_loss", "value_loss", "approx_kl", "loss")
"""What `update` reports per update (episode statistics over the episodes that ended in the
update's rollout; NaN when none did)."""


@dataclasses.dataclass(frozen=True)
class ActorCriticPolicy:
    """Acting during the rollout: samples from the actor and keeps what the update needs."""

    net: Network

    def __call__(self, params: Any, obs: Observation, key: jax.Array):
        cells, carried = self.net.encode(obs)
        logits, value = self.net.apply_codes(params, cells, carried)
        action = jax.random.categorical(key, logits).astype(jnp.int32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
        return action, {"cells": cells, "carried": carried, "logp": logp, "value": value}


# ---------------------------------------------------------------------------------------------
# Pure pieces of an update
# ---------------------------------------------------------------------------------------------
def advantages(net: Network, params: Any, c: PPOConfig, tr: collector.Transition,
               last_obs: Observation, max_steps: int | None = None
               ) -> tuple[jax.Array, jax.Array]:
    """`(advantages, returns)`, `f32[T, N]`, by GAE. The value after the last step is that of
    `last_obs`; where an episode was truncated, that of its final observation (computed only
    when some seed truncated an episode in this rollout, on the truncated steps alone:
    `collector.at_truncations`, `max_steps` the environment's time limit)."""
    value = tr.extras["value"]
    _, last_value = net.apply(params, last_obs)
    v_next = jnp.concatenate([value[1:], last_value[None]], axis=0)
    v_final = collector.at_truncations(tr, lambda obs: net.apply(params, obs)[1], max_steps)
    v_tp1 = jnp.where(tr.truncated & ~tr.terminated, v_final, v_next)
    return losses.gae(tr.reward, value, v_tp1, tr.terminated, tr.done, c.gamma, c.gae_lambda)


def teacher_targets(teacher: Teacher, obs: Observation, lam: jax.Array, num_actions: int
                    ) -> jax.Array:
    """`f32[T, n, A]`: `pi_L` for the observations `[T, n]`, all in one batch (one navigation
    search for T * n states: its loop overhead is paid once); zeros, and not computed, while
    `lambda_t = 0` for every seed."""
    t, n = obs.agent_dir.shape
    flat = jax.tree.map(lambda x: x.reshape(t * n, *x.shape[2:]), obs)
    probs = jax.lax.cond(any_seed(lam > 0), lambda: teacher.probs(flat),
                         lambda: jnp.zeros((t * n, num_actions)))
    return probs.reshape(t, n, num_actions)


def posterior_targets(teacher: Teacher, values: OptionValues, c: PPOConfig, tr: Any,
                      adv: jax.Array, lam: jax.Array, num_actions: int
                      ) -> tuple[jax.Array, OptionValues]:
    """The posterior teacher on the transitions `tr` (`[T, n]`, the teacher environments):
    `pi_L` from the table re-weighted by the options' advantage estimates so far, and those
    estimates updated with these transitions (`adv`: their GAE advantages). The options' action
    distributions are computed once for both. Skipped (zeros, estimates unchanged) while
    `lambda_t = 0` for every seed."""
    t, n = tr.action.shape
    flat = lambda x: x.reshape(t * n, *x.shape[2:])  # noqa: E731
    obs = jax.tree.map(flat, tr.obs)
    k = teacher.table.shape[1]

    def compute():
        option_probs, applicable = teacher.option_probs(obs)
        table = posterior_table(teacher.table, values.q, c.posterior_tau, c.posterior_floor)
        probs = teacher.replace(table=table).mixture(obs, option_probs, applicable)
        samples, valid = option_advantage_samples(option_probs, applicable, flat(tr.action),
                                                  flat(tr.extras["logp"]), flat(adv))
        return probs, samples, valid

    def skip():
        return (jnp.zeros((t * n, num_actions)), jnp.zeros((t * n, k)),
                jnp.zeros((t * n, k), bool))

    probs, samples, valid = jax.lax.cond(any_seed(lam > 0), compute, skip)
    states = jax.vmap(abstract_state)(obs)
    values = accumulate(values, states, samples, valid, c.posterior_rate)
    return probs.reshape(t, n, num_actions), values


def ppo_loss(net: Network, c: PPOConfig, guided: bool, lam: jax.Array, params: Any,
             mb: dict) -> tuple[jax.Array, dict]:
    """PPO's clipped loss on a minibatch, plus `lam * KL(pi_L || pi_theta)` over the samples
    that have a teacher target (`mb["has_teacher"]`)."""
    logits, value = net.apply_codes(params, mb["cells"], mb["carried"])
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), mb["action"][:, None], 1)[:, 0]
    adv = mb["adv"]
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg = losses.clipped_policy_loss(logp, mb["logp"], adv, c.clip_eps)
    vl = losses.clipped_value_loss(value, mb["value"], mb["returns"], c.clip_eps)
    ent = losses.entropy(logits).mean()
    loss = pg + c.vf_coef * vl - c.ent_coef * ent
    if c.kl_direction == "reverse":  # GFlan-Prior: KL(pi_theta || p), the prior floored
        per_state = losses.prior_kl(logits, floored_log(mb["pi_l"], c.prior_floor))
    else:  # the LLM teacher: KL(pi_L || pi_theta)
        per_state = losses.teacher_kl(mb["pi_l"], logits)
    kl = losses.masked_mean(per_state, mb["has_teacher"] & (lam > 0))
    if guided:
        loss = loss + lam * kl
    approx_kl = jnp.mean((jnp.exp(logp - mb["logp"]) - 1) - (logp - mb["logp"]))
    return loss, dict(loss=loss, policy_loss=pg, value_loss=vl, entropy=ent, kl_teacher=kl,
                      approx_kl=approx_kl)


# ---------------------------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PPO:
    """Pure functions for one configuration's shapes (see `make_train`)."""

    config: PPOConfig
    guided: bool = True
    custom_env: Any = None
    past_policies: tuple[str, ...] = ()
    """Source tasks whose frozen policies are teacher options after the skills."""
    metrics: tuple[str, ...] = METRICS

    @property
    def env(self):
        """The task's environment (or the one given to `make_train`)."""
        return self.custom_env if self.custom_env is not None else self.config.make_env()

    @property
    def network(self) -> Network:
        return Network.from_config(self.config, "actor_critic", self.env.num_actions)

    def apply(self, params: Any, obs: Observation) -> tuple[jax.Array, jax.Array]:
        """`(logits, value)` for a batch of observations."""
        return self.network.apply(params, obs)

    def act(self, params: Any, obs: Observation) -> jax.Array:
        """`f32[N, A]`: the policy's logits (evaluation samples or takes the argmax)."""
        return self.network.logits(params, obs)

    def teacher(self, table: Any, past: tuple = ()) -> Teacher:
        """The teacher this algorithm expects, from a table (and past policies' parameters)."""
        return Teacher.create(self.config.task, table, past, self.past_policies, self.network)

    def _hp(self, config: PPOConfig | None) -> PPOConfig:
        if config is None:
            return self.config
        for name in STATIC_FIELDS:
            if getattr(config, name) != getattr(self.config, name):
                raise ConfigError(f"config key {name!r} is static (it fixes shapes or code); "
                                  f"build a new algorithm with make_train to change it")
        return config

    def _check_teacher(self, teacher: Teacher | None) -> None:
        if not self.guided:
            return
        if not isinstance(teacher, Teacher):
            raise ConfigError("guided PPO needs a teacher: pass Teacher.create(task, table) "
                              "(or ppo.teacher(table)); build plain PPO with guided=False")
        if teacher.options != self.config.options:
            raise ConfigError(f"the teacher's options {list(teacher.options)} are not task "
                              f"{self.config.task!r}'s {list(self.config.options)}")
        if teacher.past_policies != self.past_policies:
            raise ConfigError(
                f"the algorithm has past policies {list(self.past_policies)} but the teacher "
                f"has {list(teacher.past_policies)}; build both with the same past_policies")

    def optimizer(self, c: PPOConfig):
        return adam(c.lr, c.max_grad_norm, c.num_updates * c.update_epochs * c.num_minibatches,
                    c.anneal_lr)

    def init_params(self, key: jax.Array) -> Any:
        obs = jax.tree.map(lambda x: x[None], self.env.reset(jax.random.key(0)).obs)
        return self.network.init(key, obs)

    def init(self, key: jax.Array, params: Any = None, config: PPOConfig | None = None
             ) -> PPOState:
        """The state before the first update (`params` to start from given ones)."""
        c = self._hp(config)
        k_params, k_env, key = jax.random.split(key, 3)
        if params is None:
            params = self.init_params(k_params)
        options = None
        if c.posterior and self.guided:
            options = OptionValues.zeros(NUM_ABSTRACT_STATES,
                                         len(c.options) + len(self.past_policies))
        return PPOState(params=params, opt_state=self.optimizer(c).init(params),
                        env=collector.reset(self.env, k_env, c.num_envs), key=key,
                        update=jnp.zeros((), jnp.int32), options=options)

    def update(self, state: PPOState, teacher: Teacher | None = None, num_updates: int = 1,
               config: PPOConfig | None = None) -> tuple[PPOState, dict[str, jax.Array]]:
        """`num_updates` PPO updates in one `lax.scan` (jit it with `num_updates` static).
        Returns the new state and `METRICS`, each `f32[num_updates]`."""
        c = self._hp(config)
        self._check_teacher(teacher)
        env, net, tx = self.env, self.network, self.optimizer(c)
        n_t, num_actions = c.num_teacher_envs, env.num_actions

        def one_update(state: PPOState, _):
            lam = losses.kl_weight(c.kl_schedule, state.update, c.kl_coef, c.kl_decay,
                                   c.kl_floor, c.kl_cutoff) if self.guided else jnp.float32(0)
            key, k_roll, k_epochs = jax.random.split(state.key, 3)

            # COLLECT TRAJECTORIES
            carry, tr = collector.rollout(env, ActorCriticPolicy(net), state.params, state.env,
                                          k_roll, c.num_steps)

            # ADVANTAGES
            adv, returns = advantages(net, state.params, c, tr, carry.obs,
                                      collector.horizon_of(env))

            # TEACHER: pi_L on the rollout's first n_t environments (skipped while lambda = 0)
            pi_l = jnp.zeros((c.num_steps, c.num_envs, num_actions))
            options = state.options
            if self.guided and options is not None:  # the posterior teacher
                first = jax.tree.map(lambda x: x[:, :n_t], tr)
                targets, options = posterior_targets(teacher, options, c, first, adv[:, :n_t],
                                                     lam, num_actions)
                pi_l = pi_l.at[:, :n_t].set(targets)
            elif self.guided:
                pi_l = pi_l.at[:, :n_t].set(teacher_targets(
                    teacher, jax.tree.map(lambda x: x[:, :n_t], tr.obs), lam, num_actions))
            has_teacher = jnp.broadcast_to(jnp.arange(c.num_envs) < n_t,
                                           (c.num_steps, c.num_envs))

            # UPDATE NETWORK
            batch = {**{k: tr.extras[k] for k in ("cells", "carried", "logp", "value")},
                     "action": tr.action, "adv": adv, "returns": returns, "pi_l": pi_l,
                     "has_teacher": has_teacher}
            batch = jax.tree.map(lambda x: x.reshape(c.batch_size, *x.shape[2:]), batch)
            loss_fn = lambda params, mb: ppo_loss(net, c, self.guided, lam, params, mb)
            (params, opt_state), stats = minibatch_epochs(
                loss_fn, tx, state.params, state.opt_state, batch, k_epochs, c.update_epochs,
                c.num_minibatches)

            # METRICS
            metrics = {k: v.mean() for k, v in stats.items()}
            metrics.update(collector.episode_metrics(tr))
            metrics["env_steps"] = ((state.update + 1) * c.batch_size).astype(jnp.float32)
            metrics["lambda"] = lam
            state = PPOState(params=params, opt_state=opt_state, env=carry, key=key,
                             update=state.update + 1, options=options)
            return state, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, state, None, num_updates)

    def train(self, key: jax.Array, teacher: Teacher | None = None, params: Any = None,
              config: PPOConfig | None = None) -> tuple[PPOState, dict[str, jax.Array]]:
        """The whole run: `init` then every update in one scan (jit it; vmap it over keys).
        `params`: start from these parameters (fine-tuning) instead of a fresh network."""
        c = self._hp(config)
        return self.update(self.init(key, params, c), teacher, c.num_updates, c)


def make_train(config: PPOConfig, guided: bool = True, env: Any = None,
               past_policies: tuple[str, ...] = ()) -> PPO:
    """The algorithm for `config` (checked). `guided=False` builds plain PPO: no teacher is
    computed and the loss has no KL term (with `kl_coef = 0` a guided PPO gives the same
    result, which a test proves). `env` replaces the task's environment (same interface as
    `jaxrl3m.envs.make`'s; probe environments in the tests use it). `past_policies` names the
    source tasks whose frozen policies join the teacher's options."""
    past_policies = tuple(past_policies)
    if past_policies and not guided:
        raise ConfigError("past policies are teacher options; they need a guided PPO")
    return PPO(config.check(), guided, env, past_policies)


register("ppo", PPOConfig, make_train, "PPO with an optional KL term to the LLM teacher")
