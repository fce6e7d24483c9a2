"""The shared core: collector, driver, config, presets, teacher object, encoder, registry."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from flax import struct
from helpers import TINY_RUN, random_observations

from jaxrl3m import algos, train as train_cli
from jaxrl3m.algos.ppo import PPOConfig, make_ppo
from jaxrl3m.core import collector
from jaxrl3m.core.checkpoint import Checkpoints
from jaxrl3m.core.config import ConfigError, build, preset_names, resolve_config
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.envs.types import (DOOR, EMPTY_CELL, KEY, NOTHING, WALL_CELL, Observation,
                                TimeStep, cell)
from jaxrl3m.nets import cell_codes, door_colour
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.teacher import Teacher

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------------
# The collector, against a rollout computed by hand
# ---------------------------------------------------------------------------------------------
class CountState(struct.PyTreeNode):
    t: jax.Array


@dataclasses.dataclass(frozen=True)
class CountEnv:
    """Each step pays 0.1; at step 3 action 1 terminates with reward 1 instead; otherwise the
    episode is cut (truncated) after step 4. The observation's agent_pos[0] is the step count."""

    num_actions: int = 2

    def _obs(self, t):
        return Observation(grid=jnp.zeros((2, 2, 3), jnp.uint8),
                           agent_pos=jnp.stack([t, jnp.int32(0)]), agent_dir=jnp.int32(0),
                           carrying=jnp.asarray(NOTHING))

    def reset(self, key):
        z = jnp.zeros((), bool)
        obs = self._obs(jnp.int32(0))
        return TimeStep(state=CountState(t=jnp.int32(0)), obs=obs, reward=jnp.float32(0),
                        terminated=z, truncated=z, final_obs=obs)

    def step(self, state, action):
        t = state.t + 1
        terminated = (t == 3) & (action == 1)
        truncated = (t == 4) & ~terminated
        reward = jnp.where(terminated, 1.0, 0.1).astype(jnp.float32)
        done = terminated | truncated
        new_t = jnp.where(done, 0, t)
        return TimeStep(state=CountState(t=new_t), obs=self._obs(new_t), reward=reward,
                        terminated=terminated, truncated=truncated, final_obs=self._obs(t))


def _by_index(params, obs, key):
    """Environment 0 always takes action 1, environment 1 action 0."""
    n = obs.agent_dir.shape[0]
    return (jnp.arange(n) == 0).astype(jnp.int32), {"t": obs.agent_pos[:, 0]}


def test_collector_matches_a_hand_computed_rollout():
    env = CountEnv()
    carry = collector.reset(env, jax.random.key(0), 2)
    carry, tr = jax.jit(lambda c: collector.rollout(env, _by_index, None, c, jax.random.key(1),
                                                    8))(carry)
    # env 0: episodes of 3 steps (0.1, 0.1, 1.0) ending at steps 2 and 5; env 1: truncated
    # episodes of 4 steps (0.1 each) ending at steps 3 and 7.
    done = np.zeros((8, 2), bool)
    done[[2, 5], 0] = done[[3, 7], 1] = True
    np.testing.assert_array_equal(tr.done, done)
    np.testing.assert_array_equal(tr.terminated[:, 0], done[:, 0])
    np.testing.assert_array_equal(tr.truncated[:, 1], done[:, 1])
    ret = np.where(done, [[1.2, 0.4]], 0.0)
    np.testing.assert_allclose(tr.episode_return, ret, rtol=1e-6)
    np.testing.assert_array_equal(tr.episode_length, np.where(done, [[3, 4]], 0))
    np.testing.assert_array_equal(tr.success, done & np.array([[True, False]]))
    # The policy saw the step count; final_obs is where the episode ended, obs the next start.
    np.testing.assert_array_equal(tr.extras["t"][:, 0], [0, 1, 2, 0, 1, 2, 0, 1])
    np.testing.assert_array_equal(tr.final_obs.agent_pos[[2, 5], 0, 0], [3, 3])
    np.testing.assert_array_equal(tr.final_obs.agent_pos[[3, 7], 1, 0], [4, 4])
    np.testing.assert_allclose(carry.ep_return, [0.2, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(carry.ep_length, [2, 0])
    m = collector.episode_metrics(tr)
    np.testing.assert_allclose([m["episodes"], m["return"], m["success"], m["length"]],
                               [4, 0.8, 0.5, 3.5], rtol=1e-6)
    none = collector.episode_metrics(jax.tree.map(lambda x: x[:2], tr))  # no episode ended
    assert float(none["episodes"]) == 0 and np.isnan(float(none["success"]))


def test_collector_plays_exactly_one_episode_per_environment():
    stats = jax.jit(lambda k: collector.episodes(CountEnv(), _by_index, None, k, 2))(
        jax.random.key(0))
    np.testing.assert_array_equal(stats.length, [3, 4])
    np.testing.assert_array_equal(stats.success, [True, False])
    np.testing.assert_array_equal(stats.lava, [False, False])
    np.testing.assert_allclose(stats.ret, [1.2, 0.4], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# The teacher object
# ---------------------------------------------------------------------------------------------
def _observations(task: str, n: int = 64):
    return random_observations(make_ppo(PPOConfig(task=task)).env, n, 4, seed=2)


def test_teacher_object_probabilities_floor_and_proposals():
    task = "ColoredDoorKey"
    teacher = Teacher.create(task, oracle_table(task))
    obs = jax.tree.map(lambda x: x[:48], _observations(task))
    k = 4000
    # one program for the three (the skills are computed once in it)
    p, logp, a = map(np.asarray, jax.jit(lambda t, o, key: (
        t.probs(o), t.log_probs(o, 0.1), t.sample(key, o, k)))(teacher, obs, jax.random.key(0)))
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-5)
    assert (p == 0).any()  # the oracle's skills are sharp: log 0 is possible without a floor
    assert np.isfinite(logp).all()
    np.testing.assert_allclose(np.exp(logp), 0.9 * p + 0.1 / 7, rtol=1e-5, atol=1e-7)
    assert a.shape == (48, k) and a.dtype == np.int32
    freq = np.stack([np.bincount(row, minlength=7) / k for row in a])
    np.testing.assert_allclose(freq, p, atol=0.04)  # 4000 draws: std <= 0.008
    assert not (freq[p == 0] > 0).any()  # never an action the teacher excludes
    with pytest.raises(ConfigError, match=r"shape \(60, 6\).*needs \(60, 8\)"):
        Teacher.create(task, oracle_table("DoorKey"))


# ---------------------------------------------------------------------------------------------
# Skips that stay skips under vmap over seeds
# ---------------------------------------------------------------------------------------------
def test_teacher_and_bootstrap_skips_stay_conds_under_vmap_over_seeds():
    config = PPOConfig(task="DoorKey", total_steps=64, num_envs=8, num_steps=8,
                       num_minibatches=2, update_epochs=1, hidden=(16,), window=5, kl_coef=1.0)
    algo = make_ppo(config)
    teacher = algo.teacher(oracle_table("DoorKey"))
    # shapes are all make_jaxpr needs (running init op by op compiles every primitive alone)
    states = jax.eval_shape(jax.vmap(algo.init), jax.random.split(jax.random.key(0), 2))
    conds = lambda vmap: str(jax.make_jaxpr(vmap(lambda s, t: algo.update(s, t, 1),
                                                 in_axes=(0, None)))(states, teacher)).count(
        "cond[")
    # Plain vmap turns both conds (teacher while lambda = 0; values of truncated episodes'
    # final observations) into selects that run both branches; over named seeds they stay.
    assert conds(vmap_seeds) >= conds(jax.vmap) + 2


# ---------------------------------------------------------------------------------------------
# The driver: divergence guard, TensorBoard
# ---------------------------------------------------------------------------------------------
def test_divergence_stops_the_run_and_names_update_seed_and_checkpoint(tmp_path, capsys):
    # A diverging run (lr=1e12 used to reach a loss of 1e25 and run on) is stopped at the
    # first chunk whose loss exceeds max_loss; here any real loss does (the suite's tiny run,
    # compiled once), so the command's whole path is taken without a program of its own.
    assert train_cli.main([*TINY_RUN, "name=boom", f"runs_dir={tmp_path}", "max_loss=1e-9"]) == 2
    err = capsys.readouterr().err
    assert "training diverged" in err and "exceeds max_loss=1e-09 at update 1 (seed " in err
    lr = yaml.safe_load((tmp_path / "boom" / "config.yaml").read_text())["lr"]
    assert f"Lower lr (now {float(lr):g})" in err
    assert "no checkpoint was written yet" in err  # stopped in the first chunk
    assert not (tmp_path / "boom" / "summary.json").exists()
    # The folder of a start that failed before any checkpoint says so (it is not a run).
    failed = json.loads((tmp_path / "boom" / "failed.json").read_text())
    assert "TrainingDiverged" in failed["error"] and "exceeds max_loss" in failed["error"]
    from jaxrl3m import evaluate
    assert evaluate.main([str(tmp_path / "boom"), "--episodes", "4"]) == 2
    assert "its start failed: TrainingDiverged" in capsys.readouterr().err
    # A healthy run under a guard is not stopped.
    assert train_cli.main([*TINY_RUN, "name=fine", f"runs_dir={tmp_path}", "max_loss=1e4"]) == 0
    # config.yaml edited after the run: refused, naming the key (inputs.json records the start).
    cfg = tmp_path / "fine" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("- 16", "- 32"))
    capsys.readouterr()
    assert evaluate.main([str(tmp_path / "fine"), "--episodes", "4"]) == 2
    assert "config.yaml was edited after the run started (hidden: [16]" in capsys.readouterr().err
    # Without the record (a folder written before records), a checkpoint that does not fit the
    # run's config (another version, other keys) is named.
    (tmp_path / "fine" / "inputs.json").unlink()
    assert evaluate.main([str(tmp_path / "fine"), "--episodes", "4"]) == 2
    assert "does not fit this run's state" in capsys.readouterr().err


def test_divergence_check_finds_the_first_bad_update_and_names_the_last_checkpoint(tmp_path):
    from jaxrl3m.runner.driver import TrainingDiverged, check_divergence

    class Saved:  # the checkpoints a run has written so far
        directory = tmp_path / "checkpoints"

        def __init__(self, last):
            self.last = last

        def latest(self):
            return self.last

    loss = np.array([[0.5, 0.7, 2e5, np.nan], [0.4, np.inf, 0.3, 0.2]], np.float32)
    with pytest.raises(TrainingDiverged, match=r"loss inf is not finite at update 12 \(seed 1\)"
                       r"\. Lower lr\. The last good state is checkpoint 10 in .*checkpoints "
                       r"\(--resume"):
        check_divergence({"loss": loss}, 10, 1e4, Saved(10), "Lower lr.")
    with pytest.raises(TrainingDiverged, match=r"loss 2e\+05 exceeds max_loss=10000 at update 3 "
                       r"\(seed 0\).*no checkpoint was written yet"):
        check_divergence({"loss": loss[:1]}, 0, 1e4, Saved(None), "Lower lr.")
    check_divergence({"loss": loss[:, :2][:1]}, 0, 1e4, Saved(None), "Lower lr.")  # healthy: no error


def test_tensorboard_logging(tmp_path, monkeypatch):
    # TensorBoard and Weights & Biases (offline: no network) in one run.
    pytest.importorskip("tensorboardX")
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert train_cli.main([*TINY_RUN, "name=tb", f"runs_dir={tmp_path}", "tensorboard=true",
                           "wandb=true", "wandb_mode=offline", "wandb_project=test"]) == 0
    events = list((tmp_path / "tb" / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
    logs = list((tmp_path / "tb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert logs, list((tmp_path / "tb").rglob("*"))[:20]
    data = logs[0].read_bytes()
    assert b"seed1/loss" in data and b"seed0/kl_teacher" in data


# ---------------------------------------------------------------------------------------------
# Config: one key space, presets by name, the registry
# ---------------------------------------------------------------------------------------------
def test_a_key_in_two_sections_is_refused():
    @dataclasses.dataclass(frozen=True)
    class A:
        lr: float = 1.0

    @dataclasses.dataclass(frozen=True)
    class B:
        lr: float = 2.0
        other: int = 0

    with pytest.raises(ConfigError, match="'lr' is defined in both A and B"):
        build((A, B), {"lr": 3.0})
    with pytest.raises(ConfigError, match="'lr' is defined in both"):
        build((A, B), {})  # refused even when the config does not set it


def test_presets_are_found_by_name_and_algorithms_by_registry(capsys):
    assert "DoorKey-oracle" in preset_names() and "transfer/4-llm" in preset_names()
    assert resolve_config("DoorKey-oracle") == resolve_config("configs/DoorKey-oracle.yaml").resolve()
    with pytest.raises(ConfigError, match="Did you mean 'DoorKey-oracle'"):
        resolve_config("DoorKey-orcale")
    assert train_cli.main(["--list"]) == 0
    assert "ColoredDoorKey-llm" in capsys.readouterr().out
    assert algos.get("ppo").config is PPOConfig
    assert algos.get("dqn").config.__name__ == "DQNConfig"
    with pytest.raises(ConfigError, match="'algo': 'dqm' is not a registered algorithm.*"
                                          "Did you mean 'dqn'"):
        from jaxrl3m.runner.runs import load_config
        load_config(None, {"algo": "dqm"})


def test_presets_and_tables_from_a_non_editable_install(tmp_path):
    """`pip install jaxrl3m` (not editable): presets are found by name and the shipped tables
    they name load, from a folder that is not the checkout."""
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--target", str(target), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    assert (target / "jaxrl3m" / "configs" / "DoorKey-oracle.yaml").is_file()
    code = ("import jaxrl3m; from jaxrl3m.runner.runs import load_config, setup; "
            "c, r = load_config('ColoredDoorKey-vicuna33b-posterior', {}); s = setup(c, r); "
            "print(jaxrl3m.__file__); print(r.prior, s.info['prior_model'], s.teacher.table.shape)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": str(target), "JAX_PLATFORMS": "cpu"})
    assert out.returncode == 0, out.stderr
    where, prior = out.stdout.strip().splitlines()
    assert where.startswith(str(target))  # the installed copy, not the checkout
    assert "ColoredDoorKey-vicuna33b-llm4teach.json vicuna-33b (60, 8)" in prior


# ---------------------------------------------------------------------------------------------
# The encoder: colours relative to the door only once a door has been seen
# ---------------------------------------------------------------------------------------------
def _obs_with(cells: dict) -> Observation:
    grid = np.zeros((10, 10, 3), np.uint8)
    for pos, c in cells.items():
        grid[pos] = c
    return Observation(grid=jnp.asarray(grid), agent_pos=jnp.array([4, 4], jnp.int32),
                       agent_dir=jnp.int32(0), carrying=jnp.asarray(NOTHING))


def test_cell_codes_are_absolute_until_a_door_is_seen():
    # The corner (0, 0) is a remembered grey wall, a red key lies near the agent, no door yet.
    seen = {(0, 0): WALL_CELL, (4, 5): cell(KEY, 0), (4, 3): EMPTY_CELL}
    obs = _obs_with(seen)
    assert int(door_colour(obs.grid.astype(jnp.int32))) == 0
    for view in ("egocentric", "allocentric"):
        rel = cell_codes(obs, view, 11, relative_colours=True)
        ab = cell_codes(obs, view, 11, relative_colours=False)
        np.testing.assert_array_equal(rel[0], ab[0])  # no door: nothing is shifted
    # Once a blue (2) door is seen, colours are coded relative to it: the red key becomes 4.
    door = _obs_with({**seen, (0, 4): cell(DOOR, 2, 2)})
    assert int(door_colour(door.grid.astype(jnp.int32))) == 2
    rel, _ = cell_codes(door, "allocentric", 11, True)
    ab, _ = cell_codes(door, "allocentric", 11, False)
    key_cell = 4 * 10 + 5
    assert int(ab[key_cell]) // 15 % 6 == 0 and int(rel[key_cell]) // 15 % 6 == 4


# ---------------------------------------------------------------------------------------------
# The layout of the package: no import circle, layers that point one way, library code never
# imports a command
# ---------------------------------------------------------------------------------------------
LAYERS = ("errors", "llm", "envs", "core", "nets", "teacher", "offline", "algos", "runner",
          "experiments")
"""The library's packages, lowest first: a module imports only its own package and those below
(function-local imports included); the commands sit above them all."""
COMMANDS = {"jaxrl3m.train", "jaxrl3m.evaluate", "jaxrl3m.rollout", "jaxrl3m.precompute_priors",
            "jaxrl3m.priors_report"}


def _module_imports() -> dict[str, set[str]]:
    pkg = ROOT / "jaxrl3m"
    graph = {}
    for path in pkg.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):  # function-local imports too
            if isinstance(node, ast.ImportFrom):
                base = name.split(".")[: len(name.split(".")) - node.level
                                      + (parts[-1] == "__init__")] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else []))
                deps |= {mod} | {f"{mod}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d.startswith("jaxrl3m")}
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_circle_and_commands_stay_on_top():
    graph = _module_imports()
    packages = {p.name for p in (ROOT / "jaxrl3m").iterdir()
                if p.is_dir() and (p / "__init__.py").is_file()}
    assert packages <= set(LAYERS), f"a package without a layer: {packages - set(LAYERS)}"
    assert (ROOT / "jaxrl3m" / "errors.py").is_file()
    for m, deps in graph.items():
        if m not in COMMANDS:
            assert not deps & COMMANDS, f"{m} imports the command module(s) {deps & COMMANDS}"
        for d in deps:
            if _layer(m) is not None and _layer(d) is not None:
                assert _layer(d) <= _layer(m), \
                    f"{m} imports {d}, a layer above it ({' < '.join(LAYERS)})"
    state: dict[str, int] = {}

    def visit(m, path):
        if state.get(m) == 1:
            raise AssertionError("import circle: " + " -> ".join(path + [m]))
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in graph[m]:
            if not m.startswith(d + "."):  # a package's __init__ is imported by its modules
                visit(d, path + [m])
        state[m] = 2

    for m in graph:
        visit(m, [])


def test_heads_share_one_encoder():
    from jaxrl3m.nets import Network
    env = make_ppo(PPOConfig(task="DoorKey")).env
    obs = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 4)).obs
    ac, q = Network(head="actor_critic", hidden=(16,)), Network(head="q", hidden=(16,))
    p_ac, p_q = jax.jit(ac.init)(jax.random.key(0), obs), jax.jit(q.init)(jax.random.key(0), obs)
    shapes = lambda p: jax.tree.map(lambda x: x.shape, p["params"]["encoder"])
    assert shapes(p_ac) == shapes(p_q) and set(p_q["params"]) == {"encoder", "q"}
    # PPO's trained encoder can be carried into a Q network as it is.
    q_values = jax.jit(q.apply)({"params": {**p_q["params"],
                                            "encoder": p_ac["params"]["encoder"]}}, obs)
    assert q_values.shape == (4, 7)


class _Before(struct.PyTreeNode):
    x: jax.Array
    key: jax.Array


class _After(struct.PyTreeNode):
    x: jax.Array
    key: jax.Array
    extra: object = None  # a field added later, None unless used (like PPOState.options)


def test_checkpoints_restore_a_state_written_before_a_none_field_existed(tmp_path):
    ckpt = Checkpoints(tmp_path / "c")
    ckpt.save(3, _Before(x=jnp.arange(4.0), key=jax.random.key(7)))
    out = ckpt.restore(3, _After(x=jnp.zeros(4), key=jax.random.key(0)))
    np.testing.assert_array_equal(out.x, np.arange(4.0))
    assert out.extra is None
    np.testing.assert_array_equal(jax.random.key_data(out.key),
                                  jax.random.key_data(jax.random.key(7)))
    with pytest.raises(ConfigError, match="does not fit"):  # a real mismatch is still refused
        ckpt.restore(3, _After(x=jnp.zeros(5), key=jax.random.key(0)))
    ckpt.close()


def test_a_restored_state_is_placed_as_a_fresh_one_and_needs_no_second_program(tmp_path):
    """orbax hands back committed arrays; a fresh state is uncommitted, and a program lowered
    for one form differs from the other's (every resume and every evaluation of a run folder
    compiled its program again). A template of shapes only restores the same values."""
    fresh = jax.jit(lambda k: _Before(x=jnp.arange(4.0), key=jax.random.split(k, 2)))(
        jax.random.key(7))
    ckpt = Checkpoints(tmp_path / "c")
    ckpt.save(1, fresh)
    ckpt.manager.wait_until_finished()
    restored = ckpt.restore(1, fresh)
    from_shapes = ckpt.restore(1, jax.eval_shape(lambda: fresh))
    ckpt.close()
    step = jax.jit(lambda s: s.replace(x=s.x + 1, key=jax.vmap(jax.random.fold_in)(s.key,
                                                                                   jnp.arange(2))))
    want = step.lower(fresh).as_text()
    for out in (restored, from_shapes):
        assert not any(x.committed for x in jax.tree.leaves(out))
        assert step.lower(out).as_text() == want
        np.testing.assert_array_equal(out.x, fresh.x)
        np.testing.assert_array_equal(jax.random.key_data(out.key), jax.random.key_data(fresh.key))


# ---------------------------------------------------------------------------------------------
# The fast input path and the driver's chunks
# ---------------------------------------------------------------------------------------------
def _reference_apply(net, params, cells, carried):
    """The encoder as it was before the fast input path: two `jnp.take` lookups (with bounds
    checks), the embeddings concatenated, then the layers; written out by hand."""
    p = params["params"]["encoder"]
    x = jnp.take(p["cell"]["embedding"], cells.astype(jnp.int32), axis=0)
    c = jnp.take(p["carried"]["embedding"], carried.astype(jnp.int32), axis=0)
    if net.network == "cnn":
        side = int(round(cells.shape[-1] ** 0.5))
        x = x.reshape(*x.shape[:-2], side, side, net.embed_dim)
        for name in ("conv1", "conv2"):
            x = jax.nn.relu(jax.lax.conv_general_dilated(
                x, p[name]["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
                + p[name]["bias"])
    x = jnp.concatenate([x.reshape(*c.shape[:-1], -1), c], -1)
    for i in range(len(net.hidden)):
        x = jnp.tanh(x @ p[f"dense{i}"]["kernel"] + p[f"dense{i}"]["bias"])
    top = params["params"]
    return (x @ top["policy"]["kernel"] + top["policy"]["bias"],
            (x @ top["value"]["kernel"] + top["value"]["bias"])[..., 0])


@pytest.mark.parametrize("network", ["mlp", "cnn"])
def test_fast_input_path_gives_the_reference_outputs_and_gradients(network):
    from jaxrl3m.envs import make
    from jaxrl3m.nets import Network
    # States mid-episode (keys and doors of several colours seen, something carried).
    obs = random_observations(make("ColoredDoorKey"), 32, 40, seed=1)
    net = Network(network=network)
    params = jax.jit(net.init)(jax.random.key(0), obs)
    cells, carried = jax.jit(net.encode)(obs)
    assert cells.dtype == jnp.int16 and carried.dtype == jnp.int16
    assert int(cells.max()) < 990 and int(carried.max()) < 66 and len(np.unique(cells)) > 5
    fast = jax.jit(net.apply_codes)(params, cells, carried)
    ref = jax.jit(lambda p, a, b: _reference_apply(net, p, a, b))(params, cells, carried)
    for a, b in zip(fast, ref):
        np.testing.assert_array_equal(a, b)

    def loss(apply):
        return lambda p: sum(jnp.sum(jnp.sin(x)) for x in apply(p, cells, carried))

    g_fast = jax.jit(jax.grad(loss(net.apply_codes)))(params)
    g_ref = jax.jit(jax.grad(loss(lambda p, a, b: _reference_apply(net, p, a, b))))(params)
    for a, b in zip(jax.tree.leaves(g_fast), jax.tree.leaves(g_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert float(jnp.abs(g_fast["params"]["encoder"]["carried"]["embedding"]).sum()) > 0


def test_a_chunk_skips_its_surplus_updates():
    """The driver's one program per run: `count` < chunk size runs exactly `count` updates
    (state and metrics as `update(state, count)` gives them) and leaves zeros after them."""
    from jaxrl3m.runner import driver
    algo = make_ppo(PPOConfig(task="DoorKey", num_envs=8, num_steps=8, num_minibatches=2,
                                update_epochs=2, hidden=(16,), window=5, total_steps=640),
                      guided=False)
    state = jax.jit(vmap_seeds(algo.init))(jax.random.split(jax.random.key(0), 2))
    fn = driver.chunk_fn(algo, 3)
    short, m = fn(state, None, 2)
    ref, m_ref = jax.jit(vmap_seeds(lambda s: algo.update(s, None, 2)))(state)
    assert m["loss"].shape == (2, 3)
    np.testing.assert_allclose(m["loss"][:, :2], m_ref["loss"], rtol=1e-6)
    assert (np.asarray(m["env_steps"][:, 2]) == 0).all()
    assert int(short.update[0]) == 2
    for a, b in zip(jax.tree.leaves(short.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    full, m3 = fn(state, None)
    assert int(full.update[0]) == 3 and (np.asarray(m3["env_steps"][:, 2]) > 0).all()


def test_final_success_is_never_a_bare_nan():
    text = train_cli.final_success_text([float("nan"), float("nan")])
    assert "nan" not in text.lower() and "fewer than 50 training episodes in 5 updates" in text
    text = train_cli.final_success_text([0.5, float("nan")])
    assert "0.500" in text and "1 seed(s) without a rate" in text and "nan" not in text.lower()
    assert train_cli.final_success_text([0.25, 0.75]).startswith("final success 0.500 +- 0.250")


def test_compile_cache_folder_and_switch(tmp_path, monkeypatch):
    from jaxrl3m.core import compile_cache
    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.setenv(compile_cache.ENV, "off")
        assert compile_cache.enable() is None
        monkeypatch.setenv(compile_cache.ENV, str(tmp_path / "xla"))
        assert compile_cache.enable() == tmp_path / "xla" and (tmp_path / "xla").is_dir()
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
        monkeypatch.delenv(compile_cache.ENV)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home"))
        assert compile_cache.default_dir() == tmp_path / "home" / "jaxrl3m" / "xla"
    finally:
        jax.config.update("jax_compilation_cache_dir", before)


def test_navix_is_imported_only_when_needed_and_registration_still_happens():
    """jaxrl3m writes NAVIX's codes out (importing NAVIX takes seconds); they must be NAVIX's,
    and `navix.make("JaxRL3M-DoorKey-v0")` must work after `import jaxrl3m.envs` alone."""
    code = ("import sys, jaxrl3m.envs, jaxrl3m.runner.driver\n"
            "from jaxrl3m.runner.runs import load_config, setup\n"
            "setup(*load_config('DoorKey-oracle', {}))\n"
            "assert 'navix' not in sys.modules\n"
            "import navix\n"
            "assert 'JaxRL3M-DoorKey-v0' in navix.registry()\n"
            "from navix.entities import EntityIds as E\n"
            "from navix.rendering.registry import PALETTE as P\n"
            "from jaxrl3m.envs import types as t\n"
            "assert (t.UNSEEN, t.EMPTY, t.WALL, t.DOOR, t.KEY, t.BALL, t.BOX, t.GOAL, t.LAVA, "
            "t.AGENT) == tuple(int(x) for x in (E.UNKNOWN, E.FLOOR, E.WALL, E.DOOR, E.KEY, "
            "E.BALL, E.BOX, E.GOAL, E.LAVA, E.PLAYER))\n"
            "assert (t.RED, t.GREEN, t.BLUE, t.PURPLE, t.YELLOW, t.GREY) == tuple(int(x) for x "
            "in (P.RED, P.GREEN, P.BLUE, P.PURPLE, P.YELLOW, P.GREY))\n"
            "print('ok')\n")
    # NAVIX loaded by one of our own NAVIX-backed tasks first (jaxrl3m.envs.navix_env imports
    # it), then by a user.
    first = ("import sys, jaxrl3m.envs as e\n"
             "assert e.make('DoorKey-8x8').horizon == 640 and 'navix' in sys.modules\n"
             "import navix\n"
             "assert 'JaxRL3M-ColoredDoorKey-v0' in navix.registry()\n")
    for script in (code, first + "print('ok')\n"):
        p = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0 and "ok" in p.stdout, p.stderr[-2000:]
