"""LaMo on our tasks: does a pre-trained language model help a Decision Transformer at low data?

    python bench/lamo.py --task DoorKey          # the README's study (~1 h on 2 cores)
    python bench/lamo.py --task DoorKey --replot # the table and plot again from the JSON
    python bench/lamo.py --task DoorKey --layers 4 --methods "lamo lamo-random lamo-random-b1 dt" \
        --out bench/lamo_DoorKey_L4.json         # the decisive rows at 4 layers (~2 h; issue 27)
    bash bench/gpu.sh --lamo                     # the same rows at all 30 layers, on a GPU

One dataset (bench/offline.py's: the `mixed` recipe, data seed 0, 2,000 episodes, collected
here if missing) cut
into nested subsets (`--fractions`, the offline study's permutation). Methods:

- main comparison, every fraction, `--seeds` training seeds in one `vmap`: `lamo` (SmolLM2's
  first `--layers` layers, LoRA on Q, K, V, MLP embeddings, language loss 0.1), `lamo-random`
  (the same with a randomly initialised transformer: the decisive control; `lamo-random-b1`
  the same from a second random base seed, at the lowest fraction only), `dt` (a small
  decoder from scratch: 3 layers, width 128, all trained), and the offline baselines of
  bench/offline.py with their own settings: `bc`, `cql`, `cql-prior:oracle`,
  `cql-prior:smollm2`;
- ablations at the first (lowest) fraction, `--ablation-seeds` seeds: `lamo-full` (full
  fine-tuning), `lamo-frozen` (no LoRA), `lamo-linear` (linear embeddings), `lamo-lm0`
  (lambda = 0).

Every run's final parameters (never the best by test score) play `--eval-episodes` held-out
layouts, the DT family sampling its actions (as DT does on Atari and BC does in
bench/offline.py; chosen on validation, `python bench/validate.py eval_greedy`: sampled 0.17,
greedy 0.05 on training layouts with other training seeds) conditioned on the 0.9 quantile of
the training episodes' returns; CQL(-Prior) greedy as in bench/offline.py. The DT family trains 1,000 gradient
steps at lr 1e-3 (LaMo's 1e-4 is for 100k steps; the pilot's scratch DT barely moved at 1e-4),
batch 16 windows of K = 10 steps, the first layer of SmolLM2 (bench/lamo_speed.py: 5.8 steps/s
at L = 1, 4.2 at 2, 0.49 at all 30 on 2 cores; L = 1 keeps the study near an hour). Results go to bench/lamo_<task>.json (written after each method; a
rerun keeps methods measured with the same settings), .md and .png.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np

import benchlib
from benchlib import ROOT

from jaxrl3m.algos import Inputs
from jaxrl3m.algos.dt import DTConfig, make_dt
from jaxrl3m.core.evaluation import evaluate_algo
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.offline import dataset as dsl

DT_METHODS = {
    "lamo": {},
    "lamo-random": {"transformer": "random"},
    "lamo-random-b1": {"transformer": "random", "base_seed": 1},
    "dt": {"transformer": "scratch", "tuning": "full", "lm_coef": 0.0},
    "lamo-full": {"tuning": "full"},
    "lamo-frozen": {"tuning": "frozen"},
    "lamo-linear": {"embedding": "linear"},
    "lamo-lm0": {"lm_coef": 0.0},
}
MAIN = ("lamo", "lamo-random", "lamo-random-b1", "dt", "bc", "cql", "cql-prior:oracle",
        "cql-prior:smollm2")
ABLATIONS = ("lamo-full", "lamo-frozen", "lamo-linear", "lamo-lm0")
# Measured at the lowest fraction only, where the seed's claim lives (pre-trained beats random
# init at low data): the second random base seed checks that the twin's figure there is not one
# draw of the random transformer. Halves its cost (~45 min at 4 layers on 2 cores).
LOWEST_ONLY = ("lamo-random-b1",)
LABELS = {"lamo": "LaMo (SmolLM2, LoRA)", "lamo-random": "LaMo, random-init transformer",
          "lamo-random-b1": "LaMo, random-init transformer (second random base seed)",
          "dt": "DT from scratch", "bc": "BC", "cql": "CQL",
          "cql-prior:oracle": "CQL-Prior (oracle prior)",
          "cql-prior:smollm2": "CQL-Prior (SmolLM2 prior)", "lamo-full": "LaMo, full fine-tuning",
          "lamo-frozen": "LaMo, frozen (no LoRA)", "lamo-linear": "LaMo, linear embeddings",
          "lamo-lm0": "LaMo, lambda = 0"}


def dt_config(args, method: str) -> DTConfig:
    return DTConfig(task=args.task, layers=args.layers, context=args.context,
                    batch_size=args.batch, gradient_steps=args.steps,
                    steps_per_update=args.steps // 10, warmup_steps=args.steps // 10,
                    lr=args.lr,
                    text_batch=args.text_batch, text_len=args.text_len,
                    **DT_METHODS[method]).check()


def run_dt(method: str, ordered, fractions: list[float], seeds: int, args) -> list[list[float]]:
    """Held-out success `[fraction][seed]` of a DT-family method."""
    algo = make_dt(dt_config(args, method))
    frozen = algo.frozen()
    out = []
    for f in fractions:
        n = dsl.subset_size(ordered.num_episodes, f)
        data, _ = algo.prepare(ordered.episodes(np.arange(n)))
        keys = jax.random.split(jax.random.key(args.train_seed), seeds)
        t0 = time.perf_counter()
        state, m = jax.jit(vmap_seeds(algo.train, in_axes=(0, None)))(keys, Inputs(frozen=frozen, data=data))
        m = jax.device_get(m)
        wall = time.perf_counter() - t0
        ev = evaluate_algo(algo, state.params, Inputs(frozen=frozen, data=data), seeds, args.eval_episodes,
                           greedy=False, seed=1)
        out.append(ev["success"])
        print(f"  {method} fraction {f}: success {np.round(ev['success'], 3).tolist()}, "
              f"dt_loss {m['dt_loss'][:, -1].mean():.3f}, accuracy {m['accuracy'][:, -1].mean():.3f}"
              f", lm_heldout {np.nanmean(m['lm_heldout'][:, -1]):.2f} ({wall:.0f} s training, "
              f"{seeds * args.steps / wall:.1f} gradient steps/s)", file=sys.stderr, flush=True)
    return out


def run_baseline(method: str, ordered, fractions, seeds: int, args) -> list[list[float]]:
    import offline as offline_bench  # bench/offline.py
    n_eps = [dsl.subset_size(ordered.num_episodes, f) for f in fractions]
    sizes = np.array([[int(ordered["episode_length"][:n].sum()) for n in n_eps]])
    ns = SimpleNamespace(seeds=seeds, steps=args.baseline_steps, train_seed=args.train_seed,
                         eval_episodes=args.eval_episodes)
    succ = offline_bench.run_method(method, args.task, [ordered], sizes, ns)  # [1, F, S]
    return succ[0].tolist()


def main(argv=None) -> int:
    p = benchlib.parser(__doc__)
    p.add_argument("--task", default="DoorKey")
    p.add_argument("--fractions", default="0.1,1.0")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--ablation-seeds", type=int, default=2)
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--context", type=int, default=10)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=1000, help="gradient steps of the DT family")
    p.add_argument("--lr", type=float, default=1e-3,
                   help="learning rate of the DT family (LaMo's 1e-4 is for 100k steps)")
    p.add_argument("--baseline-steps", type=int, default=3000,
                   help="gradient steps of BC and CQL (bench/offline.py's)")
    p.add_argument("--text-batch", type=int, default=4)
    p.add_argument("--text-len", type=int, default=32)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--methods", default=" ".join(MAIN + ABLATIONS))
    p.add_argument("--data", default=None, help="dataset (default datasets/<task>-mixed-s0.npz)")
    p.add_argument("--out", "--json", dest="out", default=None,
                   help="results JSON (default bench/lamo_<task>.json)")
    p.add_argument("--replot", action="store_true")
    args = p.parse_args(argv)
    out = Path(args.out or ROOT / "bench" / f"lamo_{args.task}.json")
    fractions = [float(f) for f in args.fractions.split(",")]
    if args.replot:
        r = json.loads(out.read_text())
        write(r, out)
        return 0
    if args.data:
        path = Path(args.data)
        ds = dsl.load(path)
    else:  # bench/offline.py's dataset: mixed, 2,000 episodes, seed 0 (collected if missing)
        import offline as offline_bench
        path = ROOT / "datasets" / f"{args.task}-mixed-s0.npz"
        ds = offline_bench.load_or_collect(args.task, "mixed", 2000, 0, path.parent)
    ordered = ds.episodes(ds.permutation(0))
    settings = {k: getattr(args, k) for k in ("task", "seeds", "ablation_seeds", "layers",
                                             "context", "batch", "steps", "lr", "baseline_steps",
                                             "text_batch", "text_len", "eval_episodes")}
    r = {**settings, "fractions": fractions, "dataset": str(path.relative_to(ROOT)
                                                            if path.is_relative_to(ROOT) else path),
         "episodes": [dsl.subset_size(ordered.num_episodes, f) for f in fractions],
         "dataset_success": ds.meta["success_rate"], "methods": {}}
    if out.is_file():
        old = json.loads(out.read_text())
        if all(old.get(k) == r[k] for k in (*settings, "fractions")):
            r["methods"] = old["methods"]
    t0 = time.perf_counter()
    for method in args.methods.split():
        if method in r["methods"]:
            continue
        ablation = method in ABLATIONS
        fr = fractions[:1] if ablation or method in LOWEST_ONLY else fractions
        seeds = args.ablation_seeds if ablation else args.seeds
        print(f"{method}: fractions {fr}, {seeds} seeds", file=sys.stderr, flush=True)
        t1 = time.perf_counter()
        run = run_dt if method in DT_METHODS else run_baseline
        succ = run(method, ordered, fr, seeds, args)
        r["methods"][method] = {"fractions": fr, "success": succ,
                                "mean": [float(np.mean(s)) for s in succ],
                                "wall_s": time.perf_counter() - t1}
        benchlib.save(out, r)
    r["wall_s"] = r.get("wall_s", 0.0) + time.perf_counter() - t0
    write(r, out)
    return 0


def markdown(r: dict) -> str:
    fr = r["fractions"]
    head = " | ".join(f"{f:g} ({n} episodes)" for f, n in zip(fr, r["episodes"]))
    lines = [f"{r['task']}, mixed data (success {r['dataset_success']:.2f}); held-out success "
             f"of the final checkpoint, mean and per-seed values.", "",
             f"| method | {head} |", "|---" * (len(fr) + 1) + "|"]
    for m, v in r["methods"].items():
        cells = []
        for f in fr:
            if f in v["fractions"]:
                s = v["success"][v["fractions"].index(f)]
                cells.append(f"{np.mean(s):.2f} ({', '.join(f'{x:.2f}' for x in s)})")
            else:
                cells.append("-")
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write(r: dict, out: Path) -> None:
    md = markdown(r)
    benchlib.save(out, r, markdown=md)
    print(md)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    methods = list(r["methods"])
    fr = r["fractions"]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(fr)
    for j, f in enumerate(fr):
        xs, ys, pts = [], [], []
        for i, m in enumerate(methods):
            v = r["methods"][m]
            if f in v["fractions"]:
                s = v["success"][v["fractions"].index(f)]
                xs.append(i + (j - (len(fr) - 1) / 2) * width)
                ys.append(np.mean(s))
                pts.append(s)
        ax.bar(xs, ys, width, label=f"{f:g} of the data ({r['episodes'][j]} episodes)")
        for x, s in zip(xs, pts):
            ax.scatter([x] * len(s), s, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([LABELS.get(m, m) for m in methods], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("held-out success (final checkpoint)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{r['task']}: LaMo vs its controls (dots: seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(out.with_suffix(".png"))
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
