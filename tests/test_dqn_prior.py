"""LLM priors in value-based and variational RL: DQN, DQN-Prior (sampled and exact), GFlan-Prior's
reverse KL, and the Frozen Lake probe where Q* is known."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import resume_equals_uninterrupted

from jaxrl3m.algos import losses
from jaxrl3m.algos.dqn import DQNConfig, bootstrap, choose, make_dqn
from jaxrl3m.core import metrics as curves
from jaxrl3m.runner import driver, runs
from jaxrl3m.core.config import ConfigError
from jaxrl3m.envs import frozen_lake as fl
from jaxrl3m.teacher.teacher import TablePrior, floored_log, propose


# ---------------------------------------------------------------------------------------------
# Pure pieces against hand-computed values
# ---------------------------------------------------------------------------------------------
def test_q_lambda_targets_hand_computed():
    r = jnp.array([0.0, 1.0, 0.0, 0.5])
    boot = jnp.array([2.0, 9.0, 4.0, 3.0])  # B(s'_t): 9.0 is behind a termination
    term = jnp.array([False, True, False, False])
    done = jnp.array([False, True, True, False])  # t=2 truncated: bootstraps B fully
    g = 0.5
    # lambda = 0: r + gamma (1 - term) B
    np.testing.assert_allclose(losses.q_lambda_targets(r, boot, term, done, g, 0.0),
                               [1.0, 1.0, 2.0, 2.0])
    # lambda = 0.5, backwards: G3 = 0.5 + 0.5 * 3 = 2; G2 = 0 + 0.5 * 4 = 2 (episode ends);
    # G1 = 1 (terminated); G0 = 0 + 0.5 * (0.5 * 2 + 0.5 * G1) = 0.75
    np.testing.assert_allclose(losses.q_lambda_targets(r, boot, term, done, g, 0.5),
                               [0.75, 1.0, 2.0, 2.0])


def test_bootstrap_and_choice_hand_computed():
    q = jnp.array([[1.0, 3.0, 2.0], [0.5, 0.0, 4.0]])
    logp = jnp.log(jnp.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]]))  # supports {2} and {0, 1}
    c = DQNConfig(task="DoorKey", k=5, tau=0.1)
    key = jax.random.key(0)
    np.testing.assert_allclose(bootstrap(key, q, None, c), [3.0, 4.0])  # plain: max over all
    # sampled: max over proposals, which lie in the prior's support (k = 5 of {0, 1}: both,
    # with probability 1 - 2 * 0.5^5)
    np.testing.assert_allclose(bootstrap(key, q, logp, c), [2.0, 0.5])
    exact = DQNConfig(task="DoorKey", inference="exact", tau=0.5, prior_floor=0.1)
    lp = floored_log(jnp.exp(logp), 0.1)
    want = [0.5 * math.log(sum(math.exp(float(a) + float(b) / 0.5) for a, b in zip(lp[i], q[i])))
            for i in range(2)]
    np.testing.assert_allclose(bootstrap(key, q, lp, exact), want, rtol=1e-6)
    # acting: greedy over proposals; epsilon = 1 picks a proposal (still in the support)
    np.testing.assert_array_equal(choose(key, q, logp, c, 0.0, greedy=True), [2, 0])
    keys = jax.random.split(key, 200)
    acts = jax.vmap(lambda k: choose(k, q, logp, c, 1.0, False))(keys)
    assert set(np.unique(acts[:, 0])) == {2} and set(np.unique(acts[:, 1])) == {0, 1}
    # plain DQN: epsilon-greedy over every action
    np.testing.assert_array_equal(choose(key, q, None, c, 0.0, False), [1, 2])
    acts = jax.vmap(lambda k: choose(k, q, None, c, 1.0, False))(keys)
    assert set(np.unique(acts)) == {0, 1, 2}


def test_proposals_follow_the_prior():
    p = jnp.array([[0.1, 0.6, 0.3, 0.0]])
    props = propose(jax.random.key(1), jnp.log(jnp.tile(p, (4000, 1))), 5)
    assert props.shape == (4000, 5) and props.dtype == jnp.int32
    freq = np.bincount(np.asarray(props).ravel(), minlength=4) / props.size
    np.testing.assert_allclose(freq, p[0], atol=0.01)  # 20,000 draws: 3 sigma ~ 0.01


def test_reverse_kl_against_direct_computation_gradients_included():
    logits = jnp.array([[0.3, -1.0, 2.0], [0.0, 0.0, 0.0]])
    p = jnp.array([[0.2, 0.5, 0.3], [0.0, 0.9, 0.1]])
    log_prior = floored_log(p, 0.01)
    pi = np.exp(logits - jax.nn.logsumexp(logits, axis=1, keepdims=True))
    lp = np.log(0.99 * np.asarray(p) + 0.01 / 3)
    direct = (pi * (np.log(pi) - lp)).sum(1)
    np.testing.assert_allclose(losses.prior_kl(logits, log_prior), direct, rtol=1e-5)
    # d/dlogits KL(pi || p) = pi * (log pi - log p - KL)
    grad = jax.grad(lambda x: losses.prior_kl(x, log_prior).sum())(logits)
    np.testing.assert_allclose(grad, pi * (np.log(pi) - lp - direct[:, None]), atol=1e-6)
    # the forward KL's gradient is pi_theta - pi_L
    grad = jax.grad(lambda x: losses.teacher_kl(p, x).sum())(logits)
    np.testing.assert_allclose(grad, pi - np.asarray(p), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The Frozen Lake probe
# ---------------------------------------------------------------------------------------------
GAMMA = 0.9


def test_proposition_1_sampling_tends_to_the_kl_regularised_posterior():
    """DQN-Prior's own acting (`dqn.choose`, epsilon 0): k proposals from p re-weighted by
    softmax(Q*/tau) -> softmax(log p + Q*/tau) as k grows; the exact variant draws from that
    limit itself."""
    q_star = jnp.asarray(fl.value_iteration(GAMMA))
    rng = np.random.default_rng(0)
    p = jnp.asarray(rng.dirichlet(np.ones(4), size=16), jnp.float32)
    tau = 0.05
    target = jax.nn.softmax(jnp.log(p) + q_star / tau)

    def empirical(key, c):
        one = lambda key: jax.nn.one_hot(choose(key, q_star, jnp.log(p), c, 0.0, False), 4)
        return jax.jit(jax.vmap(one))(jax.random.split(key, 4096)).mean(0)

    tv = {k: float(0.5 * jnp.abs(empirical(jax.random.key(k), DQNConfig(k=k, tau=tau))
                                 - target).sum(1).max()) for k in (1, 4, 64)}
    tv_prior = float(0.5 * jnp.abs(p - target).sum(1).max())
    assert abs(tv[1] - tv_prior) < 0.05  # k = 1 is the prior itself
    assert tv[1] > tv[4] > tv[64] and tv[64] < 0.06, (tv, tv_prior)
    exact = DQNConfig(inference="exact", tau=tau, prior_floor=0.01)
    tv_exact = float(0.5 * jnp.abs(empirical(jax.random.key(9), exact) - target).sum(1).max())
    assert tv_exact < 0.04, tv_exact


def test_value_iteration_knows_frozen_lake():
    q = fl.value_iteration(GAMMA)
    assert q[14, 2] == pytest.approx(1.0) and q[0].max() == pytest.approx(GAMMA ** 5)
    # a prior without mass on "right" in cell 14 (the only way into the goal): a learner that can
    # only take the prior's actions values every cell at 0
    allowed = np.ones((16, 4), bool)
    allowed[14, 2] = False
    restricted = np.where(allowed, fl.value_iteration(GAMMA, allowed), -np.inf).max(1)
    assert restricted.max() == 0.0
    # The exact (k -> infinity) variant with the prior floored keeps the action open: its soft
    # fixed point values the start, and its greedy policy argmax(log p + Q / tau) reaches the goal.
    prior = allowed / allowed.sum(1, keepdims=True)
    log_prior = np.log(0.99 * prior + 0.01 / 4)
    q_soft = fl.soft_value_iteration(GAMMA, log_prior, tau=0.1)
    greedy = (log_prior + q_soft / 0.1).argmax(1)
    nxt, _, _ = fl.transitions()
    path = [0]
    for _ in range(6):
        path.append(int(nxt[path[-1], greedy[path[-1]]]))
    assert q_soft[0].max() > 0.0 and path == [0, 4, 8, 9, 13, 14, 15], path


def _prior(zero_right_at_14: bool) -> np.ndarray:
    """0.7 on an optimal action of each cell, 0.1 on the others."""
    best = fl.value_iteration(GAMMA).argmax(1)
    table = np.full((16, 4), 0.1, np.float32)
    table[np.arange(16), best] = 0.7
    if zero_right_at_14:
        table[14] = [1 / 3, 1 / 3, 0.0, 1 / 3]
    return table


def test_dqn_prior_learns_q_star_on_frozen_lake_and_a_zero_mass_prior_blocks_it():
    c = DQNConfig(task="DoorKey", view="allocentric", hidden=(64,), num_envs=32, num_steps=16,
                  total_steps=32 * 16 * 120, gamma=GAMMA, q_lambda=0.0, lr=3e-3,
                  epsilon_fraction=0.5, update_epochs=4)
    dqn = make_dqn(c, guided=True, env=fl.FrozenLake(max_steps=30))
    priors = TablePrior(table=jnp.asarray(np.stack([_prior(False), _prior(True)])),
                        index=fl.cell_index)
    state, m = jax.jit(jax.vmap(dqn.train))(jax.random.split(jax.random.key(0), 2), priors)
    assert np.isfinite(np.asarray(m["loss"])).all()
    env = dqn.env
    cells = np.arange(16)
    obs = jax.vmap(lambda i: env._obs(jnp.stack([i // 4, i % 4])))(jnp.asarray(cells))
    q_star = fl.value_iteration(GAMMA)
    path = [0, 4, 8, 9, 13, 14]  # an optimal path
    good = np.asarray(dqn.act(jax.tree.map(lambda x: x[0], state.params), obs))
    best = q_star.argmax(1)
    np.testing.assert_allclose(good[path, best[path]], q_star[path, best[path]], atol=0.05)
    # the blocked prior: the goal is never reached, every value stays near 0
    blocked = np.asarray(dqn.act(jax.tree.map(lambda x: x[1], state.params), obs))
    assert np.abs(blocked[path]).max() < 0.05
    assert float(np.nansum(m["success"][1])) == 0.0 and np.nanmean(m["success"][0][-20:]) > 0.9


# ---------------------------------------------------------------------------------------------
# Through the driver: 2 seeds, resume, evaluation, bad input
# ---------------------------------------------------------------------------------------------
TINY = {"num_envs": 8, "num_steps": 8, "num_minibatches": 2, "update_epochs": 2,
        "hidden": [16], "window": 5, "log_every": 2, "seeds": 2, "eval_every": 0}
# The transfer test's approach 4 (DQN-Prior from a source): the same compiled programs serve both.
APPROACH_4 = {**TINY, "task": "DoorKey", "total_steps": 256, "eval_episodes": 8,
              "epsilon_start": 0.1}


def test_dqn_prior_run_two_seeds_and_resume_equals_uninterrupted(tmp_path):
    config, run = runs.load_config("dqn-prior", {**APPROACH_4, "runs_dir": str(tmp_path),
                                                 "name": "full"})
    assert config.k == 5 and config.tau == 0.1 and run.prior == "oracle"
    full, run = runs.create_run(config, run)
    summary = driver.train_run(config, run, full, progress=False)
    rows = curves.read_csv(full / "metrics.csv")
    assert len(rows) == 2 * 4 and all(math.isfinite(r["loss"]) for r in rows)
    assert summary["eval"]["greedy"] and len(summary["eval"]["success"]) == 2
    _, again = resume_equals_uninterrupted(full, ("loss", "q_mean", "epsilon"), stop_after=2)
    assert again["eval"]["success"] == summary["eval"]["success"]


def test_the_old_name_of_inference_is_read_with_a_note(capsys, tmp_path):
    """`posterior: exact` of DQN-Prior (before it was `inference`) still loads, as `inference`;
    PPO's `posterior` stays the posterior teacher's switch."""
    config, _ = runs.load_config("dqn-prior", {"posterior": "exact", "prior_floor": 0.01})
    assert config.inference == "exact"
    assert "'posterior: exact' of algo dqn is now 'inference: exact'" in capsys.readouterr().err
    old = tmp_path / "old.yaml"
    old.write_text("algo: cql\nprior: oracle\nposterior: exact\nprior_floor: 0.01\n")
    assert runs.load_config(str(old), {})[0].inference == "exact"
    with pytest.raises(ConfigError, match="'posterior'"):
        runs.load_config("ppo", {"posterior": "exact"})


@pytest.mark.parametrize("key,value,match", [
    ("k", 0, "'k': must be at least 1"),
    ("tau", 0.0, "'tau': must be positive"),
    ("inference", "exact", "'prior_floor': inference=exact"),
    ("prior", "llm_cache/ColoredDoorKey-smollm2.json", "'prior'.*ColoredDoorKey"),
])
def test_dqn_bad_input_names_the_key(key, value, match):
    with pytest.raises(ConfigError, match=match):
        config, run = runs.load_config("dqn-prior", {key: value})
        runs.setup(config, run)


def test_gflan_prior_bad_alpha_and_direction():
    with pytest.raises(ConfigError, match="'kl_coef': must be non-negative"):
        runs.load_config("gflan-prior", {"kl_coef": -0.5})
    with pytest.raises(ConfigError, match="'kl_direction'.*valid: forward, reverse"):
        runs.load_config("gflan-prior", {"kl_direction": "backward"})
    config, run = runs.load_config("gflan-prior", {})
    assert config.kl_direction == "reverse" and config.kl_schedule == "constant"


def test_transfer_study_with_the_dqn_learner(tmp_path, capsys):
    from jaxrl3m.experiments import transfer
    tiny = [f"{k}={v}" for k, v in TINY.items() if k != "seeds"]
    base = ["--target", "DoorKey", "--learner", "dqn", "--seeds", "2", "--runs-dir",
            str(tmp_path), "--no-progress", "--source-set", "total_steps=256", "eval_episodes=8",
            "epsilon_start=0.1", "seeds=2", *tiny]  # approach 4's programs serve the source too
    assert transfer.main([*base, "--approaches", "5"]) == 2
    assert "--learner ppo" in capsys.readouterr().err
    out = tmp_path / "study"
    assert transfer.main([*base, "--approaches", "4", "--out", str(out), "--set",
                          "total_steps=256", "eval_episodes=8", *tiny]) == 0
    assert (tmp_path / "transfer" / "source-DoorKey-dqn" / "summary.json").is_file()
    cfg = __import__("yaml").safe_load((out / "4-llm" / "config.yaml").read_text())
    assert cfg["algo"] == "dqn" and cfg["init"] == "source" and cfg["prior"] == "oracle"
    assert "learner DQN" in (out / "results.md").read_text()
