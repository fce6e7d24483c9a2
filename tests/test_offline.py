"""Offline RL: datasets (collection, file format, checks, nested subsets, held-out layouts) and
CQL, CQL-Prior, BC and BC x prior through the common driver."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import resume_equals_uninterrupted

from jaxrl3m import envs
from jaxrl3m.algos import losses
from jaxrl3m.algos.offline import OfflineConfig, make_offline
from jaxrl3m.offline.arrays import offline_data
from jaxrl3m.collect import collect
from jaxrl3m.core import metrics as curves
from jaxrl3m.runner import driver, runs
from jaxrl3m.core.config import ConfigError
from jaxrl3m.envs import layout as layout_lib
from jaxrl3m.offline import dataset as dsl
from jaxrl3m.runner import policies
from jaxrl3m.teacher.teacher import Teacher, floored_log, propose, resolve_prior

TINY_NET = {"hidden": [16], "window": 5}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """40 mixed DoorKey episodes (random + oracle halves), saved once."""
    ds = collect("DoorKey", "random:1,oracle:1", 40, seed=3, batch=20)
    path = dsl.save(ds, tmp_path_factory.mktemp("data") / "DoorKey-mix.npz")
    return ds, path


# ---------------------------------------------------------------------------------------------
# Layouts, datasets, files
# ---------------------------------------------------------------------------------------------
def test_train_and_heldout_layouts_are_disjoint():
    keys = jax.random.split(jax.random.key(0), 512)
    for split, want in (("train", False), ("heldout", True)):
        env = envs.make("DoorKey", layouts=split)
        lay = jax.jit(jax.vmap(env.sample_layout))(keys)
        assert (np.asarray(jax.jit(jax.vmap(layout_lib.held_out))(lay)) == want).all()
    lay = jax.jit(jax.vmap(envs.make("DoorKey").sample_layout))(keys)  # "all": 1 in 8 held out
    assert 0.07 < float(jax.jit(jax.vmap(layout_lib.held_out))(lay).mean()) < 0.19
    with pytest.raises(ValueError, match="layouts='test' is unknown"):
        envs.make("DoorKey", layouts="test")


def _maps(lay) -> set:
    """Each layout's map (room, door, keys, lava; not the agent) as bytes."""
    parts = [np.asarray(x).reshape(len(np.asarray(lay.room)), -1) for x in (
        lay.room, lay.door_pos, lay.door_colour, lay.key_pos, lay.key_colour, lay.lava_pos)]
    return {row.tobytes() for row in np.concatenate(parts, 1).astype(np.int32)}


@pytest.mark.parametrize("task", ["DoorKey", "LavaDoorKey"])
def test_no_heldout_map_is_ever_drawn_in_training(task):
    """The split is by map: not one of 2,000 held-out maps is among 100,000 training resets
    (the agent's start is not part of the map; with a split that hashed it, most held-out
    layouts shared their map with a training layout)."""
    draw = lambda split, n, seed: jax.jit(jax.vmap(envs.make(task, layouts=split).sample_layout))(
        jax.random.split(jax.random.key(seed), n))
    held = _maps(draw("heldout", 2000, 1))
    train = _maps(draw("train", 100_000, 2))
    assert len(held) > 100 and len(train) > 1000
    assert not held & train
    # the same check through a policy's eyes: training (Algorithm.env) and evaluation
    # (Algorithm.eval_env) environments of an online algorithm
    from jaxrl3m import algos
    a = algos.make("ppo", algos.PPOConfig(task=task))
    assert a.env.layouts == "train" and a.eval_env.layouts == "heldout"


def test_dataset_structure_and_round_trip(dataset):
    ds, path = dataset
    assert ds.num_episodes == 40 and ds.meta["layouts"] == "train"
    assert ds.meta["policies"] == ["random", "oracle"] and ds.meta["shares"] == [0.5, 0.5]
    lengths = ds["episode_length"]
    assert ds.num_transitions == lengths.sum() and ds["obs_grid"].shape[0] == lengths.sum() + 40
    ends = np.cumsum(lengths) - 1
    done = ds["terminated"] | ds["truncated"]
    assert done[ends].all() and done.sum() == 40  # exactly one end per episode, at its end
    success = ds["terminated"][ends] & (ds["reward"][ends] > 0)
    np.testing.assert_array_equal(success, ds["episode_success"])
    np.testing.assert_allclose(np.add.reduceat(ds["reward"], np.r_[0, ends[:-1] + 1]),
                               ds["episode_return"], rtol=1e-6)
    assert ds["episode_success"][ds["episode_policy"] == 1].mean() > 0.9  # the oracle half
    # consecutive observations of an episode differ by at most one step of the agent
    pose = ds["obs_pose"].astype(int)
    i = ds.obs_index
    assert (np.abs(pose[i + 1, :2] - pose[i, :2]).sum(1) <= 1).all()
    back = dsl.load(path, envs.make("DoorKey"))
    for k in dsl.ARRAYS:
        np.testing.assert_array_equal(back[k], ds[k])
    assert back.meta["success_rate"] == ds.meta["success_rate"]


def test_compact_observations_decode_exactly():
    env = envs.make("ColoredDoorKey")
    ts = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(1), 16))
    obs = ts.obs
    step = jax.jit(jax.vmap(env.step))
    for _ in range(5):
        ts = step(ts.state, jax.random.randint(jax.random.key(_), (16,), 0, 7))
    for o in (obs, ts.obs):
        back = dsl.decode_obs(*dsl.encode_obs(o).values())
        jax.tree.map(np.testing.assert_array_equal, back, o)


def test_subsets_are_nested_and_fractions_checked(dataset):
    ds, _ = dataset
    small, large = ds.subset(0.1, seed=7), ds.subset(0.5, seed=7)
    assert (small.num_episodes, large.num_episodes) == (4, 20)
    for k in dsl.ARRAYS:  # the smaller subset is the start of the larger one
        np.testing.assert_array_equal(large[k][: len(small[k])], small[k])
    assert small.meta["episodes"] == 4 and small.meta["subset"]["fraction"] == 0.1
    assert ds.subset(0.1, seed=8)["episode_return"].tolist() != small["episode_return"].tolist()
    assert ds.subset(1.0, seed=0).num_transitions == ds.num_transitions
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(dsl.DatasetError, match="outside"):
            ds.subset(bad)


def test_bad_datasets_are_named(dataset, tmp_path):
    ds, path = dataset
    with pytest.raises(dsl.DatasetError, match="no dataset at"):
        dsl.load(tmp_path / "missing.npz")
    raw = bytearray(path.read_bytes())
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(dsl.DatasetError, match="corrupt"):
        dsl.load(tmp_path / "cut.npz")
    mid = len(raw) // 2
    raw[mid: mid + 64] = bytes(64)
    (tmp_path / "flip.npz").write_bytes(raw)
    with pytest.raises(dsl.DatasetError, match="corrupt"):
        dsl.load(tmp_path / "flip.npz")
    with pytest.raises(dsl.DatasetError, match="'DoorKey' episodes, not 'LavaDoorKey'"):
        dsl.load(path, envs.make("LavaDoorKey"))
    with pytest.raises(dsl.DatasetError, match="max_steps=150 there, 100 here"):
        dsl.load(path, envs.make("DoorKey", max_steps=100))
    with pytest.raises(ConfigError, match="at least 1"):
        collect("DoorKey", "random", 0)
    with pytest.raises(ConfigError, match="epsilon"):
        policies.parse("oracle@2")
    empty = dsl.Dataset({k: v[:0] for k, v in ds.arrays.items()}, {**ds.meta, "episodes": 0,
                                                                   "transitions": 0})
    dsl.save(empty, tmp_path / "empty.npz")
    with pytest.raises(dsl.DatasetError, match="empty"):
        dsl.load(tmp_path / "empty.npz")


# ---------------------------------------------------------------------------------------------
# The objectives against hand-computed values
# ---------------------------------------------------------------------------------------------
def test_cql_logsumexp_hand_computed():
    q = jnp.array([[1.0, 3.0, 2.0], [0.5, 0.0, 4.0]])
    p = jnp.array([[0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    key = jax.random.key(0)
    np.testing.assert_allclose(losses.cql_logsumexp(key, q, None, 5),
                               np.log(np.exp(np.asarray(q)).sum(1)), rtol=1e-6)
    # sampled: logsumexp over the k proposals, duplicates counted (row 0: five times action 2)
    got = losses.cql_logsumexp(key, q, jnp.log(p), 5)
    props = np.asarray(propose(key, jnp.log(p), 5))
    want = [np.log(np.exp(np.asarray(q)[i, props[i]]).sum()) for i in range(2)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(got[0], 2.0 + np.log(5.0), rtol=1e-6)
    lp = floored_log(p, 0.1)
    np.testing.assert_allclose(losses.cql_logsumexp(key, q, lp, 5, "exact"),
                               np.log((np.exp(np.asarray(lp + q))).sum(1)), rtol=1e-6)
    # exact at temperature tau: the soft value the exact target bootstraps from (one
    # temperature throughout, issue 27), not logsumexp(log p + Q)
    soft = 0.1 * np.log(np.exp(np.asarray(lp + q / 0.1)).sum(1))
    np.testing.assert_allclose(losses.cql_logsumexp(key, q, lp, 5, "exact", 0.1), soft, rtol=1e-6)
    from jaxrl3m.algos.dqn import DQNConfig, bootstrap
    np.testing.assert_allclose(bootstrap(key, q, lp, DQNConfig(inference="exact", tau=0.1,
                                                                prior_floor=0.1)), soft, rtol=1e-6)


@pytest.mark.parametrize("guided,inference", [(False, "exact"), (True, "exact"),
                                               (True, "sampled")])
def test_cql_loss_is_td_plus_penalty(dataset, guided, inference):
    """The whole CQL, CQL-Prior exact and CQL-Prior sampled (the published numbers') objective
    on a batch against a numpy re-computation."""
    ds, _ = dataset
    c = OfflineConfig(task="DoorKey", inference=inference, prior_floor=0.1, cql_alpha=2.0,
                      gamma=0.9, tau=0.1, k=5, **{k: tuple(v) if k == "hidden" else v
                                                  for k, v in TINY_NET.items()})
    algo = make_offline(c, guided=guided, objective="cql")
    prior = Teacher.create("DoorKey", resolve_prior("oracle", "DoorKey")[0]) if guided else None
    data = offline_data(ds, algo.network, prior, 0.1)
    init = jax.jit(algo.init)
    params, target = init(jax.random.key(0)).params, init(jax.random.key(1)).params
    idx = jnp.arange(0, ds.num_transitions, 7)
    loss, stats = jax.jit(lambda *a: algo.loss(*a, c))(params, target, data, idx,
                                                        jax.random.key(2))
    o = np.asarray(data.obs_index)[np.asarray(idx)]
    obs, nxt = ds.observations(o), ds.observations(o + 1)
    apply = jax.jit(algo.network.apply)
    q = np.asarray(apply(params, obs), np.float64)
    qn = np.asarray(apply(target, nxt), np.float64)
    a = ds["action"][np.asarray(idx)].astype(int)
    r, term = ds["reward"][np.asarray(idx)], ds["terminated"][np.asarray(idx)]
    if guided and inference == "exact":  # one temperature: penalty and target both soft
        log_probs = jax.jit(lambda p, o: p.log_probs(o, 0.1))
        lp = np.asarray(log_probs(prior, obs), np.float64)
        lpn = np.asarray(log_probs(prior, nxt), np.float64)
        boot = 0.1 * np.log(np.exp(lpn + qn / 0.1).sum(1))
        lse = 0.1 * np.log(np.exp(lp + q / 0.1).sum(1))
    elif guided:  # k proposals: the target's max and the penalty's logsumexp over them
        k_boot, k_pen = jax.random.split(jax.random.key(2))
        logp = np.asarray(data.logp)
        rows = np.arange(len(o))
        nb = np.asarray(propose(k_boot, jnp.asarray(logp[o + 1]), 5))
        npen = np.asarray(propose(k_pen, jnp.asarray(logp[o]), 5))
        boot = qn[rows[:, None], nb].max(1)
        lse = np.log(np.exp(q[rows[:, None], npen]).sum(1))
    else:
        boot, lse = qn.max(1), np.log(np.exp(q).sum(1))
    q_a = q[np.arange(len(a)), a]
    y = r + 0.9 * (1 - term) * boot
    want = np.mean(0.5 * (q_a - y) ** 2 + 2.0 * (lse - q_a))
    np.testing.assert_allclose(float(loss), want, rtol=1e-4)
    np.testing.assert_allclose(float(stats["td_loss"]), np.mean(0.5 * (q_a - y) ** 2), rtol=1e-4)


def test_bc_times_prior_only_acts_in_the_prior_support():
    c = OfflineConfig(task="DoorKey", hidden=(16,), window=5)
    algo = make_offline(c, guided=True, objective="bc")
    params = jax.jit(algo.init)(jax.random.key(0)).params
    table = np.zeros_like(resolve_prior("oracle", "DoorKey")[0])
    table[:, 0] = 1.0  # every state: the first skill only
    prior = Teacher.create("DoorKey", table)
    obs = jax.jit(envs.make("DoorKey").reset)(jax.random.key(3)).obs
    obs = jax.tree.map(lambda x: jnp.stack([x] * 64), obs)
    support = np.asarray(jax.jit(lambda p, o: p.probs(o))(prior, obs)) > 0
    pol = algo.policy(greedy=False)
    act = jax.jit(lambda params, prior, obs, key: pol(algo.evaluation_params(params, prior), obs,
                                                      key)[0])
    acts = np.asarray(act(params, prior, obs, jax.random.key(4)))
    assert support[np.arange(64), acts].all()


# ---------------------------------------------------------------------------------------------
# Through the driver: 2 seeds under vmap, resume, evaluation, bad input
# ---------------------------------------------------------------------------------------------
TINY = {**TINY_NET, "batch_size": 16, "gradient_steps": 40, "steps_per_update": 10,
        "log_every": 2, "seeds": 2, "eval_episodes": 0, "eval_every": 0}


def test_cql_prior_two_seeds_and_resume_equals_uninterrupted(dataset, tmp_path):
    _, path = dataset
    over = {**TINY, "dataset": str(path), "fraction": 0.5, "runs_dir": str(tmp_path),
            "name": "full"}
    config, run = runs.load_config("cql-prior", over)
    assert (config.k, config.cql_alpha, config.lr, config.batch_size) == (5, 5.0, 5e-4, 16)
    full, run = runs.create_run(config, run)
    summary = driver.train_run(config, run, full, progress=False)
    rows = curves.read_csv(full / "metrics.csv")
    assert len(rows) == 2 * 4 and all(math.isfinite(r["loss"]) for r in rows)
    assert rows[-1]["env_steps"] == 40 and summary["dataset_episodes"] == 20
    assert [r["loss"] for r in rows if r["seed"] == 0] != [r["loss"] for r in rows
                                                            if r["seed"] == 1]
    resume_equals_uninterrupted(full, ("loss", "q_mean"), stop_after=2)


def test_bc_run_evaluates_on_heldout_layouts(dataset, tmp_path):
    _, path = dataset
    config, run = runs.load_config("bc-prior", {**TINY, "dataset": str(path), "eval_episodes": 8,
                                                "runs_dir": str(tmp_path)})
    s = runs.setup(config, run)
    assert s.algo.eval_env.layouts == "heldout" and s.algo.env.layouts == "train"
    d, run = runs.create_run(config, run)
    summary = driver.train_run(config, run, d, progress=False, prepared=s)
    assert len(summary["eval"]["success"]) == 2 and summary["final_success"] == \
        summary["eval"]["success"] and (d / "learning_curve.png").is_file()
    assert summary["eval"]["layouts"] == "heldout" and summary["eval"]["split"] == "map-v2"
    # A dataset of the older split (which hashed the agent's start) is refused, named.
    ds, _ = dataset
    old = dsl.save(dsl.Dataset(ds.arrays, {**ds.meta, "split": "v1"}), tmp_path / "old.npz")
    config, run = runs.load_config("bc-prior", {**TINY, "dataset": str(old)})
    with pytest.raises(dsl.DatasetError, match="split 'v1'.*collect it again"):
        runs.setup(config, run)


@pytest.mark.parametrize("preset,over,match", [
    ("cql-prior", {}, "learns from a dataset: set dataset="),
    ("cql-prior", {"dataset": "nowhere.npz"}, "no dataset at"),
    ("cql-prior", {"fraction": 1.5, "dataset": "x.npz"}, "'fraction' is 1.5, outside"),
    ("ppo", {"dataset": "x.npz"}, "'dataset' is for the offline"),
    ("cql-prior", {"inference": "exact"}, "'prior_floor'"),
])
def test_offline_bad_input_names_the_problem(preset, over, match):
    with pytest.raises(ConfigError, match=match):
        config, run = runs.load_config(preset, over)
        runs.setup(config, run)


def test_dataset_of_another_task_is_refused(dataset):
    _, path = dataset
    with pytest.raises(ConfigError, match="'DoorKey' episodes, not 'LavaDoorKey'"):
        config, run = runs.load_config("cql", {"task": "LavaDoorKey", "dataset": str(path)})
        runs.setup(config, run)


def test_shuffled_prior_is_wrong_with_the_same_rows():
    from jaxrl3m.teacher.priors import agreement
    from jaxrl3m.teacher.teacher import reachable_states
    oracle, _ = resolve_prior("oracle", "DoorKey")
    wrong, info = resolve_prior("shuffled:oracle", "DoorKey")
    states = list(reachable_states("DoorKey"))
    assert info["prior"] == "shuffled:oracle"
    assert sorted(map(tuple, wrong[states].tolist())) == sorted(map(tuple, oracle[states].tolist()))
    assert agreement(wrong, "DoorKey", tuple(states)) <= 0.1
