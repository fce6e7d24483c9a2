"""Skills named in words (`jaxrl3m.teacher.object_skills`) and factored abstractions
(`jaxrl3m.envs.factored`) against the library's own abstractions and skills: each oracle
teacher alone on the same held-out episodes. UnlockPickup: tests/test_object_skills.py's
eight-state task in words against the library's 36 states. Unlock: tests/test_factored.py's
three factors (16 states, skills in words) against the DoorKey family's 60 states. Fetch: the
mission factor alone (3 states) against the library's 12.

`--train` also trains guided PPO (the presets' settings, `configs/guided.yaml`, 4 seeds,
periodic held-out evaluation) on the words UnlockPickup (1M steps) and the factored Fetch (0.5M),
with the oracle table and with a uniform table under the posterior teacher, for comparison with
the library's rows of those tasks (docs/results.md); rows already in the JSON are kept. Writes
bench/object_skills.json.

`--priors` asks SmolLM2 for each task's prior table through `precompute_priors` (its prompts,
the tasks' generated or hand-written texts, unchanged) and reports its agreement with the oracle
beside the constant "explore".

    python bench/object_skills.py [--episodes 2000] [--train] [--priors]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import benchlib
from benchlib import ROOT


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=2000)
    p.add_argument("--train", action="store_true", help="also train guided PPO (~10 min)")
    p.add_argument("--priors", action="store_true",
                   help="also ask SmolLM2 (make model) for each task's prior table")
    p.add_argument("--out", default=str(ROOT / "bench" / "object_skills.json"))
    args = p.parse_args(argv)
    out = {"hardware": benchlib.hardware(), "episodes": args.episodes, "teachers": [],
           "training": []}
    sys.path.insert(0, str(ROOT / "tests"))
    import test_factored as factored
    import test_object_skills as words
    from jaxrl3m import envs
    from jaxrl3m.core.evaluation import evaluate
    from jaxrl3m.teacher.options import oracle_table
    from jaxrl3m.teacher.teacher import Teacher, teacher_logits

    words._register("WordsUnlockPickup")
    for name, base in (("FactorsUnlock", "Unlock"), ("FactorsFetch", "Fetch")):
        factored.register(name, base)
    rows = (("UnlockPickup", "WordsUnlockPickup", "skills named in words, 8 states"),
            ("UnlockPickup", "UnlockPickup", "the library's skills, 36 states"),
            ("Unlock", "FactorsUnlock", "three factors (16 states), skills named in words"),
            ("Unlock", "Unlock", "the DoorKey family's 60 states and skills"),
            ("Fetch", "FactorsFetch", "the mission factor (3 states), the library's skills"),
            ("Fetch", "Fetch", "the library's 12 states and skills"))
    for base, task, label in rows:
        env = envs.make(base, layouts="heldout")  # the same maps and rules
        ev = evaluate(env, teacher_logits, Teacher.create(task, oracle_table(task)), seeds=1,
                      episodes=args.episodes, seed=0, batched=False)
        print(f"{base}, {label}: success {ev['success_mean']:.3f}, return "
              f"{ev['return_mean']:.3f} ({args.episodes} held-out episodes)", flush=True)
        out["teachers"].append({"task": base, "guidance": label,
                                "success": ev["success_mean"], "return": ev["return_mean"]})
    if args.train:
        import json
        path = Path(args.out)
        # rows measured before are kept (a run per row is minutes), by task and table
        before = json.loads(path.read_text())["training"] if path.is_file() else []
        kept = {(r["task"], r["table"]): r for r in before}
        from jaxrl3m import train
        runs = ROOT / "runs" / "bench-object-skills"
        tables = (("oracle", ["prior=oracle"]),
                  ("uniform, posterior", ["prior=uniform", "posterior=true"]))
        for task, steps in (("WordsUnlockPickup", 1_000_000), ("FactorsFetch", 500_000)):
            for name, table_args in tables:
                if (task, name) in kept:
                    out["training"].append(kept[task, name])
                    continue
                run = f"{task}-" + name.replace(", ", "-")
                t0 = time.perf_counter()
                assert train.main(["configs/guided.yaml", f"task={task}", *table_args,
                                   f"total_steps={steps}", "seeds=4", f"runs_dir={runs}",
                                   f"name={run}", "--no-progress"]) == 0
                summary = json.loads((runs / run / "summary.json").read_text())
                hit = [None if math.isnan(x) else x for x in summary["steps_to_0.9"]]
                row = {"task": task, "table": name, "total_steps": steps, "steps_to_0.9": hit,
                       "held_out": summary["final_success"],
                       "wall_s": time.perf_counter() - t0}
                out["training"].append(row)
                print(f"guided PPO on {task}, {name}: 0.9 held-out at {hit}, final held-out "
                      f"{summary['final_success_mean']:.3f}", flush=True)
    if args.priors:
        import numpy as np
        from jaxrl3m import precompute_priors
        from jaxrl3m.teacher.priors import agreement
        from jaxrl3m.teacher.table import load_table
        from jaxrl3m.teacher.teacher import reachable_states
        out["priors"] = []
        for task in ("WordsUnlockPickup", "FactorsUnlock", "FactorsFetch"):
            path = ROOT / "runs" / "bench-object-skills" / f"{task}-smollm2.json"
            assert precompute_priors.main(["--task", task, "--backend", "jax", "--model",
                                           "smollm2", "--out", str(path)]) == 0
            probs = load_table(path, task).probs
            reach = reachable_states(task)
            explore = np.zeros_like(probs)
            explore[:, 0] = 1.0  # every task's first option is "explore"
            row = {"task": task, "states": len(reach),
                   "agreement": agreement(probs, task, reach),
                   "constant_explore": agreement(explore, task, reach),
                   "top_options": sorted(set(np.asarray(probs)[list(reach)].argmax(1).tolist()))}
            out["priors"].append(row)
            print(f"SmolLM2 on {task}: top option agrees with the oracle in "
                  f"{row['agreement']:.0%} of {len(reach)} reachable states (the constant "
                  f"\"explore\": {row['constant_explore']:.0%})", flush=True)
    benchlib.save(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
