"""Training throughput against the number of devices: strong and weak scaling of plain PPO.

    python bench/scaling.py                          # 1, 2, 4 forced host devices (CPU)
    python bench/scaling.py --devices 1 2 4 8        # on a machine with 8 accelerators

On CPU, `--host-devices N` (default: the largest of `--devices`) splits the host into N XLA
devices (`--xla_force_host_platform_device_count`); they share the machine's cores, so the
speed-up is bounded by the cores, not the device count. On GPUs, the real devices are used.

Cases, each through the driver's own placement (`jaxrl3m.core.parallel`: seeds on the mesh's
`seed` axis, environments of a seed on its `env` axis) and compiled program (`driver.chunk_fn`):

- strong, seeds: 4 seeds x `--envs` environments in all, over d devices (seeds split);
- strong, envs: 1 seed x 4 `--envs` environments, over d devices (environments split, gradients
  averaged across devices);
- weak, seeds: d seeds x `--envs` environments (one seed's work per device);
- weak, envs: 1 seed x d `--envs` environments.

Each case is compiled (time apart), then `--repeats` chunks of `--updates` updates are timed and
the best is kept. Training steps/s counts every seed's environment steps. Writes
bench/scaling.json and prints a markdown table with the speed-up over 1 device (strong) or the
efficiency (weak: steps/s per device over 1 device's).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import benchlib  # imports no jax: XLA_FLAGS are set first


def table(rows: list[dict]) -> str:
    """Training steps/s per case and number of devices, with the speed-up over 1 device (strong
    scaling) or the efficiency (weak scaling)."""
    lines = ["| case | devices | seeds x envs | training steps/s | vs 1 device |",
             "|---|---|---|---|---|"]
    for r in rows:
        one = next(x for x in rows if x["case"] == r["case"] and x["devices"] == 1)
        ratio = r["steps_per_s"] / one["steps_per_s"]
        what = (f"{ratio:.2f}x speed-up" if r["case"].startswith("strong") else
                f"{ratio:.2f}x ({ratio / r['devices']:.0%} efficiency)")
        lines.append(f"| {r['case']} | {r['devices']} | {r['seeds']} x {r['envs']} | "
                     f"{r['steps_per_s']:,.0f} | {what} |")
    return "\n".join(lines)


def parse() -> argparse.Namespace:
    p = benchlib.parser(__doc__, "scaling.json")
    p.add_argument("--devices", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--host-devices", type=int, help="CPU: split the host into this many devices")
    p.add_argument("--task", default="DoorKey")
    p.add_argument("--envs", type=int, default=256, help="environments per unit of work")
    p.add_argument("--updates", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    return p.parse_args()


def main() -> None:
    args = parse()
    if args.host_devices or not os.path.exists("/dev/nvidia0"):  # CPU: split the host
        n = args.host_devices or max(args.devices)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={n}").strip()
    import jax
    import numpy as np

    from jaxrl3m.core import parallel
    from jaxrl3m.runner.driver import chunk_fn, placement_of
    from jaxrl3m.runner.runs import init_states, load_config, setup

    def measure(seeds: int, num_envs: int, devices: int) -> dict:
        c, run = load_config("ppo", dict(task=args.task, seeds=seeds, num_envs=num_envs,
                                         num_steps=32, devices=devices,
                                         num_minibatches=max(4, num_envs * 32 // 8192),
                                         total_steps=num_envs * 32 * 1000))
        s = setup(c, run)
        pl = placement_of(s.algo, run)
        state = parallel.put(init_states(s.algo, run), pl)
        inputs = parallel.put(s.inputs, pl, seed_axis=False)
        fn = chunk_fn(s.algo, args.updates, pl)
        t0 = time.perf_counter()
        with parallel.using(pl):
            state, _ = jax.block_until_ready(fn(state, inputs))
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            with parallel.using(pl):
                state, _ = jax.block_until_ready(fn(state, inputs))
            times.append(time.perf_counter() - t0)
        steps = args.updates * num_envs * 32 * seeds
        return {"seeds": seeds, "envs": num_envs, "devices": devices,
                "placement": pl.describe(), "compile_s": compile_s,
                "steps_per_s": steps / min(times),
                "steps_per_s_median": steps / float(np.median(times))}

    e = args.envs
    cases = {"strong, seeds": lambda d: (4, e), "strong, envs": lambda d: (1, 4 * e),
             "weak, seeds": lambda d: (d, e), "weak, envs": lambda d: (1, d * e)}
    rows = []
    for name, size in cases.items():
        for d in args.devices:
            seeds, envs = size(d)
            r = {"case": name, **measure(seeds, envs, d)}
            rows.append(r)
            print(f"{name:14s} {d} device(s): {seeds} seed(s) x {envs} envs, "
                  f"{r['steps_per_s']:,.0f} steps/s ({r['placement']})", flush=True)
    table_md = table(rows)
    print(table_md)
    benchlib.save(args.out, {"command": "python " + " ".join(sys.argv), "results": rows},
                  markdown=table_md)


if __name__ == "__main__":
    main()
