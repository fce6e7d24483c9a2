"""What a run needs of its device, checked from shapes before anything is allocated."""

from __future__ import annotations

from typing import Any

import jax

from ..core.config import ConfigError


def available_memory() -> tuple[float, str] | None:
    """`(bytes, where)` the first device can still allocate: on GPUs and TPUs its allocator's
    limit less what is in use, on the CPU the host's available memory; None if unknown."""
    dev = jax.local_devices()[0]
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - not every backend has them
        pass
    if stats and stats.get("bytes_limit"):
        return float(stats["bytes_limit"] - stats.get("bytes_in_use", 0)), \
            f"{dev.platform} device {dev.id}"
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        return float(info["MemAvailable"].split()[0]) * 1024, "this host (CPU)"
    except (OSError, KeyError, ValueError):
        return None


def memory_needed(algo: Any, run: Any, shapes: Any) -> tuple[float, float]:
    """`(state bytes, rollout bytes)` a run needs at least, from shapes alone (nothing is
    allocated or compiled): every seed's training state (`shapes`, `runs.state_shapes`), and one
    update's rollout of observations (online algorithms)."""
    nbytes = lambda tree: float(sum(x.size * x.dtype.itemsize  # noqa: E731
                                    for x in jax.tree.leaves(tree)))
    state = nbytes(shapes)
    rollout = 0.0
    if not algo.offline:
        obs = jax.eval_shape(lambda: algo.env.reset(jax.random.key(0)).obs)
        rollout = (nbytes(obs) + 32.0) * algo.config.num_envs * algo.config.num_steps * run.seeds
    return state, rollout


def check_memory(algo: Any, run: Any, shapes: Any) -> None:
    """Refuses a run whose state and rollout alone exceed the memory the device has left,
    before anything is allocated (an allocation that fails inside XLA ends the process with
    std::bad_alloc, or an out-of-memory trace deep in JAX)."""
    have = available_memory()
    if have is None:
        return
    state, rollout = memory_needed(algo, run, shapes)
    from ..core.parallel import place
    devices = place(run.seeds, algo.num_envs, run.devices).devices
    need = (state + rollout) / max(devices, 1)
    if need > have[0]:
        size = (f"num_envs={algo.config.num_envs} x num_steps={algo.config.num_steps} x "
                f"{run.seeds} seed(s)" if not algo.offline else f"{run.seeds} seed(s)")
        raise ConfigError(
            f"this run needs at least {need / 1e9:,.1f} GB per device (state "
            f"{state / 1e9:,.1f} GB, one update's rollout {rollout / 1e9:,.1f} GB: {size}), but "
            f"{have[1]} has {have[0] / 1e9:,.1f} GB available; lower num_envs, num_steps or "
            "seeds, or use more devices")
