"""PPO's training throughput against the egocentric window's side, in one process, side by side.

    python bench/window_throughput.py --task DoorKey --envs 64 --updates 12
    python bench/window_throughput.py --task DoorKey --envs 1024 --updates 2 --windows 11 9 7

The same jitted chunk as `bench/revisions.py` (presets' hyperparameters, rollouts of 32 steps,
plain PPO and guided PPO with the oracle table), for each window side; chunks alternate between
the variants and the best of `--repeats` is kept. Prints env steps/s and the ratio to the first
window given. The window changes the network's input (`window * window + 1` embedded codes), so
its effect on learning is the learning bench's to judge (`bench/learning.py --set window=7`).
"""

from __future__ import annotations

import sys

import benchlib

from jaxrl3m.algos.ppo import PPOConfig, make_ppo
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.teacher import Teacher


def main(argv=None) -> int:
    p = benchlib.parser(__doc__)
    p.add_argument("--task", default="DoorKey")
    p.add_argument("--envs", type=int, default=64)
    p.add_argument("--updates", type=int, default=12, help="updates per timed chunk")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--windows", type=int, nargs="+", default=[11, 9, 7])
    args = p.parse_args(argv)
    teacher = Teacher.create(args.task, oracle_table(args.task))
    batch = args.envs * 32
    runs = {}
    for w in args.windows:
        for guided in (False, True):
            algo = make_ppo(PPOConfig(task=args.task, num_envs=args.envs, num_steps=32, window=w,
                                      num_minibatches=max(4, batch // 8192),
                                      total_steps=batch * 10_000, kl_coef=1.0), guided=guided)
            chunk, state, _ = benchlib.compiled_chunk(algo, args.seeds, args.updates, teacher)
            runs[(w, guided)] = (chunk, state)
    times = benchlib.alternate(runs, teacher, args.repeats)
    steps = args.updates * batch * args.seeds
    for guided in (False, True):
        base = steps / min(times[(args.windows[0], guided)])
        for w in args.windows:
            sps = steps / min(times[(w, guided)])
            print(f"{args.task} {args.envs} envs, {'guided' if guided else 'plain '} PPO, "
                  f"window {w:2d}: {sps:10,.0f} env steps/s ({sps / base:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
