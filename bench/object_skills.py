"""Skills named in words (`jaxrl3m.teacher.object_skills`) against the library's own, on
UnlockPickup: the oracle teacher of tests/test_object_skills.py's eight-state task written with
word-named options, and the oracle teacher of the library's UnlockPickup (its 36-state
abstraction and named skills), each alone on the same held-out episodes.

    python bench/object_skills.py [--episodes 2000]
"""

from __future__ import annotations

import argparse
import sys

from benchlib import ROOT


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=2000)
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    import test_object_skills as words
    from jaxrl3m import envs
    from jaxrl3m.core.evaluation import evaluate
    from jaxrl3m.teacher.options import oracle_table
    from jaxrl3m.teacher.teacher import Teacher, teacher_logits

    words._register("WordsUnlockPickup")
    env = envs.make("UnlockPickup", layouts="heldout")  # the same maps and rules
    for task, label in (("WordsUnlockPickup", "skills named in words, 8 states"),
                        ("UnlockPickup", "the library's skills, 36 states")):
        ev = evaluate(env, teacher_logits, Teacher.create(task, oracle_table(task)), seeds=1,
                      episodes=args.episodes, seed=0, batched=False)
        print(f"{label}: success {ev['success_mean']:.3f}, return {ev['return_mean']:.3f} "
              f"({args.episodes} held-out episodes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
