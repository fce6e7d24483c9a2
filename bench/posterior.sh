#!/usr/bin/env bash
# The posterior-teacher study (issue 17): 3 tasks x 6 tables x {fixed, posterior} teacher, 4 seeds,
# 1M steps each, into bench/posterior.json (rows "<table> total_steps=1000000" and
# "<table> total_steps=1000000 posterior=true"). ~50 min on 2 CPU cores, then 7 ablation rows (~12 min).
# Table: python bench/learning.py --out bench/posterior.json --markdown
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
B="$PY bench/learning.py --out bench/posterior.json --skip-done"  # resumable: measured rows are kept
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods oracle vicuna33b llm uniform shuffled --set total_steps=1000000 posterior=true
done
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods oracle vicuna33b llm uniform shuffled --set total_steps=1000000
done
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods gemma3 --set total_steps=1000000 posterior=true
  $B --tasks $t --methods gemma3 --set total_steps=1000000
done
# Ablations of the posterior teacher's floor and temperature (docs/teacher.md, "A larger floor").
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods llm gemma3 --set total_steps=1000000 posterior=true posterior_floor=0.2
done
$B --tasks ColoredDoorKey --methods llm --set total_steps=1000000 posterior=true posterior_tau=0.005
