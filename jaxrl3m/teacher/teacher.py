"""The teacher as one object: prior table + skills + past policies, on the device.

    teacher = Teacher.create("DoorKey", oracle_table("DoorKey"))
    probs = teacher.probs(obs)              # f32[N, A]: pi_L(a|s) for a batch of observations
    logp = teacher.log_probs(obs, 0.01)     # log of (1 - 0.01) pi_L + 0.01 / A: never log 0
    a = teacher.sample(key, obs, k=5)       # i32[N, 5]: k proposals per state

`pi_L(a|s) = sum_k P_L(k | c(s)) pi_k(a|s)` (`jaxrl3m.teacher.mixture`). A `Teacher` is a pytree:
the table and the past policies' parameters are leaves (arguments of jitted functions, never
closures: one compiled program serves every table of a shape), the option names and the past
policies' network are static. PPO's guidance, the teacher acting alone, and the value-based and
offline algorithms' priors all use this one object; `compose` builds it from a run's settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ..core.io import atomic_write_text
from ..core.parallel import any_seed
from ..errors import ConfigError
from .. import envs
from ..envs.task import Guidance
from ..envs.types import Observation
from .mixture import mix, option_distributions, teacher_probs
from .options import (oracle_table, past_policy_option, teacher_tasks, uniform_table,
                      with_past_policies)
from .table import TableError, load_table

SHIPPED_TABLES = Path(__file__).resolve().parent.parent / "llm_cache"
"""The prior tables shipped with the package (`llm_cache/` in a checkout)."""

PRIORS = ("oracle", "uniform", "none")
TEACHER_MODES = ("prior", "source", "prior+source")


class Prior(struct.PyTreeNode):
    """A prior over actions `p(a|s)`, a pure function of the observation: subclasses define
    `probs`; log-probabilities with a floor and proposals (`k` samples per state) follow from it.
    The value-based and variational algorithms need nothing else of a prior."""

    def probs(self, obs: Observation) -> jax.Array:
        """`f32[N, A]`: `p(.|s)` for a batch of observations."""
        raise NotImplementedError

    def log_probs(self, obs: Observation, floor: float | jax.Array = 0.0) -> jax.Array:
        """`f32[N, A]`: `log((1 - floor) p + floor / A)`; with `floor > 0` no action has
        probability 0 (so no `log 0`); `floor = 0` is `log p` (may be `-inf`)."""
        return floored_log(self.probs(obs), floor)

    def sample(self, key: jax.Array, obs: Observation, k: int,
               floor: float | jax.Array = 0.0) -> jax.Array:
        """`i32[N, k]`: `k` actions drawn independently from `p` (with `floor`) per state."""
        return propose(key, self.log_probs(obs, floor), k)


def floored_log(probs: jax.Array, floor: float | jax.Array = 0.0) -> jax.Array:
    """`log((1 - floor) probs + floor / A)` over the last axis."""
    return jnp.log((1.0 - floor) * probs + floor / probs.shape[-1])


def propose(key: jax.Array, logp: jax.Array, k: int) -> jax.Array:
    """`i32[..., k]`: `k` independent draws from each row of `logp` (`f32[..., A]`); duplicates
    are kept, so likelier actions are proposed more often.

    By the inverse CDF: one uniform number per draw (Gumbel-max would need `A` per draw, and
    random bits dominate the cost of proposals on a CPU). An action of probability 0 is never
    drawn: the draw is the first action whose cumulative probability exceeds `u * total`."""
    cdf = jnp.cumsum(jnp.exp(logp), axis=-1)  # (..., A)
    u = jax.random.uniform(key, (*logp.shape[:-1], k)) * cdf[..., -1:]
    draws = jnp.sum(u[..., :, None] >= cdf[..., None, :], axis=-1)
    return jnp.minimum(draws, logp.shape[-1] - 1).astype(jnp.int32)


class TablePrior(Prior):
    """`p(a|s) = table[index(s)]`: a prior given per discrete state (probe tasks such as Frozen
    Lake). `index(obs)` maps one observation to its row (static: a module-level function)."""

    table: jax.Array  # f32[S, A], rows sum to 1
    index: Any = struct.field(pytree_node=False, default=None)

    def probs(self, obs: Observation) -> jax.Array:
        return self.table[jax.vmap(self.index)(obs)]


def _one_row(obs: Observation) -> jax.Array:
    return jnp.zeros((), jnp.int32)


def uniform_action_prior(num_actions: int = 7) -> TablePrior:
    """`p(a|s) = 1 / A` in every state: no knowledge at all (with `inference: exact`, acting
    from it is sampling from `softmax(Q / tau)`)."""
    return TablePrior(table=jnp.full((1, num_actions), 1.0 / num_actions), index=_one_row)


class Teacher(Prior):
    """`pi_L` over a task's skills and past policies (see the module docstring)."""

    table: jax.Array  # f32[S, K + P]: S abstract states of the task's guidance
    past: tuple = ()  # parameters of the P past policies (one network, `past_net`)
    task: str = struct.field(pytree_node=False, default="")
    guide: Guidance | None = struct.field(pytree_node=False, default=None)  # the task's guidance
    past_policies: tuple[str, ...] = struct.field(pytree_node=False, default=())  # source tasks
    past_net: Any = struct.field(pytree_node=False, default=None)  # jaxrl3m.nets.Network

    @classmethod
    def create(cls, task: str, table: Any, past: tuple = (), past_policies: tuple[str, ...] = (),
               past_net: Any = None) -> "Teacher":
        """A checked teacher for `task`: `table` has one row per abstract state and one column
        per skill, then one per past policy (`past_policies` names their source tasks, `past`
        holds their parameters, `past_net` is their network)."""
        guide = envs.guidance(task)
        options = guide.options
        past, past_policies = tuple(past), tuple(past_policies)
        if len(past) != len(past_policies):
            raise ConfigError(
                f"the teacher has {len(past_policies)} past policies {list(past_policies)} but "
                f"{len(past)} parameter sets were given; pass one per past policy")
        if past and past_net is None:
            raise ConfigError("past policies need their network (past_net)")
        table = jnp.asarray(table, jnp.float32)
        want = (guide.num_states, len(options) + len(past_policies))
        if table.shape != want:
            names = list(options) + [past_policy_option(t) for t in past_policies]
            raise ConfigError(
                f"prior table has shape {tuple(table.shape)} but task {task!r} needs {want} "
                f"({guide.num_states} abstract states x options {names}); build it for this "
                f"task (python -m jaxrl3m.precompute_priors --task {task})"
                + ("; past-policy columns come from teacher.options.with_past_policies"
                   if past_policies else ""))
        return cls(table=table, past=past, task=task, guide=guide, past_policies=past_policies,
                   past_net=past_net)

    @property
    def options(self) -> tuple[str, ...]:
        """The K skills: the table's first K columns."""
        return self.guide.options

    def abstract_states(self, obs: Observation) -> jax.Array:
        """`i32[N]`: the abstract state of each observation of a batch (the table's rows)."""
        return jax.vmap(self.guide.abstract_state)(obs)

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's columns: the skills, then "follow the policy that solved <task>"."""
        return self.options + tuple(past_policy_option(t) for t in self.past_policies)

    def _extra(self, obs: Observation) -> jax.Array | None:
        if not self.past:
            return None
        return jnp.stack([jax.nn.softmax(self.past_net.logits(p, obs)) for p in self.past],
                         axis=1)  # (N, P, A)

    def probs(self, obs: Observation) -> jax.Array:
        """`f32[N, A]`: `pi_L(.|s)` for a batch of observations."""
        return jax.vmap(teacher_probs, in_axes=(None, 0, None, 0 if self.past else None))(
            self.table, obs, self.guide, self._extra(obs))

    def option_probs(self, obs: Observation) -> tuple[jax.Array, jax.Array]:
        """`(f32[N, K + P, A], bool[N, K + P])`: each option's action distribution in each
        observation of a batch, and whether it applies (the table's columns)."""
        return jax.vmap(option_distributions, in_axes=(0, None, 0 if self.past else None))(
            obs, self.guide, self._extra(obs))

    def mixture(self, obs: Observation, option_probs: jax.Array, applicable: jax.Array
                ) -> jax.Array:
        """`f32[N, A]`: `pi_L` from `option_probs`' outputs (equals `probs(obs)`, without
        computing the skills again)."""
        rows = self.table[self.abstract_states(obs)]
        return jax.vmap(mix)(rows, option_probs, applicable)


def teacher_logits(teacher: Teacher, obs: Observation) -> jax.Array:
    """The teacher as a policy for `jaxrl3m.core.collector.Sample`: `params` is the teacher."""
    return teacher.log_probs(obs)


def exploring_teacher_logits(params: tuple[Teacher, jax.Array], obs: Observation) -> jax.Array:
    """`params = (teacher, epsilon)`: with probability epsilon a uniformly random action."""
    teacher, epsilon = params
    return teacher.log_probs(obs, epsilon)


# ---------------------------------------------------------------------------------------------
# From a run's settings to a teacher
# ---------------------------------------------------------------------------------------------
def resolve_prior(prior: str, task: str, label: str = "config key 'prior'"
                  ) -> tuple[np.ndarray, dict[str, Any]]:
    """`(table f32[S, K(+P)], description)` for `oracle`, `uniform`, `none` (a uniform table
    that no one reads: plain RL) or a table file. A file path that does not exist from here is
    looked up among the tables shipped with the package by its name (`llm_cache/X.json`).
    Errors start with `label`, what the caller calls the prior (a config key, a flag)."""
    if prior.startswith("shuffled:"):
        table, info = resolve_prior(prior.split(":", 1)[1], task, label)
        return shuffle_rows(table, task), {**info, "prior": prior}
    if prior == "oracle":
        return oracle_table(task), {"prior": "oracle"}
    if prior in ("uniform", "none"):
        return uniform_table(task), {"prior": prior}
    path = prior_path(prior)
    if path.suffix != ".json" and not path.exists():
        raise ConfigError(f"{label}: {prior!r} is neither oracle, uniform, none nor "
                          "a prior table file (e.g. llm_cache/ColoredDoorKey-smollm2.json)")
    if path.is_dir():
        raise ConfigError(f"{label}: {prior!r} is a folder; give a prior table file "
                          "in it (e.g. llm_cache/ColoredDoorKey-smollm2.json)")
    try:
        table = load_table(path, task)
    except TableError as e:
        raise ConfigError(f"{label}: {e}") from None
    meta = table.metadata
    return table.probs, {"prior": prior, "prior_model": meta.get("model"),
                         "prior_backend": meta.get("backend"),
                         "prior_agreement": meta.get("agreement"),
                         "prior_past_policies": list(table.past_policies)}


BUILTIN_PRIORS = ("oracle", "uniform", "none")
"""Priors computed by the library itself (no file)."""


def prior_path(prior: str) -> Path | None:
    """The table file a `prior` value reads (a path that does not exist from here is looked up
    among the shipped tables by its name); None for the built-in priors."""
    prior = prior.removeprefix("shuffled:")
    if prior in BUILTIN_PRIORS:
        return None
    path = Path(prior)
    if not path.exists() and (SHIPPED_TABLES / path.name).is_file() and path.suffix == ".json":
        path = SHIPPED_TABLES / path.name
    return path


def shuffle_rows(table: np.ndarray, task: str, seed: int = 0, tries: int = 1000) -> np.ndarray:
    """A wrong prior with the right marginals (`prior=shuffled:<prior>`): `table`'s rows permuted
    among the task's reachable abstract states. Many states share a row (the oracle says
    "explore" in most of them), so a random permutation leaves most advice right; of `tries`
    seeded permutations the one that keeps the fewest states' top option is taken. Rows of
    unreachable states are kept."""
    states = np.asarray(reachable_states(task))
    rows = np.asarray(table)[states]
    top = rows.argmax(1)
    rng = np.random.default_rng(seed)
    best, kept = None, len(states) + 1
    for _ in range(tries):
        perm = rng.permutation(len(states))
        same = int((top[perm] == top).sum())
        if same < kept:
            best, kept = perm, same
    out = np.array(table, copy=True)
    out[states] = rows[best]
    return out


def compose(task: str, prior: str, mode: str = "prior", source: tuple[str, Any] | None = None,
            source_weight: float = 0.5, past_net: Any = None
            ) -> tuple[Teacher, dict[str, Any]]:
    """The teacher of a run, and what it is made of.

    mode `prior`: the prior table's skills; `source`: the frozen source policy alone
    (kickstarting); `prior+source`: the skills plus the source policy as one more option, with
    `source_weight` of every abstract state's prior unless the table has that column itself
    (the language model chose its share). `source = (source task, parameters)` of the source
    policy, whose network is `past_net`.
    """
    if mode not in TEACHER_MODES:
        raise ConfigError(f"config key 'teacher': {mode!r} is unknown; valid: "
                          f"{', '.join(TEACHER_MODES)}")
    table, info = resolve_prior(prior, task)
    source_task = source[0] if source else None
    in_table = info.get("prior_past_policies") or []
    if in_table and (mode != "prior+source" or in_table != [source_task]):
        raise ConfigError(
            f"config key 'prior': {prior!r} has a column for the policy that solved "
            f"{in_table}, which needs teacher=prior+source with a source policy trained on "
            + (f"{in_table[0]} (the source is {source_task})" if source_task else
               f"{in_table[0]} (source=RUN_DIR)"))
    if mode == "prior":
        return Teacher.create(task, table), info
    if source is None:
        raise ConfigError(f"teacher={mode} needs a source policy: set source=RUN_DIR")
    weight: Any = 1.0 if mode == "source" else source_weight
    if in_table:
        weight = "from the table"
    else:
        table = with_past_policies(table, 1, weight)
    info = {**(info if mode == "prior+source" else {"prior": "none"}), "teacher": mode,
            "source_weight": weight}
    return Teacher.create(task, table, (source[1],), (source_task,), past_net), info


# ---------------------------------------------------------------------------------------------
# Which abstract states occur
# ---------------------------------------------------------------------------------------------
def _visited_programs(env, num_envs: int, num_steps: int):
    """`visited_states`' two jitted programs: `run(params, key)`, the observations of a rollout
    of `num_envs` x `num_steps` (`params = (teacher, epsilon)`), and
    `states(teacher, flat_obs)`, their abstract states."""
    from ..core import collector
    run = jax.jit(lambda params, key: collector.rollout(
        env, collector.Sample(exploring_teacher_logits), params,
        collector.reset(env, jax.random.fold_in(key, 0), num_envs),
        jax.random.fold_in(key, 1), num_steps)[1].obs)
    states = jax.jit(lambda teacher, flat: teacher.abstract_states(flat))
    return run, states


def _flat(obs):
    return jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), obs)


def visited_states(env, teacher: Teacher, key: jax.Array, num_envs: int, num_steps: int,
                   epsilon: float = 0.3) -> np.ndarray:
    """`bool[S]`: abstract states seen while acting with the teacher and, with probability
    `epsilon`, a uniformly random action (the common collector)."""
    run, states = _visited_programs(env, num_envs, num_steps)
    obs = run((teacher, jnp.float32(epsilon)), key)
    guide = teacher.guide
    index = np.asarray(states(teacher, _flat(obs)))
    bad = index[(index < 0) | (index >= guide.num_states)]
    if bad.size:
        raise ValueError(
            f"abstraction {guide.name!r} (version {guide.version}) gave abstract state "
            f"{int(bad[0])}, outside [0, {guide.num_states}): its abstract_state (or a factor's "
            f"value, jaxrl3m.envs.factored) must stay in range, or num_states must grow")
    seen = np.zeros(guide.num_states, bool)
    seen[index] = True
    return seen


REACHABLE_FILE = Path(__file__).resolve().parent / "reachable.json"
"""The reachable abstract states of the built-in tasks, computed by `compute_reachable` and
shipped (a rollout of `REACHABLE_BUDGET` teacher steps per task: 5-15 s on 2 CPU cores, mostly
compilation, each time a process asked) with each entry's `reachable_fingerprint`;
`python -m jaxrl3m.teacher.teacher` rewrites it, and the test suite checks it (recomputing the
tasks whose fingerprint is no longer the recorded one)."""

REACHABLE_BUDGET = (256, 300)
"""Environments x steps of `compute_reachable`'s rollout. 256 x 300 finds the states that
1024 x 300 found for every built-in task (checked 2026-12-07; 128 x 300 misses one of
LockedRoom's)."""

_REACHABLE: dict[tuple[str, Guidance], tuple[int, ...]] = {}


def _reachable_inputs(task: str):
    """`compute_reachable`'s environment, teacher, key and exploration rate."""
    table = oracle_table(task) if envs.guidance(task).oracle else uniform_table(task)
    return envs.make(task), Teacher.create(task, table), jax.random.key(0), 0.3


def compute_reachable(task: str) -> tuple[int, ...]:
    """The abstract states that occur in `task`: those the oracle teacher (the uniform one for a
    task without an oracle) with 30% random actions visits in `REACHABLE_BUDGET` environments x
    steps (key 0; deterministic)."""
    env, teacher, key, epsilon = _reachable_inputs(task)
    seen = visited_states(env, teacher, key, *REACHABLE_BUDGET, epsilon=epsilon)
    return tuple(int(i) for i in np.flatnonzero(seen))


def reachable_fingerprint(task: str, states: tuple[int, ...]) -> str:
    """The fingerprint of a shipped entry: a hash of `states` together with everything
    `compute_reachable(task)` is a function of: its two programs as lowered (StableHLO without
    source locations: the task's rules, the teacher, the collector, the budget), their inputs
    (the table, key and exploration rate), JAX's version and the platform. When the recorded
    fingerprint is this one, the entry holds what the same deterministic computation returned,
    so it need not be recomputed to be trusted (as with a recomputation, another processor's
    floating point is assumed not to change which states a 76,800-step rollout visits); states
    edited by hand, or a changed program, make it stale. Lowering takes a second or two where
    the rollout takes 5-25 s."""
    import hashlib

    import jaxlib
    env, teacher, key, epsilon = _reachable_inputs(task)
    run, abstract = _visited_programs(env, *REACHABLE_BUDGET)
    params = (teacher, jnp.float32(epsilon))
    lowered = run.lower(params, key)
    flat = jax.eval_shape(_flat, lowered.out_info)
    digest = hashlib.sha256()
    for part in (lowered.as_text(), abstract.lower(teacher, flat).as_text(),
                 f"{jax.__version__} {jaxlib.__version__} {jax.default_backend()}",
                 json.dumps([int(i) for i in states])):
        digest.update(part.encode())
    for leaf in jax.tree.leaves((params, jax.random.key_data(key))):
        digest.update(np.asarray(leaf).tobytes())
    return digest.hexdigest()


def _shipped_file() -> dict:
    """`REACHABLE_FILE`'s contents, or `{}` when it is missing or unreadable."""
    try:
        return json.loads(REACHABLE_FILE.read_text())
    except (OSError, ValueError):
        return {}


def shipped_reachable() -> dict[str, tuple[int, ...]]:
    """`REACHABLE_FILE`'s states per task, for the tasks whose guidance has the abstraction
    (name and version) the file was made with (the others are computed)."""
    data = _shipped_file()
    out = {}
    for task, states in data.get("states", {}).items():
        try:
            guide = envs.guidance(task)
        except ValueError:
            continue
        if data.get("versions", {}).get(task) == [guide.name, guide.version]:
            out[task] = tuple(states)
    return out


def shipped_fingerprints() -> dict[str, str]:
    """`REACHABLE_FILE`'s `reachable_fingerprint` per task, of its states as computed then
    (tasks computed before fingerprints were recorded have none)."""
    return dict(_shipped_file().get("fingerprints", {}))


def reachable_states(task: str) -> tuple[int, ...]:
    """The abstract states that occur in `task`: its guidance's own list, else the shipped ones
    (`REACHABLE_FILE`, the built-in tasks'), else `compute_reachable` (kept for the process)."""
    guide = envs.guidance(task)
    if guide.reachable is not None:
        return tuple(guide.reachable)
    if (task, guide) not in _REACHABLE:
        shipped = shipped_reachable()
        _REACHABLE[task, guide] = shipped[task] if task in shipped else compute_reachable(task)
    return _REACHABLE[task, guide]


def write_reachable(tasks: tuple[str, ...] | None = None) -> dict[str, tuple[int, ...]]:
    """Recomputes the shipped reachable states of `tasks` (default every task with a teacher;
    the other tasks' shipped entries are kept) and writes `REACHABLE_FILE` atomically."""
    tasks = tasks or teacher_tasks()
    states = {t: v for t, v in shipped_reachable().items() if t in teacher_tasks()}
    fingerprints = {t: f for t, f in shipped_fingerprints().items() if t in states}
    for t in tasks:
        print(f"{t}: computing the reachable abstract states...", flush=True)
        states[t] = compute_reachable(t)
        fingerprints[t] = reachable_fingerprint(t, states[t])
    states = {t: states[t] for t in teacher_tasks() if t in states}
    atomic_write_text(REACHABLE_FILE, json.dumps({
        "versions": {t: [envs.guidance(t).name, envs.guidance(t).version] for t in states},
        "fingerprints": {t: fingerprints[t] for t in states if t in fingerprints},
        "made_by": "python -m jaxrl3m.teacher.teacher (compute_reachable: the oracle teacher "
                   "with 30%% random actions, %d environments x %d steps, key 0)"
                   % REACHABLE_BUDGET,
        "states": {t: list(v) for t, v in states.items()}}, indent=1) + "\n")
    return states


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


if __name__ == "__main__":
    import sys
    for _task, _states in write_reachable(tuple(sys.argv[1:]) or None).items():
        print(f"{_task}: {len(_states)} reachable abstract states")
    print(f"wrote {REACHABLE_FILE}")
