# %% [markdown]
# # jaxrl3m in ten minutes
#
# A walkthrough you can run as a script (`python docs/walkthrough.py`) or open as a notebook
# (jupytext's percent format: `jupytext --to notebook docs/walkthrough.py`). The test suite runs
# it on these tiny budgets, so it cannot rot. Raise `total_steps` and `num_envs` for real runs.

# %%
import json
import tempfile
from pathlib import Path

import jax
import numpy as np

from jaxrl3m import envs
from jaxrl3m.runner import driver, runs
from jaxrl3m.teacher.teacher import Teacher, resolve_prior

workdir = Path(tempfile.mkdtemp(prefix="jaxrl3m-walkthrough-"))

# %% [markdown]
# ## 1. A task, thousands of times at once
# `reset` and `step` are pure functions of one environment; `vmap` runs many, `jit` compiles once.

# %%
env = envs.make("DoorKey")
ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 1024))
ts = jax.jit(jax.vmap(env.step))(ts.state, np.full(1024, 2))  # every agent moves forward
print(ts.obs.grid.shape, float(ts.reward.mean()))

# %% [markdown]
# ## 2. Abstract states, their texts, and the teacher's advice
# Each observation maps to one of 60 abstract states; a prior table gives, per abstract state,
# the teacher's weights over its skills (computed offline by a language model, or the oracle's).

# %%
s = int(jax.jit(envs.abstract_state)(jax.tree.map(lambda x: x[0], ts.obs)))
table, info = resolve_prior("oracle", "DoorKey")
teacher = Teacher.create("DoorKey", table)
print(envs.describe(s))
print({o: round(float(p), 2) for o, p in zip(teacher.columns, table[s])})

# %% [markdown]
# ## 3. Guided PPO from Python
# The same run the command `python -m jaxrl3m.train DoorKey-oracle ...` makes: a run folder
# with its config, the record of its inputs, metrics, checkpoints and a held-out evaluation.

# %%
config, run = runs.load_config("DoorKey-oracle", {
    "seeds": 2, "num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 2,
    "hidden": [16], "window": 5, "total_steps": 640, "log_every": 5, "eval_episodes": 16,
    "runs_dir": str(workdir), "name": "walkthrough"})
run_dir, run = runs.create_run(config, run)
summary = driver.train_run(config, run, run_dir, progress=False)
print(sorted(p.name for p in run_dir.iterdir()))
print("held-out success per seed:", summary["eval"]["success"])

# %% [markdown]
# ## 4. What the run recorded

# %%
record = json.loads((run_dir / "inputs.json").read_text())
print("kl_coef:", record["config"]["kl_coef"], "| inputs hashed:", list(record["inputs"]))
print((run_dir / "metrics.csv").read_text().splitlines()[0])

# %% [markdown]
# ## 5. A picture of the teacher acting
# `python -m jaxrl3m.render DoorKey-oracle --out doorkey.gif` does the same from the shell.

# %%
from jaxrl3m import render  # noqa: E402

env_h, policy, params, teacher_h = render.source_policy("DoorKey-oracle")
episodes = render.record(env_h, policy, params, jax.random.key(1), 1, teacher_h)
frames = render.frames(episodes[0], teacher_h.columns, env_h.view_size, tile=8)
gif = render.write_video(frames, workdir / "episode.gif")
print(f"{gif}: {len(frames)} frames, {episodes[0].outcome} in {episodes[0].length} steps")
