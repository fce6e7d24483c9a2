"""Transfer learning: past policies in the teacher, source policies, the five-approach study."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import train as train_cli
from jaxrl3m.algos.ppo import PPOConfig, make_ppo
from jaxrl3m.core import metrics as curves
from jaxrl3m.runner import driver, runs
from jaxrl3m.core.config import ConfigError
from jaxrl3m.experiments import transfer
from jaxrl3m.teacher.options import (oracle_table, past_policy_option, task_options,
                                     with_past_policies)
from jaxrl3m.teacher.skills import skill_outputs
from jaxrl3m.teacher.teacher import Teacher

TINY = dict(num_envs=8, num_steps=8, num_minibatches=2, update_epochs=2, hidden=(16,), window=5)
TINY_KEYS = [f"{k}={list(v) if isinstance(v, tuple) else v}" for k, v in TINY.items()] + [
    "eval_every=0"]


def _keys(values: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny DoorKey source run with 2 seeds (the network keys of TINY)."""
    d = tmp_path_factory.mktemp("source")
    assert train_cli.main(["configs/transfer/source.yaml", f"runs_dir={d}", "total_steps=128",
                           "eval_episodes=0", *TINY_KEYS, "--seeds", "2", "--no-progress"]) == 0
    return d / "source-DoorKey"


def _batch_obs(task: str, n: int = 32, steps: int = 6):
    """Observations from `n` environments after a few random steps."""
    env = make_ppo(PPOConfig(task=task, **TINY)).env
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), n))
    step = jax.jit(jax.vmap(env.step))
    for i in range(steps):
        ts = step(ts.state, jax.random.randint(jax.random.key(100 + i), (n,), 0, env.num_actions))
    return ts.obs


# ---------------------------------------------------------------------------------------------
# Tables and the teacher with a past policy
# ---------------------------------------------------------------------------------------------
def test_with_past_policies_splits_every_row():
    base = oracle_table("LavaDoorKey")
    t = with_past_policies(base, 2, 0.4)
    assert t.shape == (60, base.shape[1] + 2) and t.dtype == np.float32
    np.testing.assert_allclose(t.sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(t[:, -2:], 0.2, atol=1e-7)
    np.testing.assert_allclose(t[:, :-2], 0.6 * base, atol=1e-7)
    kick = with_past_policies(base, 1, 1.0)
    assert np.all(kick[:, :-1] == 0) and np.all(kick[:, -1] == 1)
    for bad in (dict(num_past=0, weight=0.5), dict(num_past=1, weight=1.5)):
        with pytest.raises(ValueError):
            with_past_policies(base, **bad)
    with pytest.raises(ValueError, match="shape"):
        with_past_policies(base[0], 1, 0.5)
    # The number of rows is the task's: a table cut short is refused where the task is known.
    with pytest.raises(ConfigError, match=r"needs \(60, 6\)"):
        Teacher.create("LavaDoorKey", base[:10])


def test_past_policy_is_a_teacher_option_and_its_mixture_includes_it():
    task = "ColoredDoorKey"
    trainer = make_ppo(PPOConfig(task=task, kl_coef=1.0, **TINY), past_policies=("DoorKey",))
    plain = make_ppo(PPOConfig(task=task, kl_coef=1.0, **TINY))
    kick = trainer.teacher(with_past_policies(oracle_table(task), 1, 1.0), (None,))
    assert kick.columns == task_options(task) + (past_policy_option("DoorKey"),)
    assert kick.columns[-1] == "follow the policy that solved DoorKey"
    obs = _batch_obs(task)
    probs = jax.jit(lambda t, obs: t.probs(obs))
    teacher = lambda table, obs, n, past: probs(trainer.teacher(table, past), obs)
    n = obs.agent_dir.shape[0]
    init_params = jax.jit(trainer.init_params)
    params, other = init_params(jax.random.key(3)), init_params(jax.random.key(4))
    past = jax.nn.softmax(jax.jit(trainer.apply)(params, obs)[0])
    skills_only = probs(plain.teacher(oracle_table(task)), obs)

    # Kickstarting: all the prior on the past policy -> the teacher is that policy.
    kick = jnp.asarray(with_past_policies(oracle_table(task), 1, 1.0))
    np.testing.assert_allclose(teacher(kick, obs, n, (params,)), past, atol=1e-6)
    # Weight 0: exactly the skills' teacher.
    zero = jnp.asarray(with_past_policies(oracle_table(task), 1, 0.0))
    np.testing.assert_allclose(teacher(zero, obs, n, (params,)), skills_only, atol=1e-6)
    # Weight 1/2: on the segment between the two, at 0.5 / (0.5 + 0.5 m), m = the prior mass of
    # the skills that apply (the mixture renormalises over applicable options).
    half = jnp.asarray(with_past_policies(oracle_table(task), 1, 0.5))
    got = teacher(half, obs, n, (params,))
    from jaxrl3m.envs.abstraction import abstract_state
    rows = oracle_table(task)[np.asarray(jax.jit(jax.vmap(abstract_state))(obs))]
    applicable = np.asarray(jax.jit(jax.vmap(lambda o: skill_outputs(o, task_options(task))))(
        obs).applicable)
    m = (rows * applicable).sum(1)
    c = (0.5 / (0.5 + 0.5 * m))[:, None]
    np.testing.assert_allclose(got, c * past + (1 - c) * skills_only, atol=1e-5)
    # The source policy's parameters matter.
    assert not np.allclose(got, teacher(half, obs, n, (other,)), atol=1e-4)
    with pytest.raises(ConfigError, match="past policies"):
        trainer.teacher(half, ())
    with pytest.raises(ConfigError, match="shape"):
        trainer.teacher(oracle_table(task), (params,))
    with pytest.raises(ConfigError, match="past policies"):  # a teacher without the column
        jax.eval_shape(lambda: trainer.update(trainer.init(jax.random.key(0)),  # traced only
                                              plain.teacher(oracle_table(task)), 1))


# ---------------------------------------------------------------------------------------------
# Source policies in runs
# ---------------------------------------------------------------------------------------------
def _transfer_config(tmp_path, src, **values):
    base = {"task": "LavaDoorKey", "runs_dir": str(tmp_path), "source": str(src),
            "total_steps": 64, "eval_episodes": 0, "eval_every": 0, "log_every": 1,
            **_keys(TINY)}
    return runs.load_config(None, {**base, **values})


def test_source_parameters_are_really_loaded(tmp_path, source_run):
    """`init=source` starts from the source run's `source_seed` (here 1, not 0). That every seed
    of a whole run starts there is checked by the kickstarting test below (a student that is
    its own teacher at the first update, in both seeds), which trains; this one only sets up."""
    _, _, _, src, _ = runs.restore_run(source_run)
    seed1 = jax.tree.map(lambda x: x[1], src.params)
    ppo, run = _transfer_config(tmp_path, source_run, init="source", source_seed=1)
    setup = runs.setup(ppo, run)
    chex_equal = lambda a, b: all(np.array_equal(x, y) for x, y in
                                  zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert chex_equal(setup.start, seed1)
    assert not chex_equal(setup.start, jax.tree.map(lambda x: x[0], src.params))
    assert setup.teacher is None and not setup.algo.guided


def test_kickstarting_from_the_source_starts_at_zero_kl(tmp_path, source_run):
    """teacher=source with init=source: the student is its own teacher at first (KL 0), in every
    seed of the run (so every seed starts from the source's seed 1, which is also the teacher);
    the LLM teacher with the source as one more option is not (KL > 0). (Both compile to one
    program: same shapes, different tables.)"""
    kl = {}
    for name, kw in {"kick": dict(teacher="source"),
                     "llm+past": dict(teacher="prior+source", prior="oracle")}.items():
        ppo, run = _transfer_config(tmp_path, source_run, init="source", lr=1e-12, kl_coef=1.0,
                                    name=name, seeds=2, source_seed=1, **kw)
        d, run = runs.create_run(ppo, run)
        summary = driver.train_run(ppo, run, d, progress=False)
        rows = curves.read_csv(d / "metrics.csv")
        assert np.isfinite([r["loss"] for r in rows]).all()
        first = {r["seed"]: r["kl_teacher"] for r in rows if r["update"] == 1}
        assert sorted(first) == [0, 1]
        kl[name] = first
        assert summary["source_task"] == "DoorKey" and summary["init"] == "source"
    assert all(abs(v) < 1e-5 for v in kl["kick"].values())
    assert all(v > 1e-3 for v in kl["llm+past"].values())


def test_transfer_config_errors(tmp_path, source_run):
    with pytest.raises(ConfigError, match="window"):
        runs.setup(*_transfer_config(tmp_path, source_run, init="source", window=7))
    with pytest.raises(ConfigError, match="source_seed"):
        runs.setup(*_transfer_config(tmp_path, source_run, init="source",
                                                source_seed=2))
    with pytest.raises(ConfigError, match="not a run folder"):
        runs.setup(*_transfer_config(tmp_path, tmp_path / "nowhere", init="source"))
    for values, match in [(dict(init="source", source=""), "needs a source"),
                          (dict(teacher="prior+source"), "needs a prior"),
                          (dict(teacher="llm"), "teacher"),
                          (dict(init="pretrained"), "init"),
                          (dict(learn=False), "no teacher|there is none"),
                          (dict(source_weight=2.0), "source_weight")]:
        with pytest.raises(ConfigError, match=match):
            _transfer_config(tmp_path, source_run, **values)


def test_a_table_with_a_past_policy_column_is_used_as_the_llm_wrote_it(tmp_path, source_run):
    from jaxrl3m.teacher.table import load_table, make_table, save_table
    probs = with_past_policies(oracle_table("LavaDoorKey"), 1, 0.3)
    path = save_table(make_table("LavaDoorKey", probs, backend="jax", past_policies=("DoorKey",)),
                      tmp_path / "lava+doorkey.json")
    assert load_table(path, "LavaDoorKey").options[-1] == past_policy_option("DoorKey")
    setup = runs.setup(*_transfer_config(tmp_path, source_run, prior=str(path),
                                                    teacher="prior+source", source_weight=0.9))
    np.testing.assert_array_equal(setup.teacher.table, probs)  # not re-weighted by source_weight
    assert setup.info["source_weight"] == "from the table" and len(setup.teacher.past) == 1
    with pytest.raises(ConfigError, match="teacher=prior\\+source"):
        runs.setup(*_transfer_config(tmp_path, source_run, prior=str(path)))
    other = save_table(make_table("LavaDoorKey", probs, backend="jax",
                                  past_policies=("ColoredDoorKey",)), tmp_path / "other.json")
    with pytest.raises(ConfigError, match="source is DoorKey"):
        runs.setup(*_transfer_config(tmp_path, source_run, prior=str(other),
                                                teacher="prior+source"))


def test_teacher_alone_is_evaluated_not_trained(tmp_path):
    ppo, run = runs.load_config("transfer/2-teacher",
                                {"task": "ColoredDoorKey", "runs_dir": str(tmp_path),
                                 "eval_episodes": 64, "seeds": 2})
    d, run = runs.create_run(ppo, run)
    summary = driver.train_run(ppo, run, d, progress=False)
    assert not (d / "checkpoints").exists() and summary["learn"] is False
    assert len(summary["eval"]["success"]) == 2
    assert summary["final_success_mean"] > 0.9  # the oracle's skills solve the task alone


# ---------------------------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------------------------
def test_area_under_the_success_curve_hand_computed():
    steps = np.array([10.0, 20.0])
    s = np.array([[0.5, 1.0], [np.nan, 1.0]])
    # Curves start at (0, 0). Seed 0: trapezoids (0+0.5)/2*10 + (0.5+1)/2*10 = 10 over 20
    # steps; seed 1 (NaN counts 0): (0+0)/2*10 + (0+1)/2*10 = 5 over 20.
    np.testing.assert_allclose(transfer.area_under(steps, s), [0.5, 0.25])


def test_study_runs_all_approaches_and_reuses_them(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["--target", "ColoredDoorKey", "--prior",
            "llm_cache/ColoredDoorKey-vicuna33b-llm4teach.json", "--seeds", "2",
            "--runs-dir", str(tmp_path), "--out", str(out), "--no-progress",
            "--set", "total_steps=256", "eval_episodes=16", "log_every=4", *TINY_KEYS,
            "--source-set", "total_steps=128", "eval_episodes=0", "seeds=2", *TINY_KEYS]
    # (the source_run fixture's settings: its compiled programs serve)
    assert transfer.main(args) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "transfer" / "source-DoorKey" / "summary.json").is_file()
    for f in ("results.csv", "results.md", "transfer.png", "summary.json"):
        assert (out / f).is_file(), f
    rows = curves.read_csv(out / "results.csv")
    assert {str(r["approach"]) for r in rows} == {"1", "2", "3", "4", "5"}
    for a in ("1", "3", "4", "5"):
        mine = [r for r in rows if str(r["approach"]) == a]
        assert {r["seed"] for r in mine} == {0, 1} and len(mine) == 2 * 4  # 4 updates
    summary = json.loads((out / "summary.json").read_text())
    assert [r["approach"] for r in summary["approaches"]] == ["1", "2", "3", "4", "5"]
    for r in summary["approaches"]:
        assert len(r["auc"]) == 2 and all(0 <= x <= 1 for x in r["auc"])
        assert all(np.isfinite(r["final_success"])) and all(np.isfinite(r["final_return"]))
        assert r["wall_s"] > 0
    assert summary["agreement"]["reachable"] > 0 and summary["agreement"]["disagree"]
    md = (out / "results.md").read_text()
    for label in ("1 no transfer", "2 LLM teacher alone", "3 transfer without LLM",
                  "4 transfer with LLM", "5 LLM + past policies", "n/a (no learning)",
                  "reachable abstract states"):
        assert label in md and label in printed
    # Approaches 4 and 5 really start from the source and use the prior table.
    for a, teacher in (("4", "prior"), ("5", "prior+source")):
        cfg = json.loads(json.dumps(__import__("yaml").safe_load(
            (out / transfer.APPROACHES[a][0] / "config.yaml").read_text())))
        assert cfg["init"] == "source" and cfg["teacher"] == teacher
        assert cfg["prior"].endswith("ColoredDoorKey-vicuna33b-llm4teach.json")
    assert __import__("yaml").safe_load(
        (out / "3-finetune" / "config.yaml").read_text())["prior"] == "none"

    # Run again: every approach (and the source) is reused, nothing retrained.
    mtimes = {p: p.stat().st_mtime for p in out.glob("*/metrics.csv")}
    assert transfer.main(args) == 0
    assert "reusing" in capsys.readouterr().err
    assert {p: p.stat().st_mtime for p in out.glob("*/metrics.csv")} == mtimes
    # Other settings into the same folder are refused, not mixed.
    changed = [a if a != "total_steps=256" else "total_steps=512" for a in args]
    assert transfer.main(changed) == 2
    assert "other settings" in capsys.readouterr().err


def test_study_cli_errors(tmp_path, capsys):
    base = ["--runs-dir", str(tmp_path), "--no-progress"]
    assert transfer.main(["--approaches", "1,7", *base]) == 2
    assert "unknown approach '7'" in capsys.readouterr().err
    assert transfer.main(["--set", "task=DoorKey", *base]) == 2
    assert "sets 'task' itself" in capsys.readouterr().err
    assert transfer.main(["--target", "DoorKey-8x8", *base]) == 2
    assert "valid targets" in capsys.readouterr().err
    assert transfer.main(["--set", "lr=-1", *base]) == 2
    assert "'lr'" in capsys.readouterr().err
    assert not (tmp_path / "transfer").exists()  # nothing trained before the checks
