"""Guided PPO: losses against hand-computed values, probe environments, the train command."""

from __future__ import annotations

import dataclasses
import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct
from helpers import TINY_RUN

from jaxrl3m import train as train_cli
from jaxrl3m.algos import losses
from jaxrl3m.algos.ppo import METRICS, PPOConfig, make_ppo
from jaxrl3m.core import metrics as curves
from jaxrl3m.runner import driver, runs
from jaxrl3m.core.config import ConfigError
from jaxrl3m.teacher.teacher import Teacher
from jaxrl3m.envs.types import (EMPTY_CELL, KEY, LAVA, NOTHING, Observation, TimeStep,
                                WALL_CELL)
from jaxrl3m.teacher.options import oracle_table

TINY = dict(num_envs=8, num_steps=8, num_minibatches=2, update_epochs=2, hidden=(16,),
            window=5)


# ---------------------------------------------------------------------------------------------
# Losses, hand-computed, with and without jit (chex variants)
# ---------------------------------------------------------------------------------------------
class LossesTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    def test_gae_hand_computed(self):
        # T = 4, one environment: step 1 is truncated (bootstrap v_final = 5), step 3 terminates.
        r = jnp.array([1.0, 0.0, 2.0, 1.0])
        v = jnp.array([0.5, 1.0, 2.0, 3.0])
        v_tp1 = jnp.array([1.0, 5.0, 3.0, 9.0])  # v(obs_1), v(final_obs_1), v(obs_3), ignored
        term = jnp.array([False, False, False, True])
        done = jnp.array([False, True, False, True])
        g, lam = 0.9, 0.8
        adv, ret = self.variant(losses.gae)(r, v, v_tp1, term, done, g, lam)
        d3 = 1.0 - 3.0  # terminal: no bootstrap
        d2 = 2.0 + g * 3.0 - 2.0
        d1 = 0.0 + g * 5.0 - 1.0  # truncated: bootstraps the final observation's value
        d0 = 1.0 + g * 1.0 - 0.5
        a3, a2 = d3, d2 + g * lam * d3
        a1 = d1  # episode boundary: nothing flows back across it
        a0 = d0 + g * lam * a1
        np.testing.assert_allclose(adv, [a0, a1, a2, a3], rtol=1e-6)
        np.testing.assert_allclose(ret, np.array([a0, a1, a2, a3]) + np.array(v), rtol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_clipped_policy_loss_hand_computed(self):
        logp = jnp.log(jnp.array([0.5, 0.9, 0.2]))
        old = jnp.log(jnp.array([0.25, 1.0, 0.4]))  # ratios 2.0, 0.9, 0.5
        adv = jnp.array([1.0, -2.0, -1.0])
        # min(rA, clip(r)A): 2 vs 1.2 -> 1.2; -1.8 both; -0.5 vs 0.8*-1 = -0.8 -> -0.8
        out = self.variant(losses.clipped_policy_loss)(logp, old, adv, 0.2)
        np.testing.assert_allclose(out, -np.mean([1.2, -1.8, -0.8]), rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_clipped_value_loss_hand_computed(self):
        v, old, ret = jnp.array([1.0, 0.0]), jnp.array([0.5, 0.5]), jnp.array([2.0, 0.0])
        # v=1: (1-2)^2 = 1 vs clipped 0.7: 1.69 -> 1.69; v=0: 0 vs clipped 0.3: 0.09 -> 0.09
        out = self.variant(losses.clipped_value_loss)(v, old, ret, 0.2)
        np.testing.assert_allclose(out, 0.5 * np.mean([1.69, 0.09]), rtol=1e-5)


def test_gae_batched_matches_per_env():
    k = jax.random.split(jax.random.key(0), 4)
    r, v, vn = (jax.random.normal(k[i], (6, 3)) for i in range(3))
    done = jax.random.bernoulli(k[3], 0.3, (6, 3))
    term = done & jnp.array([True, False, True])
    adv, _ = jax.jit(losses.gae)(r, v, vn, term, done, 0.99, 0.95)
    for i in range(3):
        a_i, _ = losses.gae(r[:, i], v[:, i], vn[:, i], term[:, i], done[:, i], 0.99, 0.95)
        np.testing.assert_allclose(adv[:, i], a_i, rtol=1e-5, atol=1e-6)


def test_teacher_kl_matches_direct_computation():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(7), size=5).astype(np.float32)
    p[0] = [0, 0, 1, 0, 0, 0, 0]  # zeros in the teacher contribute nothing (and no NaN)
    p[1, :3] = 0
    p[1] /= p[1].sum()
    logits = rng.normal(size=(5, 7)).astype(np.float32)
    q = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = np.where(p > 0, p * np.log(p / q), 0).sum(-1)
    out = jax.jit(losses.teacher_kl)(jnp.asarray(p), jnp.asarray(logits))
    np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda l: losses.teacher_kl(jnp.asarray(p), l).sum())(jnp.asarray(logits))
    np.testing.assert_allclose(grad, q - p, atol=1e-5)  # d KL / d logits = q - p
    assert np.all(np.isfinite(grad))


def test_kl_schedules():
    w = lambda s, t, *a: round(float(losses.kl_weight(s, t, *a)), 5)
    # LLM4Teach: 10, -0.005 per update, floor 0.1, off from update 3000.
    args = (10.0, 0.005, 0.1, 3000)
    assert w("linear", 0, *args) == pytest.approx(10.0)
    assert w("linear", 100, *args) == pytest.approx(9.5)
    assert w("linear", 1980, *args) == pytest.approx(0.1)
    assert w("linear", 2500, *args) == pytest.approx(0.1)
    assert w("linear", 2999, *args) == pytest.approx(0.1)
    assert w("linear", 3000, *args) == 0.0
    assert w("exponential", 10, 1.0, 0.9, 0.0, -1) == pytest.approx(0.9 ** 10, rel=1e-5)
    assert w("exponential", 1000, 1.0, 0.9, 0.05, -1) == pytest.approx(0.05)
    assert w("constant", 10_000, 2.0, 0.0, 0.0, -1) == 2.0
    assert w("linear", 5, 0.0, 0.0, 0.1, -1) == 0.0  # no guidance means none, floor or not
    with pytest.raises(ValueError, match="kl_schedule"):
        losses.kl_weight("cosine", 0, 1.0, 0.0, 0.0, -1)


# ---------------------------------------------------------------------------------------------
# The trainer
# ---------------------------------------------------------------------------------------------
def _run(config: PPOConfig, guided: bool, table, n: int, env=None, hp=None):
    """`n` updates from one seed; `hp`: the hyperparameters passed traced (a config with
    `config`'s static keys), so that runs differing only in a coefficient share one program."""
    algo = make_ppo(config, guided, env)
    state = jax.jit(algo.init)(jax.random.key(3))
    return jax.jit(algo.update, static_argnums=2)(state, Teacher.create(config.task, table), n,
                                                  hp)


def test_kl_coef_zero_is_exactly_plain_ppo():
    config = PPOConfig(task="DoorKey", total_steps=8 * 8 * 3, kl_coef=0.0, **TINY)
    table = jnp.asarray(oracle_table("DoorKey"))
    guided, m_guided = _run(config, True, table, 3, hp=config)  # kl_coef a traced zero
    plain, m_plain = _run(config, False, table, 3)
    chex.assert_trees_all_equal(guided.params, plain.params)
    np.testing.assert_array_equal(m_guided["loss"], m_plain["loss"])
    # (GFlan-Prior's reverse KL with alpha = 0 is plain PPO too: at the loss, in the next test.)
    # ... and the guidance really acts when kl_coef > 0.
    pulled, m_pulled = _run(config, True, table, 3, hp=config.replace(kl_coef=1.0))
    assert float(m_pulled["kl_teacher"][0]) > 0 and float(m_pulled["lambda"][0]) == 1.0
    assert not np.allclose(jax.tree.leaves(pulled.params)[0], jax.tree.leaves(plain.params)[0])


def test_the_kl_term_adds_exactly_lambda_times_its_gradient():
    """ppo_loss's gradient with the teacher minus without it is exactly lambda times the
    gradient of the KL averaged over the samples that have a teacher target (a halved or
    doubled coefficient, or a mean over all samples, fails)."""
    from jaxrl3m.algos.ppo import ppo_loss
    algo = make_ppo(PPOConfig(task="DoorKey", **TINY))
    net, c = algo.network, algo.config
    obs = jax.vmap(algo.env.reset)(jax.random.split(jax.random.key(0), 12)).obs
    cells, carried = net.encode(obs)
    rng = np.random.default_rng(1)
    pi_l = rng.dirichlet(np.ones(7), size=12).astype(np.float32)
    mb = {"cells": cells, "carried": carried, "action": jnp.asarray(rng.integers(0, 7, 12)),
          "logp": jnp.asarray(rng.normal(size=12) - 2, jnp.float32),
          "value": jnp.asarray(rng.normal(size=12), jnp.float32),
          "adv": jnp.asarray(rng.normal(size=12), jnp.float32),
          "returns": jnp.asarray(rng.normal(size=12), jnp.float32), "pi_l": jnp.asarray(pi_l),
          "has_teacher": jnp.arange(12) < 5}
    params = algo.init_params(jax.random.key(2))
    grad = lambda lam, guided: jax.grad(lambda p: ppo_loss(net, c, guided, jnp.float32(lam), p,
                                                           mb)[0])(params)
    with_kl, without = grad(0.7, True), grad(0.7, False)

    def kl_mean(p):
        logits, _ = net.apply_codes(p, cells, carried)
        return losses.teacher_kl(mb["pi_l"][:5], logits[:5]).mean()

    want = jax.grad(kl_mean)(params)
    for a, b, w in zip(jax.tree.leaves(with_kl), jax.tree.leaves(without),
                       jax.tree.leaves(want)):
        np.testing.assert_allclose(a - b, 0.7 * w, rtol=1e-4, atol=1e-6)
    # GFlan-Prior's reverse KL with alpha = 0 is exactly plain PPO's loss and gradient, with a
    # prior that gives some actions no mass (no NaN may leak through 0 * KL).
    reverse = dataclasses.replace(c, kl_direction="reverse")
    mb["pi_l"] = mb["pi_l"].at[:, :2].set(0.0)

    def value_grad(cfg, guided):
        return jax.value_and_grad(
            lambda p: ppo_loss(net, cfg, guided, jnp.float32(0.0), p, mb)[0])(params)
    chex.assert_trees_all_equal(value_grad(reverse, True), value_grad(c, False))
    assert max(float(jnp.abs(w).max()) for w in jax.tree.leaves(want)) > 1e-3


def test_guidance_pulls_the_student_to_the_teacher():
    # Pure imitation (PPO terms off): the KL to an oracle teacher must fall clearly.
    config = PPOConfig(task="DoorKey", total_steps=64 * 16 * 30, num_envs=64, num_steps=16,
                       kl_coef=5.0, ent_coef=0.0, vf_coef=0.0, clip_eps=1e-6, window=7,
                       hidden=(32,))
    algo = make_ppo(config)
    train = jax.jit(jax.vmap(algo.train, (0, None)))  # three seeds: the bar holds on average
    _, m = train(jax.random.split(jax.random.key(3), 3), algo.teacher(oracle_table("DoorKey")))
    kl = np.asarray(m["kl_teacher"]).mean(0)
    assert kl[-5:].mean() < 0.75 * kl[:3].mean(), kl


def test_two_seeds_under_vmap_give_finite_metrics_of_the_right_shapes():
    config = PPOConfig(task="ColoredDoorKey", total_steps=8 * 8 * 2, kl_coef=1.0, **TINY)
    trainer = make_ppo(config)
    teacher = Teacher.create("ColoredDoorKey", oracle_table("ColoredDoorKey"))
    runner, metrics = jax.jit(jax.vmap(trainer.train, (0, None)))(
        jax.random.split(jax.random.key(0), 2), teacher)
    assert set(metrics) == set(METRICS)
    for k, v in metrics.items():
        assert v.shape == (2, 2), k
    chex.assert_tree_all_finite(runner.params)
    for k in ("loss", "kl_teacher", "entropy", "value_loss", "lambda", "env_steps"):
        assert np.all(np.isfinite(metrics[k])), k
    np.testing.assert_array_equal(metrics["env_steps"][0], [64, 128])
    assert not np.allclose(jax.tree.leaves(runner.params)[0][0],
                           jax.tree.leaves(runner.params)[0][1])  # the seeds differ


def test_prior_table_of_the_wrong_shape_fails_at_once():
    config = PPOConfig(task="ColoredDoorKey", total_steps=64, kl_coef=1.0, **TINY)
    with pytest.raises(ConfigError, match=r"shape \(60, 6\).*needs \(60, 8\)"):
        _run(config, True, jnp.asarray(oracle_table("DoorKey")), 1)


# ---------------------------------------------------------------------------------------------
# Probe environments (known optimal values)
# ---------------------------------------------------------------------------------------------
class ProbeState(struct.PyTreeNode):
    key: jax.Array
    t: jax.Array
    context: jax.Array  # i32[]: 0 or 1


@dataclasses.dataclass(frozen=True)
class ProbeEnv:
    """`bandit`: one step; the cell ahead shows a key or lava; action 0 (left) is right under a
    key, action 1 (right) under lava: reward 1, else 0. Optimal value 1.
    `truncation`: reward 1 every step, never terminates, truncated after `max_steps`. With
    bootstrapping at truncation the value is 1 / (1 - gamma) in every state; treating the cut
    as a termination would give less (the time left is not observable)."""

    kind: str = "bandit"
    max_steps: int = 5
    num_actions: int = 7

    def _obs(self, context):
        grid = jnp.broadcast_to(jnp.asarray(EMPTY_CELL), (5, 5, 3))
        grid = grid.at[0].set(jnp.asarray(WALL_CELL))
        marker = jnp.where(context == 0, jnp.array([KEY, 0, 0]), jnp.array([LAVA, 0, 0]))
        grid = grid.at[1, 2].set(marker.astype(jnp.uint8))
        return Observation(grid=grid.astype(jnp.uint8), agent_pos=jnp.array([2, 2], jnp.int32),
                           agent_dir=jnp.int32(3), carrying=jnp.asarray(NOTHING))

    def reset(self, key):
        k, k_next = jax.random.split(key)
        ctx = jax.random.bernoulli(k).astype(jnp.int32)
        obs = self._obs(ctx)
        z = jnp.zeros((), bool)
        return TimeStep(state=ProbeState(key=k_next, t=jnp.int32(0), context=ctx), obs=obs,
                        reward=jnp.float32(0), terminated=z, truncated=z, final_obs=obs)

    def step(self, state, action):
        t = state.t + 1
        if self.kind == "bandit":
            reward = (action == state.context).astype(jnp.float32)
            terminated, truncated = jnp.ones((), bool), jnp.zeros((), bool)
        else:
            reward = jnp.float32(1)
            terminated, truncated = jnp.zeros((), bool), t >= self.max_steps
        final_obs = self._obs(state.context)
        fresh = self.reset(state.key)
        done = terminated | truncated
        new = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh.state,
                           state.replace(t=t))
        return TimeStep(state=new, obs=self._obs(new.context), reward=reward,
                        terminated=terminated, truncated=truncated, final_obs=final_obs)


def test_probe_bandit_is_learned():
    env = ProbeEnv("bandit")
    config = PPOConfig(task="DoorKey", num_envs=32, num_steps=8, num_minibatches=2,
                       total_steps=32 * 8 * 60, window=5, hidden=(16,))
    trainer = make_ppo(config, guided=False, env=env)
    runner, m = jax.jit(trainer.train)(jax.random.key(0))
    obs = jax.tree.map(lambda *x: jnp.stack(x), env._obs(0), env._obs(1))
    logits, value = trainer.apply(runner.params, obs)
    probs = jax.nn.softmax(logits)
    assert probs[0, 0] > 0.9 and probs[1, 1] > 0.9, probs
    np.testing.assert_allclose(value, 1.0, atol=0.1)
    assert float(m["success"][-1]) > 0.9  # rewarded terminations count as successes


def test_probe_truncation_is_bootstrapped():
    env = ProbeEnv("truncation", max_steps=5)
    config = PPOConfig(task="DoorKey", num_envs=32, num_steps=8, num_minibatches=2,
                       total_steps=32 * 8 * 240, window=5, hidden=(16,), gamma=0.5,
                       anneal_lr=False, lr=3e-3)
    trainer = make_ppo(config, guided=False, env=env)
    runner, _ = jax.jit(trainer.train)(jax.random.key(0))
    obs = jax.tree.map(lambda *x: jnp.stack(x), env._obs(0), env._obs(1))
    _, value = trainer.apply(runner.params, obs)
    # 1 / (1 - 0.5) = 2; treating truncation as termination would average about 1.6. (240
    # updates: at 80, JAX 0.12.1 on an AMD EPYC read 1.85, still converging.)
    np.testing.assert_allclose(value, 2.0, atol=0.1)


# ---------------------------------------------------------------------------------------------
# Configs and the command line
# ---------------------------------------------------------------------------------------------
def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'kl_coeff'.*Did you mean 'kl_coef'"):
        runs.load_config(None, {"kl_coeff": 1.0})
    with pytest.raises(ConfigError, match=r"'num_envs' must be int, got 'many'"):
        runs.load_config(None, {"num_envs": "many"})
    with pytest.raises(ConfigError, match=r"'hidden' must be a list of int"):
        runs.load_config(None, {"hidden": 64})
    with pytest.raises(ConfigError, match=r"'num_minibatches'.*does not divide"):
        runs.load_config(None, {"num_minibatches": 7})
    with pytest.raises(ConfigError, match=r"'kl_coef' is 1.0 but prior is 'none'"):
        runs.load_config(None, {"kl_coef": 1.0})
    with pytest.raises(ConfigError, match=r"'network'.*KeyCorridorS3R1's allocentric view is "
                                          r"3 x 7: use view=egocentric"):
        runs.load_config(None, {"task": "KeyCorridorS3R1", "view": "allocentric",
                                "network": "cnn"})
    runs.load_config(None, {"task": "KeyCorridorS3R3", "view": "allocentric", "network": "cnn"})
    ppo, _ = runs.load_config(None, {"lr": "1e-3"})  # YAML 1.1 reads 1e-3 as a string
    assert ppo.lr == 1e-3
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: ppo.yaml\ntask: DoorKey\n")
    with pytest.raises(ConfigError, match="does not exist"):
        runs.load_config(str(bad), {})


def test_prior_of_another_task_is_refused(tmp_path, capsys):
    code = train_cli.main(["task=ColoredDoorKey", "prior=llm_cache/DoorKey-oracle.json",
                           "kl_coef=1.0", f"runs_dir={tmp_path}", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "config key 'prior'" in err and "DoorKey" in err and "ColoredDoorKey" in err
    assert not any(tmp_path.iterdir())  # checked before any run folder was created
    code = train_cli.main(["DoorKey-oracle", "init=source", "source=nowhere",
                           f"runs_dir={tmp_path}", "--no-progress"])
    assert code == 2 and "not a run folder" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def _tiny_cli_args(tmp_path, name):
    return [*TINY_RUN, f"name={name}", f"runs_dir={tmp_path}"]


def test_train_writes_a_run_and_resume_equals_uninterrupted(tmp_path, capsys):
    assert train_cli.main(_tiny_cli_args(tmp_path, "full")) == 0
    full = tmp_path / "full"
    for f in ("config.yaml", "metrics.csv", "learning_curve.png", "eval.json", "summary.json"):
        assert (full / f).is_file(), f
    rows = curves.read_csv(full / "metrics.csv")
    assert len(rows) == 2 * 10 and {r["seed"] for r in rows} == {0, 1}
    assert set(driver.columns(make_ppo(PPOConfig(task="DoorKey")))) == set(rows[0])
    assert "final success" in capsys.readouterr().out

    # The same run, stopped after 5 of 10 updates (one chunk), then resumed.
    ppo, run = runs.load_config(str(full / "config.yaml"), {"name": "stopped"})
    stopped, run = runs.create_run(ppo, run)
    assert driver.train_run(ppo, run, stopped, progress=False, stop_after=5) is None
    assert max(r["update"] for r in curves.read_csv(stopped / "metrics.csv")) == 5
    # A kill while a chunk was being appended leaves a partial line; rows after the last
    # checkpoint (here: a fake update 6) must not survive the resume either.
    before = (stopped / "metrics.csv").read_text()
    with open(stopped / "metrics.csv", "a") as f:
        seed, _, rest = before.splitlines()[-1].split(",", 2)
        f.write(f"{seed},6,{rest}\n0,7,1.5,")
    assert [r["update"] for r in curves.read_csv(stopped / "metrics.csv")][-1] == 6
    assert train_cli.main(["--resume", str(stopped), "--no-progress"]) == 0
    after = (stopped / "metrics.csv").read_text()
    assert after.startswith(before)  # the first chunk's rows were kept as written

    a, b = curves.read_csv(full / "metrics.csv"), curves.read_csv(stopped / "metrics.csv")
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        for k in ("loss", "kl_teacher", "entropy", "return", "success"):
            assert ra[k] == rb[k] or (math.isnan(ra[k]) and math.isnan(rb[k])), (k, ra, rb)
    from jaxrl3m.evaluate import evaluate_run
    ea, eb = evaluate_run(full, 16), evaluate_run(stopped, 16)
    assert ea["success"] == eb["success"] and ea["return"] == eb["return"]


def test_evaluate_command(tmp_path, capsys):
    from jaxrl3m import evaluate
    assert evaluate.main([str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err
    # The resume test's settings: its compiled programs are reused, only evaluation is new.
    assert train_cli.main(_tiny_cli_args(tmp_path, "ev")) == 0
    capsys.readouterr()
    # The run's own final evaluation (16 sampled held-out episodes per seed): its program.
    assert evaluate.main([str(tmp_path / "ev"), "--episodes", "16"]) == 0
    out = capsys.readouterr().out
    assert "held-out episodes per seed (sampled)" in out and '"update": 10' in out
    assert json.loads(out[:out.rindex("}") + 1])["success"] == json.loads(
        (tmp_path / "ev" / "eval.json").read_text())["success"]
    # The validation split: fresh episodes on the training layouts (for choosing
    # hyperparameters), recorded as such.
    assert evaluate.main([str(tmp_path / "ev"), "--episodes", "8", "--greedy",
                          "--validation"]) == 0
    out = capsys.readouterr().out
    assert "validation (training-layout) episodes per seed (greedy)" in out
    record = json.loads(out[:out.rindex("}") + 1])
    assert record["layouts"] == "train" and record["purpose"] == "validation"
