"""Environment throughput: random-action stepping under jit(scan(vmap(step))).

Measures jaxrl3m's DoorKey, LavaDoorKey, ColoredDoorKey and Unlock against NAVIX's own DoorKey-8x8
(Unlock and UnlockPickup against NAVIX's `Navix-Unlock-v0` and `Navix-UnlockPickup-v0`;
BlockedUnlockPickup, which NAVIX does not have, against its nearest, `Navix-UnlockPickup-v0`;
KeyCorridorS<S>R<R> against NAVIX's `Navix-KeyCorridorS<S>R<R>-v0`; LockedRoom and Fetch
against NAVIX's `Navix-LockedRoom-v0` and `Navix-Fetch-8x8-N3-v0`)
(`nx.make("Navix-DoorKey-8x8-v0")`, stepped by NAVIX's own `step`), XLand-MiniGrid's
`MiniGrid-DoorKey-8x8` (its own `step` with its `GymAutoResetWrapper`, when the `[peers]` extra
is installed), all through the library's
collector (`jaxrl3m.core.collector`, random actions) and gymnasium MiniGrid's
`MiniGrid-DoorKey-8x8-v0` (a Python loop, one environment), all in the same run. Compile time is
reported apart; each figure is the best of `--repeats` timed runs.

    python bench/env_throughput.py                    # 1 .. 8192 environments
    python bench/env_throughput.py --envs 1024 4096 --json out.json
"""

from __future__ import annotations

import dataclasses
import functools
import time

import benchlib
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl3m import envs
from jaxrl3m.core import collector
from jaxrl3m.envs.types import NOTHING, Observation, TimeStep


def _peer_obs(observation) -> Observation:
    """A peer's own observation carried in our `Observation` (its `grid`): the random policy
    reads only the batch size, and the rollout's checksum reads the grid, so the peer computes
    its observation as ours is computed (XLA would drop an observation nothing reads)."""
    return Observation(grid=observation, agent_pos=jnp.zeros(2, jnp.int32),
                       agent_dir=jnp.int32(0), carrying=jnp.asarray(NOTHING))


def build_rollout(env, n_envs: int, n_steps: int):
    """A jitted function: reset `n_envs` environments, then `n_steps` random-action steps by
    the library's collector (the same code that collects PPO's rollouts)."""

    def rollout(key):
        k_reset, k_act = jax.random.split(key)
        carry = collector.reset(env, k_reset, n_envs)
        _, tr = collector.rollout(env, collector.Random(7), None, carry, k_act, n_steps)
        # Everything the collector returns is used, so XLA cannot drop the observations (the
        # random policy never reads them: returning the rewards alone let it skip the view and
        # the remembered map).
        return sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(tr))

    return jax.jit(rollout)


def ours(name):
    return envs.make(name)


@dataclasses.dataclass(frozen=True)
class NavixAdapter:
    """NAVIX's own environment stepped by NAVIX's own `step`, seen through the library's
    `reset(key) / step(state, action)` convention (its timestep is the state)."""

    env: object

    def _ts(self, timestep):
        step_type = timestep.step_type
        obs = _peer_obs(timestep.observation)
        return TimeStep(state=timestep, obs=obs, reward=timestep.reward,
                        terminated=step_type == 2, truncated=step_type == 1, final_obs=obs)

    def reset(self, key):
        return self._ts(self.env.reset(key))

    def step(self, state, action):
        return self._ts(self.env.step(state, action))

    def __hash__(self):
        return id(self.env)


@dataclasses.dataclass(frozen=True)
class XMinigridAdapter:
    """XLand-MiniGrid's environment (its own `reset(params, key)`, `step(params, timestep,
    action)` and `GymAutoResetWrapper`) behind the library's convention (its timestep is the
    state)."""

    env: object
    params: object

    def _ts(self, timestep):
        last = timestep.last()
        obs = _peer_obs(timestep.observation)
        return TimeStep(state=timestep, obs=obs, reward=timestep.reward.astype(jnp.float32),
                        terminated=last & (timestep.discount == 0),
                        truncated=last & (timestep.discount != 0), final_obs=obs)

    def reset(self, key):
        return self._ts(self.env.reset(self.params, key))

    def step(self, state, action):
        return self._ts(self.env.step(self.params, state, action))

    def __hash__(self):
        return id(self.env)


def xminigrid_doorkey_8x8():
    """`xminigrid.make("MiniGrid-DoorKey-8x8")` with autoreset (`pip install -e '.[peers]'`)."""
    import xminigrid
    from xminigrid.wrappers import GymAutoResetWrapper
    env, params = xminigrid.make("MiniGrid-DoorKey-8x8")
    return XMinigridAdapter(GymAutoResetWrapper(env), params)


def navix_doorkey_8x8():
    import navix as nx
    return NavixAdapter(nx.make("Navix-DoorKey-8x8-v0", max_steps=640, penalty_coeff=0.9))


def navix_unlock(pickup: bool = False):
    import navix as nx
    name = "Navix-UnlockPickup-v0" if pickup else "Navix-Unlock-v0"
    return NavixAdapter(nx.make(name, max_steps=288, penalty_coeff=0.9))


def navix_keycorridor(name: str):
    """NAVIX's `Navix-<name>-v0` with MiniGrid's time limit (30 S^2) and reward."""
    import navix as nx
    s = int(name[len("KeyCorridorS")])
    return NavixAdapter(nx.make(f"Navix-{name}-v0", max_steps=30 * s * s, penalty_coeff=0.9))


def navix_named(navix_id: str, max_steps: int):
    """NAVIX's `navix_id` with MiniGrid's time limit and reward."""
    import navix as nx
    return NavixAdapter(nx.make(navix_id, max_steps=max_steps, penalty_coeff=0.9))


KEYCORRIDORS = tuple(f"KeyCorridorS{s}R{r}" for s, r in envs.KEYCORRIDOR_SIZES)
NEAREST_NAVIX = {"Unlock": "NAVIX Unlock", "UnlockPickup": "NAVIX UnlockPickup",
                 "BlockedUnlockPickup": "NAVIX UnlockPickup",
                 **{t: f"NAVIX {t}" for t in KEYCORRIDORS},
                 "LockedRoom": "NAVIX LockedRoom", "Fetch": "NAVIX Fetch-8x8-N3"}
"""The NAVIX row each of our rows is compared with (default: NAVIX DoorKey-8x8)."""


def measure(env, n_envs, n_steps, repeats):
    fn = build_rollout(env, n_envs, n_steps)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(jax.random.key(0)))
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(jax.random.key(r + 1)))
        best = min(best, time.perf_counter() - t0)
    return {"steps_per_s": n_envs * n_steps / best, "compile_s": compile_s, "n_steps": n_steps}


def minigrid_python(n_steps=3000):
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the environments)
    env = gym.make("MiniGrid-DoorKey-8x8-v0")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 7, size=n_steps)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(int(a))
        if term or trunc:
            env.reset()
    return {"steps_per_s": n_steps / (time.perf_counter() - t0), "compile_s": 0.0,
            "n_steps": n_steps}


def main():
    p = benchlib.parser(__doc__, "env_throughput.json")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 16, 256, 1024, 4096, 8192])
    p.add_argument("--steps", type=int, default=0,
                   help="steps per timed run (default: about 400k env steps per run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tasks", nargs="+", help="which rows to measure (default: all, the "
                   "gymnasium Python loop included); NAVIX DoorKey-8x8 is always measured, "
                   "the ratios need it")
    args = p.parse_args()

    candidates = {
        "DoorKey": lambda: ours("DoorKey"),
        "LavaDoorKey": lambda: ours("LavaDoorKey"),
        "ColoredDoorKey": lambda: ours("ColoredDoorKey"),
        # what the trainer steps since the split by map: a held-out map is drawn again
        "DoorKey, training maps": lambda: envs.make("DoorKey", layouts="train"),
        "LavaDoorKey, training maps": lambda: envs.make("LavaDoorKey", layouts="train"),
        "Unlock": lambda: ours("Unlock"),
        "UnlockPickup": lambda: ours("UnlockPickup"),
        "BlockedUnlockPickup": lambda: ours("BlockedUnlockPickup"),
        "NAVIX DoorKey-8x8": navix_doorkey_8x8,
        "NAVIX Unlock": navix_unlock,
        "NAVIX UnlockPickup": lambda: navix_unlock(pickup=True),
        **{t: functools.partial(ours, t) for t in KEYCORRIDORS},
        "LockedRoom": lambda: ours("LockedRoom"),
        "Fetch": lambda: ours("Fetch"),
        "NAVIX LockedRoom": functools.partial(navix_named, "Navix-LockedRoom-v0", 190),
        "NAVIX Fetch-8x8-N3": functools.partial(navix_named, "Navix-Fetch-8x8-N3-v0", 320),
        **{f"NAVIX {t}": functools.partial(navix_keycorridor, t) for t in KEYCORRIDORS},
    }
    try:  # the [peers] extra
        import xminigrid  # noqa: F401
        candidates["XLand-MiniGrid DoorKey-8x8"] = xminigrid_doorkey_8x8
    except ImportError:
        pass
    if args.tasks:
        unknown = set(args.tasks) - set(candidates) - {"gymnasium"}
        if unknown:
            raise SystemExit(f"unknown --tasks {sorted(unknown)}; valid: {list(candidates)}, "
                             "gymnasium")
        wanted = set(args.tasks) | {"NAVIX DoorKey-8x8"} | {
            NEAREST_NAVIX[t] for t in args.tasks if t in NEAREST_NAVIX}
        candidates = {k: v for k, v in candidates.items() if k in wanted}
    results = {"hardware": benchlib.hardware(), "results": {}}
    print(benchlib.describe(results["hardware"]), flush=True)
    for name, make in candidates.items():
        env = make()
        for n in args.envs:
            n_steps = args.steps or max(50, min(2000, 400_000 // n))
            r = measure(env, n, n_steps, args.repeats)
            results["results"].setdefault(name, {})[str(n)] = r
            print(f"{name:>18} {n:>5} envs: {r['steps_per_s']:>12,.0f} steps/s "
                  f"(compile {r['compile_s']:.1f}s)", flush=True)
    if not args.tasks or "gymnasium" in args.tasks:
        results["results"]["gymnasium MiniGrid DoorKey-8x8"] = {"1": minigrid_python()}
        print(f"gymnasium MiniGrid DoorKey-8x8, 1 env (Python loop): "
              f"{results['results']['gymnasium MiniGrid DoorKey-8x8']['1']['steps_per_s']:,.0f} "
              "steps/s", flush=True)

    # Markdown table, with the ratio to the nearest NAVIX task at each size.
    lines = ["| task | " + " | ".join(f"{n} envs" for n in args.envs) + " |",
             "|---" * (len(args.envs) + 1) + "|"]
    for name, per_n in results["results"].items():
        cells = []
        for n in args.envs:
            r = per_n.get(str(n))
            if r is None:
                cells.append("")
                continue
            navix = results["results"][NEAREST_NAVIX.get(name, "NAVIX DoorKey-8x8")]
            ratio = "" if name.startswith(("NAVIX", "gym", "XLand")) else \
                f" ({r['steps_per_s'] / navix[str(n)]['steps_per_s']:.2f}x)"
            cells.append(f"{r['steps_per_s']:,.0f}{ratio}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    print("\nsteps/s (ratio to NAVIX DoorKey-8x8 at the same size; Unlock, UnlockPickup, "
          "KeyCorridor, LockedRoom, Fetch: to NAVIX's; BlockedUnlockPickup: to NAVIX's "
          "UnlockPickup, the nearest)\n" + table)
    results["table"] = table
    benchlib.save(args.out, results)


if __name__ == "__main__":
    main()
