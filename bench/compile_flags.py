"""XLA flags against the compilation time of one tiny guided-PPO update (the kind of program the
test suite compiles about 150 of): each setting in its own process (XLA reads XLA_FLAGS once),
the update lowered once and compiled with the persistent cache off.

    python bench/compile_flags.py                       # the flags tried for the suite
    python bench/compile_flags.py --flags "" "--xla_backend_optimization_level=0"

Each `--flags` entry is one XLA_FLAGS value. Prints the seconds of `.compile()`, best of
`--repeats` processes per setting; writes bench/compile_flags.json (and .md).
"""

from __future__ import annotations

import os
import subprocess
import sys

import benchlib
from benchlib import ROOT

LEVEL0 = "--xla_backend_optimization_level=0"
TRIED = ["", LEVEL0] + [f"{LEVEL0} {f}" for f in (
    "--xla_llvm_disable_expensive_passes=true",
    "--xla_cpu_parallel_codegen_split_count=1",
    "--xla_cpu_use_thunk_runtime=false",
    "--xla_cpu_use_xnnpack=false",
    "--xla_cpu_copy_insertion_use_region_analysis=false",
    "--xla_cpu_experimental_enable_tiling_propagation=false",
    "--xla_cpu_use_new_xtile_lowering=false",
    "--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE")] + [
    "--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE"]

CHILD = """
import time, jax
from jaxrl3m.algos.ppo import PPOConfig, make_ppo
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.teacher import Teacher
c = PPOConfig(task="DoorKey", total_steps=8 * 8 * 3, kl_coef=1.0, num_envs=8, num_steps=8,
              num_minibatches=2, update_epochs=2, hidden=(16,), window=5)
algo = make_ppo(c, True)
lowered = jax.jit(algo.update, static_argnums=2).lower(
    jax.eval_shape(algo.init, jax.random.key(0)), Teacher.create("DoorKey", oracle_table("DoorKey")), 3)
t = time.perf_counter()
lowered.compile()
print("COMPILE", time.perf_counter() - t)
"""


def compile_seconds(flags: str) -> float:
    env = {**os.environ, "XLA_FLAGS": flags, "JAXRL3M_COMPILE_CACHE": "off",
           "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu")}
    p = subprocess.run([sys.executable, "-c", CHILD], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    if p.returncode != 0 or "COMPILE" not in p.stdout:
        raise SystemExit(f"XLA_FLAGS={flags!r} failed: {(p.stderr or p.stdout)[-500:]}")
    return float(p.stdout.split("COMPILE", 1)[1])


def main() -> int:
    p = benchlib.parser(__doc__, "compile_flags.json")
    p.add_argument("--flags", nargs="+", default=TRIED, help="XLA_FLAGS values, one per setting")
    p.add_argument("--repeats", type=int, default=1, help="processes per setting, best kept")
    args = p.parse_args()
    rows = []
    for flags in args.flags:
        s = min(compile_seconds(flags) for _ in range(args.repeats))
        rows.append({"xla_flags": flags, "compile_s": s})
        print(f"{s:6.2f} s  XLA_FLAGS={flags!r}", flush=True)
    table = "\n".join(["| XLA_FLAGS | compile s |", "|---|---|",
                       *(f"| `{r['xla_flags'] or '(none: default level)'}` | "
                         f"{r['compile_s']:.2f} |" for r in rows)])
    benchlib.save(args.out, {"results": rows}, markdown=table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
