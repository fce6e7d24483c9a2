#!/usr/bin/env bash
# What `--resume` and `python -m jaxrl3m.evaluate` cost after a run was stopped half-way (fresh
# processes, one compilation cache, XLA's default level): a restored state must reuse the
# programs the run compiled. Side by side with an older revision:
#
#   git worktree add /tmp/old <revision>
#   for i in 1 2; do bash bench/resume_eval.sh /tmp/old /tmp/re-old; bash bench/resume_eval.sh . /tmp/re-new; done
#
# TREE: the working tree whose jaxrl3m is timed (run from its root); OUT: a scratch folder
# (emptied). PY: the interpreter (default: this checkout's .venv/bin/python).
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
TREE=$(cd "$1" && pwd); OUT=$2
PY=${PY:-$HERE/.venv/bin/python}
rm -rf "$OUT"; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd)
cd "$TREE"
export JAXRL3M_COMPILE_CACHE=$OUT/xla
"$PY" - "$OUT" <<'PYEOF'
import os, sys
import jaxrl3m
assert jaxrl3m.__file__.startswith(os.getcwd()), f"timing {jaxrl3m.__file__}, not this tree"
from jaxrl3m.core import compile_cache
from jaxrl3m.runner import driver, runs
compile_cache.enable()
c, run = runs.load_config("DoorKey-oracle", {"runs_dir": sys.argv[1] + "/runs", "name": "r",
                                             "total_steps": 40960, "log_every": 10,
                                             "eval_episodes": 64})
d, run = runs.create_run(c, run)
driver.train_run(c, run, d, progress=False, stop_after=10)
PYEOF
t0=$(date +%s.%N)
"$PY" -m jaxrl3m.train --resume "$OUT/runs/r" --no-progress > "$OUT/resume.log" 2>&1
t1=$(date +%s.%N)
"$PY" -m jaxrl3m.evaluate "$OUT/runs/r" --episodes 64 > "$OUT/eval.log" 2>&1
t2=$(date +%s.%N)
compile=$(grep -o "compile [0-9.]* s apart" "$OUT/resume.log" || echo "compile ? s")
echo "$(git -C "$TREE" rev-parse --short HEAD): resume $(echo "$t1 - $t0" | bc) s ($compile), evaluate $(echo "$t2 - $t1" | bc) s"
