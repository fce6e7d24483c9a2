"""The policies that collect datasets, from a text spec, and mixtures of them by episode share.

A spec is `NAME[@EPSILON]`, a mixture `SPEC:SHARE,SPEC:SHARE,...`:
- `random`: uniform over the 7 actions;
- `oracle`, `uniform`, `shuffled:<prior>`, or a prior table file (`llm_cache/DoorKey-smollm2.json`):
  the task's teacher `pi_L` with that table, sampled;
- a run folder of `python -m jaxrl3m.train`: its trained policy (seed `0`, sampled, as its
  evaluation acts);
- `@EPSILON`: each action is uniformly random with probability EPSILON (else the policy's).
`random:1,oracle@0.5:1,oracle:1` is the "mixed" recipe: a third of the episodes each.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from ..core import collector
from ..core.config import ConfigError


@dataclasses.dataclass(frozen=True)
class EpsilonMix:
    """`inner` with each action replaced by a uniform one with probability `epsilon`
    (`params = (inner params, epsilon)`)."""

    inner: Any
    num_actions: int

    def __call__(self, params: Any, obs: Any, key: jax.Array):
        inner_params, epsilon = params
        k_inner, k_eps, k_rand = jax.random.split(key, 3)
        action, _ = self.inner(inner_params, obs, k_inner)
        n = action.shape[0]
        rand = jax.random.randint(k_rand, (n,), 0, self.num_actions, jnp.int32)
        return jnp.where(jax.random.uniform(k_eps, (n,)) < epsilon, rand, action), None


@dataclasses.dataclass(frozen=True)
class Component:
    """One policy of a (possibly single-policy) mixture."""

    spec: str  # the policy part, without epsilon and share
    epsilon: float
    share: float

    @property
    def label(self) -> str:
        return self.spec + (f"@{self.epsilon:g}" if self.epsilon else "")


def parse(spec: str, epsilon: float = 0.0) -> list[Component]:
    """The components of a policy spec (see the module docstring); `epsilon` applies to those
    without their own `@EPSILON`. Shares are normalised to sum to 1."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigError("--policy is empty: give random, oracle, a prior table, a run folder "
                          "or a mixture such as random:1,oracle@0.5:1,oracle:1")
    out = []
    for part in parts:
        share = 1.0
        head, sep, tail = part.rpartition(":")
        if sep and _is_number(tail):
            part, share = head, float(tail)
        eps = epsilon
        if "@" in part:
            part, e = part.rsplit("@", 1)
            if not _is_number(e):
                raise ConfigError(f"policy {part}@{e}: the epsilon after @ must be a number in "
                                  "[0, 1]")
            eps = float(e)
        if not 0 <= eps <= 1:
            raise ConfigError(f"policy {part!r}: epsilon {eps} is outside [0, 1]")
        if not share > 0:
            raise ConfigError(f"policy {part!r}: share {share} must be positive")
        out.append(Component(part, eps, share))
    total = sum(c.share for c in out)
    return [dataclasses.replace(c, share=c.share / total) for c in out]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def build(spec: str, env: Any, task: str) -> tuple[Any, Any]:
    """`(collector policy, params)` of one component's policy part (no epsilon)."""
    from ..teacher.teacher import Teacher, resolve_prior, teacher_logits
    if spec == "random":
        return collector.Random(env.num_actions), None
    if Path(spec).is_dir():
        return _run_policy(spec, task)
    table, _ = resolve_prior(spec, task, label=f"--policy {spec!r}: not random, a run folder, "
                                               "or a teacher's prior")
    return collector.Sample(teacher_logits), Teacher.create(task, table)


def _run_policy(run_dir: str, task: str) -> tuple[Any, Any]:
    from .runs import restore_run
    algo_config, run, s, state, _ = restore_run(run_dir)
    if algo_config.task != task:
        raise ConfigError(f"policy {run_dir!r} was trained on {algo_config.task!r}, the dataset "
                          f"is for {task!r}")
    params = jax.tree.map(lambda x: x[0], state.params)
    return s.algo.policy(greedy=False), s.algo.evaluation_params(params, s.inputs)


def component_policy(c: Component, env: Any, task: str) -> tuple[Any, Any]:
    """`(policy, params)` of a component, epsilon included."""
    policy, params = build(c.spec, env, task)
    return EpsilonMix(policy, env.num_actions), (params, jnp.float32(c.epsilon))
