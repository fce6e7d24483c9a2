"""LaMo / Decision Transformer training speed against the number of decoder layers.

    python bench/lamo_speed.py [--layers 1,2,4,8,30] [--batch 16 --context 10] [--out bench/lamo_speed.json]

Gradient steps/s and tokens/s (RL tokens 3K per window plus text tokens) of one seed, timed
after compilation over `--steps` gradient steps, for the pre-trained SmolLM2 transformer with
LoRA (the first L layers), plus full fine-tuning and the small DT from scratch for comparison;
trainable parameter counts. Needs `make model` (the SmolLM2 GGUF) and a DoorKey dataset
(`make datasets`, or python -m jaxrl3m.collect --task DoorKey --policy random:1,oracle@0.5:1,oracle:1).
"""

from __future__ import annotations

import time

import jax
import numpy as np

import benchlib
from benchlib import ROOT

from jaxrl3m.algos import Inputs
from jaxrl3m.algos.dt import DTConfig, make_dt
from jaxrl3m.offline import dataset as dsl


def count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def measure(c: DTConfig, ds, steps: int) -> dict:
    algo = make_dt(c)
    frozen = algo.frozen()
    data, _ = algo.prepare(ds)
    state = algo.init(jax.random.key(0))
    fn = jax.jit(lambda s, inputs: algo.update(s, inputs, 1))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(state, Inputs(frozen=frozen, data=data)))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fn(state, Inputs(frozen=frozen, data=data))
    jax.block_until_ready(out)
    dt = time.perf_counter() - t0
    sps = c.steps_per_update / dt
    tokens = c.batch_size * 3 * c.context + (c.text_batch * c.text_len if c.lm_coef > 0 else 0)
    return {"transformer": c.transformer, "tuning": c.tuning, "layers": c.layers,
            "steps_per_s": sps, "tokens_per_s": sps * tokens, "tokens_per_step": tokens,
            "trainable_params": count(state.params), "frozen_params": count(frozen.transformer),
            "compile_s": compile_s}


def main(argv=None) -> None:
    ap = benchlib.parser(__doc__, "lamo_speed.json")
    ap.add_argument("--layers", default="1,2,4,8,30")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--context", type=int, default=10)
    ap.add_argument("--text-batch", type=int, default=4)
    ap.add_argument("--text-len", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--dataset", default=str(ROOT / "datasets/DoorKey-mixed-s0.npz"))
    a = ap.parse_args(argv)
    ds = dsl.load(a.dataset)
    base = DTConfig(task="DoorKey", batch_size=a.batch, context=a.context,
                    text_batch=a.text_batch, text_len=a.text_len, steps_per_update=a.steps,
                    gradient_steps=a.steps)
    rows = []
    variants = [dict(layers=int(n)) for n in a.layers.split(",")]
    variants += [dict(layers=int(a.layers.split(",")[0]), tuning="full"),
                 dict(transformer="scratch", tuning="full", lm_coef=0.0)]
    for v in variants:
        r = measure(base.replace(**v), ds, a.steps)
        rows.append(r)
        print(f"{r['transformer']:>10} {r['tuning']:>6} L={r['layers']:>2}: "
              f"{r['steps_per_s']:7.2f} steps/s {r['tokens_per_s']:9.0f} tokens/s "
              f"trainable {r['trainable_params']:,} (compile {r['compile_s']:.0f} s)", flush=True)
    benchlib.save(a.out, {
        "batch": a.batch, "context": a.context,
        "text_batch": a.text_batch, "text_len": a.text_len, "rows": rows})


if __name__ == "__main__":
    main()
