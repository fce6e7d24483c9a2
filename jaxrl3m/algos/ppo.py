"""PPO guided by a teacher, trained end to end in one `jit` (PureJaxRL style), on the core.

    loss = L_clip + vf_coef * L_value - ent_coef * H[pi_theta] + lambda_t * mean_s KL(pi_L || pi_theta)

With `kl_direction="reverse"` the KL term is `KL(pi_theta || p)` to the prior (floored), and with a
constant `lambda_t = alpha` this is GFlan-Prior, the variational view of an LLM prior (Yan et al.,
ICLR 2025): maximise `E[return] - alpha * KL(pi_theta || p)`.

`make_ppo(config)` returns a `PPO` algorithm of pure functions (`jaxrl3m.algos.base`):

    ppo = make_ppo(PPOConfig(task="DoorKey", kl_coef=1.0))
    teacher = Teacher.create("DoorKey", table)                        # jaxrl3m.teacher.teacher
    out = jax.jit(ppo.train)(jax.random.key(0), teacher)              # one seed, one jit
    outs = jax.jit(jax.vmap(ppo.train, (0, None)))(keys, teacher)     # seeds as a vmap

One update: a rollout by the common collector (`jaxrl3m.core.collector`), GAE that bootstraps
truncated episodes from their final observation (`advantages`), the teacher `pi_L` on the first
`teacher_envs` environments' states in one batch (`teacher.teacher_targets`; the posterior
teacher: `teacher.posterior.posterior_targets`), then epochs of shuffled
minibatches (`jaxrl3m.algos.optim.minibatch_epochs`) on `ppo_loss`. The teacher is an argument,
never a closure, so one compiled program serves every table of a shape. Both skips are real
under `vmap` over seeds (`jaxrl3m.core.parallel.any_seed`): the teacher is not computed while
`lambda_t = 0` (it depends on the update count only, which all seeds share), and final
observations' values only when some episode was truncated.

Past policies (transfer learning): `make_ppo(config, past_policies=("DoorKey",))` expects a
teacher whose table has a column for the frozen policy learned on DoorKey ("follow the policy
that solved DoorKey") and whose `past` holds its parameters (`PPO.teacher`).
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
from ..teacher.posterior import OptionValues, posterior_targets
from ..teacher.teacher import Teacher, floored_log, teacher_targets
from . import losses
from .base import Algorithm, RolloutSection, TaskSection, as_inputs, check_sections, register
from .optim import minibatch_epochs

static = dict(pytree_node=False)
KL_DIRECTIONS = ("forward", "reverse")


@struct.dataclass
class PPOConfig(RolloutSection, NetworkSection, TaskSection):
    """PPO's hyperparameters, plus the shared task and network keys. Static fields fix shapes
    and code paths (changing one recompiles); the others are pytree leaves, so they can be
    traced and `vmap`ped (a sweep over `kl_coef` is one program). The rollout and optimiser
    keys (num_envs, num_steps, total_steps, update_epochs, num_minibatches, anneal_lr, lr, gamma,
    max_grad_norm) are `RolloutSection`'s."""

    # --- guidance (static part) ---
    kl_direction: str = bounded("forward", static=True, choices=KL_DIRECTIONS)
    """forward: `KL(pi_L || pi_theta)`, the LLM teacher (RL3M4TL); reverse: `KL(pi_theta || p)`,
    the variational view of an LLM prior (GFlan-Prior; use a constant schedule: kl_coef is
    alpha), with the prior floored by prior_floor."""
    kl_schedule: str = bounded("constant", static=True, choices=losses.KL_SCHEDULES)
    """lambda_t schedule: constant, linear or exponential (see losses.kl_weight)."""
    teacher_envs: int = bounded(256, static=True, at_least=1)
    """pi_L is computed on the first min(teacher_envs, num_envs) environments' states, which
    enter the KL term (all environments are i.i.d., so this subsamples states without bias;
    the teacher's skills cost more than an environment step)."""
    posterior: bool = struct.field(**static, default=False)
    """The posterior teacher (jaxrl3m.teacher.posterior): the prior table re-weighted per
    abstract state by the agent's own estimate of each option's advantage,
    `P(k|s) ∝ P_LLM(k|s) exp(Q(s,k) / posterior_tau)`, updated inside every update from the
    teacher environments' transitions. False: the table as given (the fixed teacher)."""
    # --- coefficients (pytree leaves) ---
    gae_lambda: float = bounded(0.95, within="[0, 1]")
    """GAE lambda."""
    clip_eps: float = bounded(0.2, within="positive")
    """PPO clip range (policy and value)."""
    ent_coef: float = bounded(0.01, within="non-negative")
    """Entropy bonus weight."""
    vf_coef: float = bounded(0.5, within="non-negative")
    """Value loss weight."""
    kl_coef: float = bounded(0.0, within="non-negative")
    """lambda_0, the guidance weight at the first update; 0 is plain PPO."""
    kl_decay: float = bounded(0.0, within="non-negative")
    """linear: subtracted per update; exponential: factor per update."""
    kl_floor: float = bounded(0.0, within="non-negative")
    """lambda_t never decays below this (until the cut-off)."""
    kl_cutoff: int = -1
    """Update from which lambda_t = 0; -1 never."""
    prior_floor: float = bounded(0.01, within="(0, 1]", why="log 0 otherwise")
    """kl_direction=reverse: the prior is (1 - prior_floor) p + prior_floor / A, so that an
    action the prior rules out costs a finite KL (log 0 never appears)."""
    posterior_tau: float = bounded(0.003, within="positive",
                                   why="it divides the options' advantages")
    """posterior: the temperature of the options' advantages (smaller: trust them sooner;
    0.003 chosen on validation, `bench/validate.py posterior_tau`)."""
    posterior_floor: float = bounded(0.05, within="[0, 1)")
    """posterior: the prior is floored to `(1 - floor) p + floor / K` before the update, so that
    an option the table rules out (a one-hot wrong row) can still win."""
    posterior_rate: float = bounded(0.05, within="(0, 1]")
    """posterior: the weight of one update's samples in the running advantage estimates."""

    # --- derived sizes ---
    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    @property
    def num_teacher_envs(self) -> int:
        return min(self.teacher_envs, self.num_envs)

    def check(self) -> "PPOConfig":
        """Raises `ConfigError` naming the field and the fix; returns self."""
        bad = check_sections(self)
        if self.kl_schedule == "exponential" and not 0 < float(self.kl_decay) <= 1:
            bad("kl_decay", f"an exponential schedule needs a factor in (0, 1], got "
                            f"{self.kl_decay}")
        return self




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


METRICS = ("env_steps", "episodes", "return", "success", "length", *collector.STARTED_METRICS,
           "kl_teacher", "lambda", "entropy", "policy_loss", "value_loss", "approx_kl", "loss")
"""What `update` reports per update (episode statistics over the episodes that ended in the
update's rollout, NaN when none did; and over those that started K updates back,
`collector.STARTED_METRICS`)."""


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
class PPO(Algorithm):
    """Pure functions for one configuration's shapes (see `make_ppo`)."""

    past_policies: tuple[str, ...] = ()
    """Source tasks whose frozen policies are teacher options after the skills."""

    head: ClassVar[str] = "actor_critic"
    metrics: ClassVar[tuple[str, ...]] = METRICS

    def apply(self, params: Any, obs: Observation) -> tuple[jax.Array, jax.Array]:
        """`(logits, value)` for a batch of observations."""
        return self.network.apply(params, obs)

    def act(self, params: Any, obs: Observation) -> jax.Array:
        """`f32[N, A]`: the policy's logits (evaluation samples or takes the argmax)."""
        return self.network.logits(params, obs)

    def teacher(self, table: Any, past: tuple = ()) -> Teacher:
        """The teacher this algorithm expects, from a table (and past policies' parameters)."""
        return Teacher.create(self.config.task, table, past, self.past_policies, self.network)

    def divergence_hint(self, config: PPOConfig) -> str:
        return (f"Lower lr (now {float(config.lr):g}) or kl_coef (now "
                f"{float(config.kl_coef):g}), or clip gradients harder (max_grad_norm).")

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

    def init(self, key: jax.Array, params: Any = None, config: PPOConfig | None = None
             ) -> PPOState:
        """The state before the first update (`params` to start from given ones)."""
        c = self.hp(config)
        k_params, k_env, key = jax.random.split(key, 3)
        if params is None:
            params = self.init_params(k_params)
        options = None
        if c.posterior and self.guided:
            options = OptionValues.zeros(c.guide.num_states,
                                         len(c.options) + len(self.past_policies))
        return PPOState(params=params, opt_state=self.optimizer(c).init(params),
                        env=collector.reset(self.env, k_env, c.num_envs,
                                            num_steps=c.num_steps), key=key,
                        update=jnp.zeros((), jnp.int32), options=options)

    def update(self, state: PPOState, inputs: Any = None, num_updates: int = 1,
               config: PPOConfig | None = None) -> tuple[PPOState, dict[str, jax.Array]]:
        """`num_updates` PPO updates in one `lax.scan` (jit it with `num_updates` static).
        `inputs`: the teacher (or an `Inputs` holding it). Returns the new state and
        `METRICS`, each `f32[num_updates]`."""
        c = self.hp(config)
        teacher = as_inputs(inputs).teacher
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
                targets, options = posterior_targets(
                    teacher, options, first.obs, first.action, first.extras["logp"],
                    adv[:, :n_t], lam, num_actions, c.posterior_tau, c.posterior_floor,
                    c.posterior_rate)
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
            metrics.update(collector.episode_metrics(tr, carry))
            metrics["env_steps"] = ((state.update + 1) * c.batch_size).astype(jnp.float32)
            metrics["lambda"] = lam
            state = PPOState(params=params, opt_state=opt_state, env=carry, key=key,
                             update=state.update + 1, options=options)
            return state, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, state, None, num_updates)


def make_ppo(config: PPOConfig, guided: bool = True, env: Any = None,
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


make_train = make_ppo
"""The name of PureJaxRL's entry point, kept for the code written against it."""

register("ppo", PPOConfig, make_ppo, "PPO with an optional KL term to the LLM teacher")
