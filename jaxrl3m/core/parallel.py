"""Seeds as a named `vmap` axis, predicates that all seeds share, and seeds and environments
placed over devices and hosts.

Under `jax.vmap`, a `lax.cond` whose predicate differs between seeds becomes a `select`: both
branches run for every seed. Training code that wants a real skip (the teacher while
`lambda_t = 0`, bootstrap values when no episode was truncated) reduces its predicate over the seed
axis with `any_seed`, which makes it one value for all seeds, so the `cond` stays a `cond`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

SEED_AXIS = "seed"


def vmap_seeds(fn: Callable, in_axes: Any = 0) -> Callable:
    """`jax.vmap(fn)` over seeds, with the axis named so that `any_seed` can reduce over it."""
    return jax.vmap(fn, in_axes=in_axes, axis_name=SEED_AXIS)


def any_seed(pred: jax.Array) -> jax.Array:
    """`bool[]`: `pred` true for at least one seed of the enclosing `vmap_seeds` (or `pred`
    itself outside one). A `lax.cond` on the result skips its branch for real."""
    pred = jnp.asarray(pred, bool)
    try:
        return jax.lax.psum(pred.astype(jnp.int32), SEED_AXIS) > 0
    except NameError:  # not under vmap_seeds: one seed
        return pred


# ---------------------------------------------------------------------------------------------
# Devices and hosts: seeds (and the environments of a seed) over a device mesh
# ---------------------------------------------------------------------------------------------
ENV_AXIS = "env"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where a run's seeds and environments live: a `jax.sharding.Mesh` with axes `("seed",
    "env")` over `seed_devices * env_devices` devices (of every process). Seeds are split over
    the `seed` axis; each seed's environments over the `env` axis (its gradients are then
    averaged across those devices by the SPMD partitioner). `mesh=None`: one device, nothing
    to place."""

    mesh: Any = None

    @property
    def seed_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.shape[SEED_AXIS]

    @property
    def env_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.shape[ENV_AXIS]

    @property
    def devices(self) -> int:
        return self.seed_devices * self.env_devices

    def describe(self) -> str:
        if self.mesh is None:
            return "1 device"
        hosts = jax.process_count()
        return (f"{self.devices} devices ({self.seed_devices} for seeds x {self.env_devices} "
                f"for environments" + (f", {hosts} processes" if hosts > 1 else "") + ")")


def place(seeds: int, num_envs: int | None, devices: int | str = 0) -> Placement:
    """The placement of `seeds` seeds of `num_envs` environments (None: an offline algorithm)
    on `devices` devices (0 or "all": every device of every process).

    Seeds go to `gcd(seeds, devices)` device groups; the remaining factor splits each seed's
    environments. Raises ConfigError when more devices are asked for than exist, or when the
    environments cannot be split evenly."""
    from .config import ConfigError
    available = jax.devices()
    n = len(available) if devices in ("all", 0) else devices
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"config key 'devices': must be 0 (all) or a positive integer, got "
                          f"{devices!r}")
    if n > len(available):
        raise ConfigError(
            f"config key 'devices': {n} devices requested but only {len(available)} exist "
            f"({available[0].platform}, {jax.process_count()} process(es)); use devices="
            f"{len(available)} or 0 (all) (on CPU, XLA_FLAGS=--xla_force_host_platform_device_"
            f"count={n} makes {n} host devices)")
    if n == 1:
        return Placement()
    seed_dev = math.gcd(seeds, n)
    env_dev = n // seed_dev
    if env_dev > 1 and (num_envs is None or num_envs % env_dev):
        what = ("an offline algorithm has no environments to split, so seeds must be a "
                "multiple of devices" if num_envs is None else
                f"num_envs={num_envs} cannot be split over the {env_dev} devices left per seed")
        raise ConfigError(
            f"config key 'devices': {seeds} seed(s) on {n} devices put gcd = {seed_dev} device "
            f"group(s) on seeds and {env_dev} devices on each seed's environments, but {what}. "
            f"Use seeds a multiple of {n}, num_envs a multiple of {env_dev}, or fewer devices "
            f"(devices=...)")
    mesh = jax.sharding.Mesh(np.asarray(available[:n]).reshape(seed_dev, env_dev),
                             (SEED_AXIS, ENV_AXIS))
    return Placement(mesh)


_ACTIVE: list[Placement] = []


@contextlib.contextmanager
def using(placement: Placement):
    """Within this block, programs being traced place environments on `placement`'s `env`
    axis (`shard_envs`); outside, `shard_envs` does nothing."""
    _ACTIVE.append(placement)
    try:
        yield placement
    finally:
        _ACTIVE.pop()


def vmap_placed(fn: Callable, placement: Placement, in_axes: Any = 0) -> Callable:
    """`vmap_seeds(fn)`, with the seed axis on the mesh's `seed` axis when there is a mesh."""
    if placement.mesh is None:
        return vmap_seeds(fn, in_axes)
    return jax.vmap(fn, in_axes=in_axes, axis_name=SEED_AXIS, spmd_axis_name=SEED_AXIS)


def shard_envs(tree: Any, axis: int = 0) -> Any:
    """Constrains every leaf's environment (or sample) axis `axis` to the active placement's
    `env` mesh axis (a no-op without one, or when it has a single device)."""
    if not _ACTIVE or _ACTIVE[-1].env_devices == 1:
        return tree
    sharding = jax.sharding.NamedSharding(
        _ACTIVE[-1].mesh, jax.sharding.PartitionSpec(*([None] * axis), ENV_AXIS))
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, sharding)
                        if getattr(x, "ndim", 0) > axis else x, tree)


def seed_sharding(placement: Placement, x: Any):
    """The sharding of an array with a leading seed axis."""
    spec = jax.sharding.PartitionSpec(SEED_AXIS) if getattr(x, "ndim", 0) >= 1 else \
        jax.sharding.PartitionSpec()
    return jax.sharding.NamedSharding(placement.mesh, spec)


def put(tree: Any, placement: Placement, seed_axis: bool = True) -> Any:
    """`tree` as global arrays on `placement`: split over the seed axis (`seed_axis`), else
    replicated. Every process passes the same full values (each keeps its own shards)."""
    if placement.mesh is None:
        return tree
    replicated = jax.sharding.NamedSharding(placement.mesh, jax.sharding.PartitionSpec())

    def one(x):
        if not isinstance(x, (jax.Array, np.ndarray)):
            return x
        sharding = seed_sharding(placement, x) if seed_axis else replicated
        if jax.process_count() == 1:
            return jax.device_put(x, sharding)
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = np.asarray(jax.random.key_data(x))
            arr = jax.make_array_from_callback(data.shape, _data_sharding(sharding, data, x),
                                               lambda idx: data[idx])
            return jax.random.wrap_key_data(arr, impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(one, tree)


def keeper(tree: Any, placement: Placement) -> Callable[[Any], Any]:
    """A function that puts a tree shaped like `tree` back on `tree`'s shardings (the identity
    without a mesh). A chunk's outputs come back sharded as XLA's sharding propagation chose
    (environments split on the `env` axis, for one), and a program called with other input
    shardings than its first call's is compiled again: every multi-device run compiled its
    chunk twice."""
    if placement.mesh is None:
        return lambda t: t
    shardings = jax.tree.map(lambda x: x.sharding, tree)
    return jax.jit(lambda t: t, out_shardings=shardings)


def _data_sharding(sharding, data: np.ndarray, key: jax.Array):
    """The sharding of a key array's raw data (one more trailing axis than the keys)."""
    spec = tuple(sharding.spec) + (None,) * (data.ndim - len(tuple(sharding.spec)))
    return jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec(*spec))


def to_host(tree: Any) -> Any:
    """Numpy copies of a tree of (possibly global, multi-process) arrays, whole on every
    process."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils

    def one(x):
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return jax.device_get(x)
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(jnp.asarray(to_host(jax.random.key_data(x))),
                                            impl=jax.random.key_impl(x))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)


def is_main_process() -> bool:
    """Process 0 writes metrics, summaries and plots (every process writes its own shards of a
    checkpoint)."""
    return jax.process_index() == 0


def same_on_every_process(flag: bool) -> bool:
    """`flag` as process 0 sees it, on every process: a decision every process must take alike
    (a multi-process run checkpoints together, each process writing its shards of one step)."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils
    return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


class DistributedError(RuntimeError):
    """The processes of a multi-host run could not meet."""


def distributed_args(coordinator: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None) -> tuple[str | None, int, int]:
    """The coordinator address, process count and process id from the arguments, else from the
    environment (`JAX_COORDINATOR_ADDRESS`, `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`)."""
    import os
    coordinator = coordinator or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num = num_processes if num_processes is not None else int(
        os.environ.get("JAX_NUM_PROCESSES", "1"))
    pid = process_id if process_id is not None else int(os.environ.get("JAX_PROCESS_ID", "0"))
    return coordinator, num, pid


def initialize_distributed(coordinator: str | None, num_processes: int, process_id: int,
                           timeout: float = 120.0, auto: bool = False) -> None:
    """`jax.distributed.initialize`, with clear errors in bounded time.

    Must run before anything touches a JAX device. `auto`: let JAX detect the cluster (SLURM,
    Open MPI, Kubernetes...) instead of naming the coordinator. A process other than 0 first
    waits up to `timeout` seconds for the coordinator's port to accept connections; every
    process then gets `timeout` seconds for all processes to join. Either failure raises
    (or, once inside JAX's runtime, which cannot be interrupted, exits the process with)
    a message naming the address and the fix, instead of JAX's own abort or an endless wait.
    On CPU the collectives go through gloo (loopback or TCP)."""
    import os
    import socket
    import sys
    import threading
    import time

    if not auto and (coordinator is None or num_processes == 1):
        if num_processes != 1:
            raise DistributedError(f"{num_processes} processes but no coordinator address: "
                                   "give --coordinator HOST:PORT (or JAX_COORDINATOR_ADDRESS)")
        return
    if not auto:
        if not 0 <= process_id < num_processes:
            raise DistributedError(f"process id {process_id} is not in 0..{num_processes - 1}")
        host, _, port = coordinator.rpartition(":")
        if not host or not port.isdigit():
            raise DistributedError(f"coordinator address {coordinator!r} is not HOST:PORT")
    if (os.environ.get("JAX_PLATFORMS", "") in ("", "cpu")):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if not auto and process_id != 0:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    raise DistributedError(
                        f"process {process_id} of {num_processes}: the coordinator at "
                        f"{coordinator} did not answer within {timeout:g} s ({e}). Start "
                        f"process 0 (which hosts the coordinator) with the same --coordinator, "
                        f"check the host name and port and that no firewall blocks it, or "
                        f"raise --init-timeout") from None
                time.sleep(0.2)

    def give_up():
        print(f"error: process {process_id} of {num_processes}: not every process joined the "
              f"run at {coordinator or 'the detected cluster'} within {timeout:g} s. Start all "
              f"{num_processes} processes with the same --coordinator and --num-processes and "
              f"distinct --process-id, or raise --init-timeout", file=sys.stderr, flush=True)
        os._exit(3)

    watchdog = threading.Timer(timeout, give_up)
    watchdog.daemon = True
    watchdog.start()
    try:
        if auto:
            jax.distributed.initialize(initialization_timeout=int(timeout) + 30)
        else:
            jax.distributed.initialize(coordinator, num_processes, process_id,
                                       initialization_timeout=int(timeout) + 30)
    except Exception as e:
        raise DistributedError(f"jax.distributed.initialize failed ({coordinator}, process "
                               f"{process_id} of {num_processes}): {e}") from None
    finally:
        watchdog.cancel()
