"""Learning algorithms on the shared core: the contract and registry (`base`), losses, and one
module per algorithm (`ppo`, `dqn`, `offline`: cql and bc, `dt`).

    algo = jaxrl3m.algos.make("ppo", PPOConfig(task="DoorKey"), guided=False)
    spec = jaxrl3m.algos.get("cql")        # its config class, builder and summary
"""

from typing import Any

from .base import (REGISTRY, Algorithm, AlgorithmSpec, Inputs, TaskSection, as_inputs, get,
                   register)
from . import dqn, dt, offline, ppo  # noqa: E402,F401  (register dqn, dt, cql, bc, ppo)
from .dqn import DQNConfig, make_dqn
from .dt import DTConfig, make_dt
from .offline import OfflineConfig, make_offline
from .ppo import PPOConfig, make_ppo


def make(name: str, config: Any = None, **kwargs: Any) -> Algorithm:
    """The registered algorithm `name` built for `config` (checked; default: its config class's
    defaults). `kwargs` go to its builder: `guided=` (with a teacher or prior), `env=` (another
    environment), `past_policies=` (PPO's transfer options)."""
    spec = get(name)
    return spec.make(spec.config() if config is None else config, **kwargs)


__all__ = ["Algorithm", "AlgorithmSpec", "DQNConfig", "DTConfig", "Inputs", "OfflineConfig",
           "PPOConfig", "REGISTRY", "TaskSection", "as_inputs", "get", "make", "make_dqn",
           "make_dt", "make_offline", "make_ppo", "register"]
