#!/usr/bin/env bash
# The GPU benchmark, ready to run unchanged on a machine with an accelerator (about 5-8 minutes
# on one H100/H200):
#
#   bash bench/gpu.sh              # writes bench/gpu/*.json and the "GPU" section of bench/RESULTS.md
#   bash bench/gpu.sh --tiny       # the same steps at tiny sizes (a CPU check of the script)
#   bash bench/gpu.sh --lamo       # only LaMo's study at SmolLM2's full depth (30 layers), apart
#                                  # because it needs its own device time (bench/lamo_DoorKey_L30.*)
#
# 1. raw stepping of the three tasks (and NAVIX's DoorKey-8x8 for the ratio) at 4096 .. 65536
#    environments (bench/env_throughput.py);
# 2. plain and guided PPO training steps/s at 1024 .. 16384 environments, DoorKey and
#    ColoredDoorKey (bench/train_throughput.py: the driver's chunk, compile apart);
# 3. the main job (`make train`: python -m jaxrl3m.train ColoredDoorKey-vicuna33b-posterior),
#    wall time of a first run (empty compilation cache) and of a second (warm cache);
# 4. bench/gpu_report.py: the section of bench/RESULTS.md, with the device's name.
# Environment: PY (default .venv/bin/python), OUT (default bench/gpu), RESULTS (default
# bench/RESULTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-bench/gpu}
RESULTS=${RESULTS:-bench/RESULTS.md}
TINY=0
[[ "${1:-}" == "--tiny" ]] && TINY=1
if [[ "${1:-}" == "--lamo" ]]; then
  # Issue 27: the decisive rows of bench/lamo.py (LaMo, its random-init twin with two random base
  # seeds, the DT from scratch; 2 data fractions, 3 seeds) with all 30 layers of SmolLM2, where
  # "pre-trained" carries what the 2-core study's 4 layers cannot. Needs the model (make model).
  exec "$PY" bench/lamo.py --task DoorKey --layers 30 \
    --methods "lamo lamo-random lamo-random-b1 dt" --out bench/lamo_DoorKey_L30.json
fi
if (( TINY )); then
  RAW_ENVS="8"; RAW_STEPS=20; TRAIN_ENVS="64"; TRAIN_TASKS="DoorKey"; REPEATS=1
  MAIN_ARGS="total_steps=4096 eval_episodes=8 eval_every=0"
else
  RAW_ENVS="4096 16384 65536"; RAW_STEPS=200; TRAIN_ENVS="1024 4096 16384"
  TRAIN_TASKS="DoorKey ColoredDoorKey"; REPEATS=3; MAIN_ARGS=""
fi
mkdir -p "$OUT"
"$PY" -c 'import jax; print("devices:", jax.devices())'

echo "== 1/3 raw stepping"
"$PY" bench/env_throughput.py --envs $RAW_ENVS --steps $RAW_STEPS --repeats $REPEATS \
  --tasks DoorKey LavaDoorKey ColoredDoorKey --json "$OUT/env.json"

echo "== 2/3 training throughput"
"$PY" bench/train_throughput.py --tasks $TRAIN_TASKS --envs $TRAIN_ENVS --seeds 1 \
  --variants plain guided \
  --repeats $REPEATS --fresh --json "$OUT/train.json"

echo "== 3/3 the main job, first and second run"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for run in first second; do
  start=$(date +%s.%N)
  JAXRL3M_COMPILE_CACHE="$WORK/xla" "$PY" -m jaxrl3m.train ColoredDoorKey-vicuna33b-posterior \
    runs_dir="$WORK/runs" name="$run" $MAIN_ARGS --no-progress
  end=$(date +%s.%N)
  "$PY" - "$WORK/runs/$run/summary.json" "$start" "$end" "$OUT/main_$run.json" <<'PYEOF'
import json, sys
summary = json.load(open(sys.argv[1]))
json.dump({"wall_s": float(sys.argv[3]) - float(sys.argv[2]), "compile_s": summary["compile_s"],
           "train_steps_per_s": summary["steps_per_second"],
           "eval_success": summary["eval"]["success_mean"]}, open(sys.argv[4], "w"))
PYEOF
done

"$PY" bench/gpu_report.py --dir "$OUT" --results "$RESULTS" $( (( TINY )) && echo --tiny )
