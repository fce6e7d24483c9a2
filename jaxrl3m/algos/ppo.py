"""PPO guided by a teacher, trained end to end in one `jit` (PureJaxRL style).

    loss = L_clip + vf_coef * L_value - ent_coef * H[pi_theta] + lambda_t * mean_s KL(pi_L || pi_theta)

`make_train(config)` returns a `Trainer` of pure functions:

    trainer = make_train(PPOConfig(task="DoorKey", kl_coef=1.0))
    out = jax.jit(trainer.train)(jax.random.key(0), table)             # one seed, one jit
    outs = jax.jit(jax.vmap(trainer.train, (0, None)))(keys, table)     # seeds as a vmap

`train` runs every update in one `lax.scan`; for logging and checkpoints the command line drives
`init` and `update` (a jitted chunk of updates) from Python instead, with identical results. The
prior table is an argument, never a closure, so one compiled program serves every table of the
task's shape. The teacher `pi_L` is computed after each rollout, in one batch, for the states of
the first `teacher_envs` environments (all environments are i.i.d., so this is an unbiased
subsample of states), and skipped altogether while `lambda_t = 0`.

Past policies (transfer learning): `make_train(config, past_policies=("DoorKey",))` adds the
frozen policy learned on DoorKey to the teacher's options, after the skills ("follow the policy
that solved DoorKey"); the table then has a column for it and `update`/`train` take the frozen
parameters as `past=(params,)`, an argument like the table. A table with all its mass on that
column is kickstarting (the source policy alone as the teacher).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from .. import envs
from ..config import ConfigError
from ..envs.abstraction import NUM_ABSTRACT_STATES
from ..envs.types import Observation
from ..teacher.mixture import teacher_probs
from ..teacher.options import TASK_OPTIONS, past_policy_option
from . import losses
from .networks import NETWORKS, VIEWS, ActorCritic, cell_codes

static = functools.partial(struct.field, pytree_node=False)


@struct.dataclass
class PPOConfig:
    """Hyperparameters. Static fields fix shapes and code paths (changing one recompiles);
    the others are pytree leaves, so they can be traced and `vmap`ped (a sweep over `kl_coef`
    is one program)."""

    # --- task (static) ---
    task: str = static(default="ColoredDoorKey")
    """DoorKey, LavaDoorKey or ColoredDoorKey."""
    view_size: int = static(default=3)
    """Side of the agent's egocentric view."""
    max_steps: int = static(default=150)
    """Episode time limit (truncation, bootstrapped)."""
    # --- sizes (static) ---
    num_envs: int = static(default=64)
    """Parallel environments."""
    num_steps: int = static(default=32)
    """Rollout length per update; one update consumes num_envs * num_steps env steps."""
    total_steps: int = static(default=1_000_000)
    """Environment steps to train for (rounded down to whole updates)."""
    update_epochs: int = static(default=4)
    """Passes over each rollout."""
    num_minibatches: int = static(default=4)
    """Minibatches per epoch; must divide num_envs * num_steps."""
    # --- network (static) ---
    view: str = static(default="egocentric")
    """egocentric (a window around the agent, rotated to its heading) or allocentric (the
    whole map with the agent marked); see jaxrl3m.algos.networks.cell_codes."""
    window: int = static(default=11)
    """Side of the egocentric window (odd)."""
    network: str = static(default="mlp")
    """mlp or cnn torso (see jaxrl3m.algos.networks)."""
    embed_dim: int = static(default=4)
    """Size of the embedding of each cell's joint (tag, colour, state, agent) code."""
    hidden: tuple[int, ...] = static(default=(64, 64))
    """Widths of the dense layers."""
    channels: int = static(default=16)
    """Channels of the cnn torso's convolutions."""
    relative_colours: bool = static(default=True)
    """Code colours relative to the door's colour (see jaxrl3m.algos.networks)."""
    # --- guidance (static part) ---
    kl_schedule: str = static(default="constant")
    """lambda_t schedule: constant, linear or exponential (see losses.kl_weight)."""
    teacher_envs: int = static(default=256)
    """pi_L is computed on the first min(teacher_envs, num_envs) environments' states, which
    enter the KL term (all environments are i.i.d., so this subsamples states without bias;
    the teacher's skills cost more than an environment step)."""
    anneal_lr: bool = static(default=True)
    """Decay the learning rate linearly to 0 over the run."""
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

    @property
    def options(self) -> tuple[str, ...]:
        """The task's skills (the columns of its prior tables)."""
        return TASK_OPTIONS[self.task]

    def make_env(self):
        return envs.make(self.task, view_size=self.view_size, max_steps=self.max_steps)

    def check(self) -> "PPOConfig":
        """Raises `ConfigError` naming the field and the fix; returns self."""
        def bad(key, why):
            raise ConfigError(f"config key {key!r}: {why}")
        if self.task not in TASK_OPTIONS:
            bad("task", f"{self.task!r} is not a task with a teacher; valid: "
                        f"{', '.join(TASK_OPTIONS)}")
        for key in ("num_envs", "num_steps", "total_steps", "update_epochs", "num_minibatches",
                    "embed_dim", "channels", "max_steps"):
            if getattr(self, key) < 1:
                bad(key, f"must be at least 1, got {getattr(self, key)}")
        if self.batch_size % self.num_minibatches:
            bad("num_minibatches", f"{self.num_minibatches} does not divide num_envs * "
                                   f"num_steps = {self.batch_size}")
        if self.num_updates < 1:
            bad("total_steps", f"{self.total_steps} is less than one update "
                               f"(num_envs * num_steps = {self.batch_size})")
        if self.view not in VIEWS:
            bad("view", f"{self.view!r} is unknown; valid: {', '.join(VIEWS)}")
        if self.window < 3 or self.window % 2 == 0:
            bad("window", f"must be odd and at least 3, got {self.window}")
        if self.network not in NETWORKS:
            bad("network", f"{self.network!r} is unknown; valid: {', '.join(NETWORKS)}")
        if self.kl_schedule not in losses.KL_SCHEDULES:
            bad("kl_schedule", f"{self.kl_schedule!r} is unknown; valid: "
                               f"{', '.join(losses.KL_SCHEDULES)}")
        if self.teacher_envs < 1:
            bad("teacher_envs", f"must be at least 1, got {self.teacher_envs}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            bad("hidden", f"must be a non-empty list of positive widths, got {self.hidden}")
        for key in ("lr", "clip_eps", "max_grad_norm"):
            if not float(getattr(self, key)) > 0:
                bad(key, f"must be positive, got {getattr(self, key)}")
        for key in ("ent_coef", "vf_coef", "kl_coef", "kl_decay", "kl_floor"):
            if not float(getattr(self, key)) >= 0:
                bad(key, f"must be non-negative, got {getattr(self, key)}")
        if not 0 <= float(self.gamma) <= 1 or not 0 <= float(self.gae_lambda) <= 1:
            bad("gamma" if not 0 <= float(self.gamma) <= 1 else "gae_lambda", "must be in [0, 1]")
        if self.kl_schedule == "exponential" and not 0 < float(self.kl_decay) <= 1:
            bad("kl_decay", f"an exponential schedule needs a factor in (0, 1], got "
                            f"{self.kl_decay}")
        self.make_env()  # checks the environment options
        return self


STATIC_FIELDS = tuple(f.name for f in dataclasses.fields(PPOConfig)
                      if not f.metadata.get("pytree_node", True))


# ---------------------------------------------------------------------------------------------
# State and outputs
# ---------------------------------------------------------------------------------------------
class RunnerState(struct.PyTreeNode):
    """Everything that changes during training (a checkpoint saves exactly this)."""

    params: Any
    opt_state: Any
    env_state: envs.EnvState  # [N]
    obs: Observation  # [N]
    ep_return: jax.Array  # f32[N]: return so far of each environment's current episode
    key: jax.Array  # PRNG key
    update: jax.Array  # i32[]: updates done


class Transition(NamedTuple):
    cells: jax.Array  # i32[T, N, C]: the network's input codes (see networks.cell_codes)
    carried: jax.Array  # i32[T, N]
    action: jax.Array  # i32[T, N]
    logp: jax.Array  # f32[T, N]
    value: jax.Array  # f32[T, N]
    reward: jax.Array  # f32[T, N]
    terminated: jax.Array  # bool[T, N]
    done: jax.Array  # bool[T, N]
    v_final: jax.Array  # f32[T, N]: value of final_obs (used where truncated)
    teacher_obs: Observation | None  # [T, N_teacher]: first N_teacher envs' observations (guided)
    length: jax.Array  # i32[T, N]: length of the episode if it ended at this step


METRICS = ("env_steps", "episodes", "return", "success", "length", "kl_teacher", "lambda",
           "entropy", "policy_loss", "value_loss", "approx_kl", "loss")
"""What `update` reports per update (episode statistics over the episodes that ended in the
update's rollout; NaN when none did)."""


# ---------------------------------------------------------------------------------------------
# The builder
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Trainer:
    """Pure functions for one configuration's shapes (see `make_train`)."""

    config: PPOConfig
    guided: bool = True
    custom_env: Any = None
    past_policies: tuple[str, ...] = ()
    """Source tasks whose frozen policies are teacher options after the skills."""

    @property
    def options(self) -> tuple[str, ...]:
        """The teacher's options, the prior table's columns: the skills, then past policies."""
        return self.config.options + tuple(past_policy_option(t) for t in self.past_policies)

    @property
    def env(self):
        """The task's environment (or the one given to `make_train`)."""
        return self.custom_env if self.custom_env is not None else self.config.make_env()

    @property
    def network(self) -> ActorCritic:
        c = self.config
        return ActorCritic(network=c.network, embed_dim=c.embed_dim, hidden=tuple(c.hidden),
                           channels=c.channels, num_actions=self.env.num_actions)

    def encode(self, obs: Observation) -> tuple[jax.Array, jax.Array]:
        """The network's input codes for a batch of observations."""
        c = self.config
        return cell_codes(obs, c.view, c.window, c.relative_colours)

    def apply(self, params: Any, obs: Observation) -> tuple[jax.Array, jax.Array]:
        """`(logits, value)` for a batch of observations."""
        return self.network.apply(params, *self.encode(obs))

    def _hp(self, config: PPOConfig | None) -> PPOConfig:
        if config is None:
            return self.config
        for name in STATIC_FIELDS:
            if getattr(config, name) != getattr(self.config, name):
                raise ConfigError(f"config key {name!r} is static (it fixes shapes or code); "
                                  f"build a new trainer with make_train to change it")
        return config

    def optimizer(self, c: PPOConfig) -> optax.GradientTransformation:
        steps = c.num_updates * c.update_epochs * c.num_minibatches
        lr = (lambda count: c.lr * (1.0 - jnp.minimum(count, steps) / steps)) if c.anneal_lr \
            else c.lr
        return optax.chain(optax.clip_by_global_norm(c.max_grad_norm),
                           optax.adam(lr, eps=1e-5))

    def init_params(self, key: jax.Array) -> Any:
        obs = jax.tree.map(lambda x: x[None], self.env.reset(jax.random.key(0)).obs)
        return self.network.init(key, *self.encode(obs))

    def init(self, key: jax.Array, params: Any = None, config: PPOConfig | None = None
             ) -> RunnerState:
        """The state before the first update (`params` to start from given ones)."""
        c = self._hp(config)
        k_params, k_env, key = jax.random.split(key, 3)
        if params is None:
            params = self.init_params(k_params)
        ts = jax.vmap(self.env.reset)(jax.random.split(k_env, c.num_envs))
        return RunnerState(params=params, opt_state=self.optimizer(c).init(params),
                           env_state=ts.state, obs=ts.obs,
                           ep_return=jnp.zeros((c.num_envs,), jnp.float32), key=key,
                           update=jnp.zeros((), jnp.int32))

    def teacher(self, table: jax.Array, obs: Observation, n: int | None = None,
                past: tuple[Any, ...] = ()) -> jax.Array:
        """`f32[n, A]`: pi_L for the first `n` (default `teacher_envs`) observations of a batch.

        `past`: the parameters of the past policies (one per `past_policies`, same network)."""
        self._check_past(past)
        n = self.config.num_teacher_envs if n is None else n
        head = jax.tree.map(lambda x: x[:n], obs)
        extra = None
        if past:
            codes = self.encode(head)
            extra = jnp.stack([jax.nn.softmax(self.network.apply(p, *codes)[0]) for p in past],
                              axis=1)  # (n, P, A)
        return jax.vmap(teacher_probs, in_axes=(None, 0, None, 0 if past else None))(
            table, head, self.config.options, extra)

    def _check_past(self, past: tuple[Any, ...]) -> None:
        if len(past) != len(self.past_policies):
            raise ConfigError(
                f"the trainer has {len(self.past_policies)} past policies "
                f"{list(self.past_policies)} but {len(past)} parameter sets were given; pass "
                f"past=(params, ...) with one per past policy")

    # -----------------------------------------------------------------------------------------
    def update(self, runner: RunnerState, table: jax.Array, num_updates: int = 1,
               config: PPOConfig | None = None, past: tuple[Any, ...] = ()
               ) -> tuple[RunnerState, dict[str, jax.Array]]:
        """`num_updates` PPO updates in one `lax.scan` (jit it with `num_updates` static).

        `past`: parameters of the frozen past policies (see `teacher`). Returns the new state
        and `METRICS`, each `f32[num_updates]`.
        """
        c = self._hp(config)
        self._check_past(past)
        env, net, tx = self.env, self.network, self.optimizer(c)
        n_t, num_actions = c.num_teacher_envs, env.num_actions
        table = jnp.asarray(table, jnp.float32)
        want = (NUM_ABSTRACT_STATES, len(self.options))
        if table.shape != want:
            raise ConfigError(
                f"prior table has shape {table.shape} but task {c.task!r} needs {want} "
                f"({NUM_ABSTRACT_STATES} abstract states x options {list(self.options)}); build "
                f"it for this task (python -m jaxrl3m.precompute_priors --task {c.task})"
                + ("; past-policy columns come from teacher.options.with_past_policies"
                   if self.past_policies else ""))

        def one_update(runner: RunnerState, _):
            lam = losses.kl_weight(c.kl_schedule, runner.update, c.kl_coef, c.kl_decay,
                                   c.kl_floor, c.kl_cutoff) if self.guided else jnp.float32(0)

            # COLLECT TRAJECTORIES
            def env_step(carry, _):
                env_state, obs, ep_return, key = carry
                key, k_act = jax.random.split(key)
                cells, carried = self.encode(obs)
                logits, value = net.apply(runner.params, cells, carried)
                action = jax.random.categorical(k_act, logits)
                logp = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
                ts = jax.vmap(env.step)(env_state, action)
                # Bootstrap values of truncated episodes' final observations (skipped when no
                # environment was truncated at this step).
                v_final = jax.lax.cond(ts.truncated.any(),
                                       lambda: self.apply(runner.params, ts.final_obs)[1],
                                       lambda: jnp.zeros_like(value))
                done = ts.done
                tr = Transition(cells=cells, carried=carried, action=action, logp=logp, value=value,
                                reward=ts.reward, terminated=ts.terminated, done=done,
                                v_final=v_final, length=env_state.t + 1,
                                teacher_obs=jax.tree.map(lambda x: x[:n_t], obs)
                                if self.guided else None)
                ep_return = ep_return + ts.reward
                out = (tr, jnp.where(done, ep_return, 0.0))
                ep_return = jnp.where(done, 0.0, ep_return)
                return (ts.state, ts.obs, ep_return, key), out

            (env_state, obs, ep_return, key), (traj, finished_return) = jax.lax.scan(
                env_step, (runner.env_state, runner.obs, runner.ep_return, runner.key), None,
                c.num_steps)

            # ADVANTAGES
            _, last_value = self.apply(runner.params, obs)
            v_next = jnp.concatenate([traj.value[1:], last_value[None]], axis=0)
            truncated = traj.done & ~traj.terminated
            v_tp1 = jnp.where(truncated, traj.v_final, v_next)
            adv, returns = losses.gae(traj.reward, traj.value, v_tp1, traj.terminated,
                                      traj.done, c.gamma, c.gae_lambda)

            # TEACHER: pi_L on the rollout's first n_t environments, all steps in one batch
            # (one navigation search for T * n_t states instead of T searches of n_t states:
            # the search's loop overhead is paid once). Skipped while lambda = 0.
            if self.guided:
                flat = jax.tree.map(lambda x: x.reshape(c.num_steps * n_t, *x.shape[2:]),
                                    traj.teacher_obs)
                pi_l = jax.lax.cond(
                    lam > 0, lambda: self.teacher(table, flat, len(flat.agent_dir), past),
                    lambda: jnp.zeros((c.num_steps * n_t, num_actions)))
                pi_l = pi_l.reshape(c.num_steps, n_t, num_actions)
            else:
                pi_l = jnp.zeros((c.num_steps, n_t, num_actions))

            # UPDATE NETWORK
            teacher_full = jnp.zeros((c.num_steps, c.num_envs, num_actions)).at[:, :n_t].set(
                pi_l)
            has_teacher = jnp.broadcast_to(jnp.arange(c.num_envs) < n_t,
                                           (c.num_steps, c.num_envs))
            batch = ((traj.cells, traj.carried), traj.action, traj.logp, traj.value, adv, returns, teacher_full,
                     has_teacher)
            batch = jax.tree.map(lambda x: x.reshape(c.batch_size, *x.shape[2:]), batch)

            def loss_fn(params, mb):
                obs, action, old_logp, old_value, adv, returns, pi_l, has_t = mb
                logits, value = net.apply(params, *obs)
                logp_all = jax.nn.log_softmax(logits)
                logp = jnp.take_along_axis(logp_all, action[:, None], 1)[:, 0]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg = losses.clipped_policy_loss(logp, old_logp, adv, c.clip_eps)
                vl = losses.clipped_value_loss(value, old_value, returns, c.clip_eps)
                ent = losses.entropy(logits).mean()
                loss = pg + c.vf_coef * vl - c.ent_coef * ent
                kl = losses.masked_mean(losses.teacher_kl(pi_l, logits), has_t & (lam > 0))
                if self.guided:
                    loss = loss + lam * kl
                approx_kl = jnp.mean((jnp.exp(logp - old_logp) - 1) - (logp - old_logp))
                return loss, dict(loss=loss, policy_loss=pg, value_loss=vl, entropy=ent,
                                  kl_teacher=kl, approx_kl=approx_kl)

            def epoch(carry, key):
                params, opt_state = carry
                perm = jax.random.permutation(key, c.batch_size)
                mbs = jax.tree.map(lambda x: x[perm].reshape(c.num_minibatches, -1,
                                                             *x.shape[1:]), batch)

                def minibatch(carry, mb):
                    params, opt_state = carry
                    grads, stats = jax.grad(loss_fn, has_aux=True)(params, mb)
                    updates, opt_state = tx.update(grads, opt_state, params)
                    return (optax.apply_updates(params, updates), opt_state), stats

                return jax.lax.scan(minibatch, (params, opt_state), mbs)

            key, k_epochs = jax.random.split(key)
            (params, opt_state), stats = jax.lax.scan(
                epoch, (runner.params, runner.opt_state),
                jax.random.split(k_epochs, c.update_epochs))

            # METRICS
            ended = traj.done
            count = ended.sum()
            per_episode = lambda x: jnp.where(count > 0, jnp.sum(jnp.where(ended, x, 0)) /
                                              jnp.maximum(count, 1), jnp.nan)
            metrics = {k: v.mean() for k, v in stats.items()}
            metrics.update(
                env_steps=((runner.update + 1) * c.batch_size).astype(jnp.float32),
                episodes=count.astype(jnp.float32),
                # `return` over all ended episodes; success = terminated with a reward.
                **{"return": per_episode(finished_return)},
                success=per_episode((traj.terminated & (traj.reward > 0)).astype(jnp.float32)),
                length=per_episode(traj.length.astype(jnp.float32)),
                **{"lambda": lam})
            runner = RunnerState(params=params, opt_state=opt_state, env_state=env_state,
                                 obs=obs, ep_return=ep_return, key=key,
                                 update=runner.update + 1)
            return runner, {k: metrics[k].astype(jnp.float32) for k in METRICS}

        return jax.lax.scan(one_update, runner, None, num_updates)

    def train(self, key: jax.Array, table: jax.Array, params: Any = None,
              config: PPOConfig | None = None, past: tuple[Any, ...] = ()
              ) -> tuple[RunnerState, dict[str, jax.Array]]:
        """The whole run: `init` then every update in one scan (jit it; vmap it over keys).
        `params`: start from these parameters (fine-tuning) instead of a fresh network."""
        c = self._hp(config)
        return self.update(self.init(key, params, c), table, c.num_updates, c, past)


def make_train(config: PPOConfig, guided: bool = True, env: Any = None,
               past_policies: tuple[str, ...] = ()) -> Trainer:
    """The trainer for `config` (checked). `guided=False` builds plain PPO: no teacher is
    computed and the loss has no KL term (with `kl_coef = 0` a guided trainer gives the same
    result, which a test proves). `env` replaces the task's environment (same interface as
    `jaxrl3m.envs.make`'s; probe environments in the tests use it). `past_policies` names the
    source tasks whose frozen policies join the teacher's options (their parameters are the
    `past` argument of `update` and `train`)."""
    past_policies = tuple(past_policies)
    if past_policies and not guided:
        raise ConfigError("past policies are teacher options; they need a guided trainer")
    return Trainer(config.check(), guided, env, past_policies)
