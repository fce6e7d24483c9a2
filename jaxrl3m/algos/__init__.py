"""Learning algorithms on the shared core: the interface and registry (`base`), losses, and one
module per algorithm (`ppo`, `dqn`, `offline`: cql and bc). `get("ppo")` returns a registered algorithm's spec."""

from .base import REGISTRY, Algorithm, AlgorithmSpec, TaskSection, get, register
from . import dqn, dt, offline, ppo  # noqa: E402,F401  (register dqn, dt, cql, bc, ppo)

__all__ = ["Algorithm", "AlgorithmSpec", "REGISTRY", "TaskSection", "get", "register"]
