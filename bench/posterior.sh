#!/usr/bin/env bash
# The posterior-teacher study (issue 17): 3 tasks x 6 tables x {fixed, posterior} teacher, 4 seeds,
# 1M steps each, into bench/posterior.json (rows "<table> total_steps=1000000" and
# "<table> total_steps=1000000 posterior=true"). ~50 min on 2 CPU cores.
# Table: python bench/learning.py --out bench/posterior.json --markdown
set -e
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
B="$PY bench/learning.py --out bench/posterior.json"
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods oracle vicuna33b llm uniform shuffled --set total_steps=1000000 posterior=true
done
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods oracle vicuna33b llm uniform shuffled --set total_steps=1000000 --skip-done
done
for t in ColoredDoorKey DoorKey LavaDoorKey; do
  $B --tasks $t --methods gemma3 --set total_steps=1000000 posterior=true
  $B --tasks $t --methods gemma3 --set total_steps=1000000
done
