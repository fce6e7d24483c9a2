"""The Decision Transformer / LaMo: the decoder's new paths (embeddings, LoRA), what trains, the
windows training and evaluation see, a tiny model through the driver, bad input."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from helpers import resume_equals_uninterrupted
from test_llm import write_tiny_models

from jaxrl3m.algos import Inputs
from jaxrl3m.algos.dt import DTConfig, make_dt
from jaxrl3m.offline.arrays import episode_arrays
from jaxrl3m.collect import collect
from jaxrl3m.core import metrics as curves
from jaxrl3m.runner import driver, runs
from jaxrl3m.core.config import ConfigError
from jaxrl3m.llm.loading import load_model
from jaxrl3m.llm.decoder import Decoder
from jaxrl3m.offline import dataset as dsl

TINY = {"hidden": [16], "window": 5, "context": 4, "batch_size": 8, "gradient_steps": 8,
        "steps_per_update": 2, "warmup_steps": 2, "text_batch": 2, "text_len": 8,
        "lora_rank": 4, "layers": 0}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny Llama (GGUF and safetensors folder) and 20 mixed DoorKey episodes."""
    tmp = tmp_path_factory.mktemp("dt")
    gguf_path, folder, _, _ = write_tiny_models(tmp)
    ds = collect("DoorKey", "random:1,oracle:1", 20, seed=3, batch=20)
    path = dsl.save(ds, tmp / "DoorKey-mix.npz")
    return gguf_path, folder, ds, path


def config(model, **over) -> DTConfig:
    keys = {k: v for k, v in TINY.items()}
    keys["hidden"] = tuple(keys["hidden"])
    return DTConfig(task="DoorKey", model=str(model), **{**keys, **over})


# ---------------------------------------------------------------------------------------------
# The decoder: embeddings in, LoRA adapters
# ---------------------------------------------------------------------------------------------
def test_embeddings_path_equals_token_path(tiny):
    m = load_model(str(tiny[0]))
    tokens = jnp.asarray([[5, 9, 200, 3, 77, 12]])
    dec = Decoder(m.config)
    # jitted (one program per path; op by op, every primitive compiles alone)
    h_tokens, _ = jax.jit(dec.apply)(m.params, tokens)
    emb = m.params["params"]["embed"]["embedding"][tokens]
    from_embeddings = jax.jit(lambda p, e: dec.apply(p, None, embeddings=e))
    h_emb, _ = from_embeddings(m.params, emb)
    np.testing.assert_array_equal(np.asarray(h_tokens), np.asarray(h_emb))
    h_other, _ = from_embeddings(m.params, emb + 0.1)
    assert not np.allclose(h_other, h_tokens)


def test_lora_with_zero_b_equals_the_base_model(tiny):
    m = load_model(str(tiny[0]))
    cfg = dataclasses.replace(m.config, lora_rank=4, lora_targets=("q", "k", "v", "o", "up"))
    tokens = jnp.asarray([[5, 9, 200, 3, 77, 12]])
    fresh = Decoder(cfg).init(jax.random.key(1), tokens)["params"]
    flat = traverse_util.flatten_dict(fresh)
    adapters = {k: v for k, v in flat.items() if k[-1] in ("lora_a", "lora_b")}
    assert {k[-2] for k in adapters} == {"q", "k", "v", "o", "up"}
    assert all(not np.any(v) for k, v in adapters.items() if k[-1] == "lora_b")
    merged = traverse_util.flatten_dict(m.params["params"])
    merged.update(adapters)  # the base's kernels keep their names: they load as they are
    params = {"params": traverse_util.unflatten_dict(merged)}
    base, _ = Decoder(m.config).apply(m.params, tokens)
    adapted, _ = Decoder(cfg).apply(params, tokens)
    np.testing.assert_allclose(np.asarray(adapted), np.asarray(base), atol=1e-6)
    key = ("layers", "attn", "v", "lora_b")
    merged[key] = 0.1 * jnp.ones_like(merged[key])
    moved, _ = Decoder(cfg).apply({"params": traverse_util.unflatten_dict(merged)}, tokens)
    assert not np.allclose(moved, base, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# What trains; windows; the evaluation policy
# ---------------------------------------------------------------------------------------------
def _changed(a, b) -> dict:
    fa, fb = traverse_util.flatten_dict(a), traverse_util.flatten_dict(b)
    return {k: bool(np.any(np.asarray(fa[k]) != np.asarray(fb[k]))) for k in fa}


def test_only_adapters_embeddings_and_head_train(tiny):
    gguf_path, _, ds, _ = tiny
    algo = make_dt(config(gguf_path, lm_coef=0.1))
    frozen = algo.frozen()
    data, _ = algo.prepare(ds)
    state = jax.jit(algo.init)(jax.random.key(0))
    adapters = traverse_util.flatten_dict(state.params["transformer"])
    assert adapters and {k[-1] for k in adapters} == {"lora_a", "lora_b"}
    assert {k[-2] for k in adapters} == {"q", "k", "v"}
    new, m = jax.jit(lambda s, i: algo.update(s, i, 1))(state, Inputs(frozen=frozen, data=data))
    assert np.isfinite(m["loss"]).all() and np.isfinite(m["lm_heldout"]).all()
    changed = _changed(state.params, new.params)
    assert all(v for k, v in changed.items() if k[-1] == "lora_b")  # adapters moved off zero
    for part in ("embed_return", "embed_state", "embed_action", "head_out", "state_encoder"):
        assert any(v for k, v in changed.items() if k[1] == part), part
    # the base weights the model runs with are the frozen ones, untouched
    used = traverse_util.flatten_dict(algo.full_params(new.params, frozen)["params"]["transformer"])
    for k, v in traverse_util.flatten_dict(frozen.transformer).items():
        np.testing.assert_array_equal(np.asarray(used[k]), np.asarray(v))
    assert not jax.tree.leaves(jax.eval_shape(make_dt(config(gguf_path, tuning="frozen")).init,
                                              jax.random.key(0)).params["transformer"])
    # the linear-embedding ablation changes the three token embeddings and nothing else
    shapes = lambda **kw: traverse_util.flatten_dict(jax.tree.map(
        lambda x: x.shape, jax.eval_shape(make_dt(config(gguf_path, **kw)).init,
                                          jax.random.key(0)).params))
    mlp, linear = shapes(), shapes(embedding="linear")
    differ = {k for k in mlp.keys() | linear.keys() if mlp.get(k) != linear.get(k)}
    assert differ and {k[1] for k in differ} == {"embed_return", "embed_state", "embed_action"}
    full = jax.jit(make_dt(config(gguf_path, tuning="full")).init)(jax.random.key(0)).params
    deltas = traverse_util.flatten_dict(full["transformer"])
    assert ("layers", "gate", "kernel") in deltas and not any(np.any(v) for v in deltas.values())


def test_windows_returns_to_go_and_episode_ends(tiny):
    gguf_path, _, ds, _ = tiny
    ep = episode_arrays(ds)
    lengths = ds["episode_length"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for e in (0, 7, 19):
        sl = slice(starts[e], starts[e] + lengths[e])
        rewards = ds["reward"][sl]
        np.testing.assert_allclose(ep["rtg"][sl], np.cumsum(rewards[::-1])[::-1], atol=1e-6)
        assert ep["rtg"][starts[e]] == pytest.approx(ds["episode_return"][e], abs=1e-6)
        assert ep["timestep"][sl].tolist() == list(range(lengths[e]))
        assert set(ep["episode_end"][sl]) == {starts[e] + lengths[e]}
    algo = make_dt(config(gguf_path))
    data, _ = algo.prepare(ds)
    last = int(starts[3] + lengths[3] - 2)  # two steps before episode 3 ends
    rtg, cells, carried, actions, times, valid = algo.windows(data, jnp.asarray([last]))
    assert valid[0].tolist() == [True, True, False, False]
    assert actions[0, :2].tolist() == ds["action"][last:last + 2].tolist()
    assert times[0, :2].tolist() == [lengths[3] - 2, lengths[3] - 1]


def test_evaluation_policy_sees_the_windows_training_sees(tiny):
    """Fed an episode of the dataset (its actions forced), the recurrent policy's logits at each
    step equal the model's on the training window that ends there."""
    gguf_path, _, ds, _ = tiny
    algo = make_dt(config(gguf_path, lm_coef=0.0, context=3))
    frozen = algo.frozen()
    data, _ = algo.prepare(ds)
    params = jax.jit(algo.init)(jax.random.key(0)).params
    params = jax.jit(lambda p: jax.tree.map(
        lambda x: x + 0.05 * jnp.sin(jnp.arange(x.size).reshape(x.shape))
        if x.dtype == jnp.float32 else x, p))(params)  # nonzero adapters too
    e = int(np.argmax(ds["episode_length"]))
    starts = np.concatenate([[0], np.cumsum(ds["episode_length"])[:-1]])
    first, n = int(starts[e]), min(int(ds["episode_length"][e]), 7)
    obs_all = ds.observations(ds.obs_index[first:first + n])
    target = float(ds["episode_return"][e])
    policy = algo.policy(greedy=True)
    pp = (params, frozen, jnp.float32(target))
    memory = policy.initial_memory(pp, jax.tree.map(lambda x: x[:1], obs_all))
    K = algo.config.context
    # jitted, each piece one program (op by op, every primitive compiled alone)
    step, end_step = jax.jit(lambda *a: policy(*a)), jax.jit(policy.end_step)
    apply, windows = jax.jit(algo.apply), jax.jit(algo.windows)
    for t in range(n):
        obs = jax.tree.map(lambda x: x[t:t + 1], obs_all)
        _, _, memory = step(pp, obs, jax.random.key(t), memory)
        got = apply(params, frozen, memory.rtg, memory.cells, memory.carried,
                    memory.action, memory.timestep, memory.valid)[0, -1]
        s = max(0, t - K + 1)
        w = windows(data, jnp.asarray([first + s]))
        want = apply(params, frozen, *w)[0, t - s]
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-5)
        a = int(ds["action"][first + t])
        memory = memory.replace(action=memory.action.at[:, -1].set(a))
        memory = end_step(pp, memory, jnp.asarray([ds["reward"][first + t]]),
                          jnp.asarray([False]))


# ---------------------------------------------------------------------------------------------
# A tiny model through the driver
# ---------------------------------------------------------------------------------------------
def _over(model, path, tmp_path, **extra):
    return {**TINY, "model": str(model), "dataset": str(path), "runs_dir": str(tmp_path),
            "log_every": 2, "seeds": 2, "eval_episodes": 0, "eval_every": 0, **extra}


def test_tiny_lamo_two_seeds_learns_and_resume_equals_uninterrupted(tiny, tmp_path):
    gguf_path, _, ds, path = tiny
    config_, run = runs.load_config("lamo", _over(gguf_path, path, tmp_path, name="full",
                                                  gradient_steps=8))
    assert (config_.lora_alpha, config_.max_grad_norm, config_.weight_decay) == (32.0, 0.25, 1e-5)
    full, run = runs.create_run(config_, run)
    driver.train_run(config_, run, full, progress=False)
    rows = curves.read_csv(full / "metrics.csv")
    assert len(rows) == 2 * 4 and all(math.isfinite(r["loss"]) for r in rows)
    assert all(math.isfinite(r["lm_heldout"]) for r in rows)
    assert [r["loss"] for r in rows if r["seed"] == 0] != [r["loss"] for r in rows
                                                            if r["seed"] == 1]
    resume_equals_uninterrupted(full, ("loss", "accuracy"), stop_after=2)
    # the checkpoint holds what trains, not the base model
    algo = make_dt(config(gguf_path))
    state = runs.restore_run(full)[3]
    assert not any("kernel" == k[-1] and k[1] == "transformer"
                   for k in traverse_util.flatten_dict(state.params))
    del algo
    # and it learns: the imitation loss falls on the teacher's episodes
    algo = make_dt(config(gguf_path, gradient_steps=60, steps_per_update=20, lm_coef=0.0,
                          lr=3e-3, lora_dropout=0.0, dropout=0.0))
    data, _ = algo.prepare(ds.episodes(np.where(ds["episode_policy"] == 1)[0]))
    _, m = jax.jit(jax.vmap(algo.train, in_axes=(0, None)))(
        jax.random.split(jax.random.key(0), 2), Inputs(frozen=algo.frozen(), data=data))
    assert (m["dt_loss"][:, -1] < m["dt_loss"][:, 0] - 0.3).all(), m["dt_loss"]


def test_tiny_dt_from_scratch_evaluates_on_heldout_layouts(tiny, tmp_path):
    _, _, _, path = tiny
    config_, run = runs.load_config("dt", {**_over("unused", path, tmp_path), "seeds": 1,
                                           "eval_episodes": 4, "scratch_dim": 16,
                                           "scratch_layers": 1, "scratch_heads": 2})
    s = runs.setup(config_, run)
    assert s.algo.eval_env.layouts == "heldout" and s.info["target_return"] > 0
    d, run = runs.create_run(config_, run)
    summary = driver.train_run(config_, run, d, progress=False, prepared=s)
    assert len(summary["eval"]["success"]) == 1 and summary["final_success"] == \
        summary["eval"]["success"] and (d / "learning_curve.png").is_file()
    from jaxrl3m.evaluate import evaluate_run  # the command, from the run folder alone
    out = evaluate_run(d, episodes=4, greedy=False)
    assert out["update"] == 4 and out["success"] == summary["eval"]["success"]


def test_a_checkpoint_refuses_another_base_model(tiny, tmp_path):
    _, folder, _, path = tiny
    model = tmp_path / "model"
    shutil.copytree(folder, model)
    # the two-seed run of the test above (the same shapes from the safetensors copy): its
    # compiled programs serve
    config_, run = runs.load_config("lamo", _over(model, path, tmp_path))
    d, run = runs.create_run(config_, run)
    driver.train_run(config_, run, d, progress=False, stop_after=2)
    from safetensors.numpy import load_file, save_file
    w = load_file(str(model / "model.safetensors"))
    w["model.layers.0.self_attn.q_proj.weight"] = w["model.layers.0.self_attn.q_proj.weight"] * 2
    save_file(w, str(model / "model.safetensors"))
    # The run's record names the changed input; allowed, the checkpoint itself still refuses.
    with pytest.raises(ConfigError, match="model: .* is not the file the run started with"):
        driver.train_run(config_, run, d, progress=False, resume=True)
    with pytest.raises(ConfigError, match="trained on another base model"):
        driver.train_run(config_, run, d, progress=False, resume=True, allow_changed=("model",))


@pytest.mark.parametrize("over,match", [
    ({"context": 200}, "longer than an episode"),
    ({"context": 100}, "more than tiny-llama was trained for"),
    ({"model": "no/such/model.gguf"}, "config key 'model'"),
    ({"transformer": "scratch"}, "set lm_coef=0"),
    ({"tuning": "some"}, "'tuning'"),
    ({"lora_targets": "q,x"}, "'lora_targets'"),
    ({"layers": 9}, "has 2 layers, 9 asked for"),
])
def test_bad_input_names_the_problem(tiny, tmp_path, over, match):
    gguf_path, _, _, path = tiny
    with pytest.raises(ConfigError, match=match):
        c, run = runs.load_config("lamo", {**_over(gguf_path, path, tmp_path), **over})
        runs.setup(c, run)


def test_dataset_of_another_task_is_refused(tiny, tmp_path):
    gguf_path, _, _, path = tiny
    with pytest.raises(ConfigError, match="'DoorKey' episodes, not 'LavaDoorKey'"):
        c, run = runs.load_config("lamo", {**_over(gguf_path, path, tmp_path),
                                           "task": "LavaDoorKey"})
        runs.setup(c, run)


def test_corpus_holds_out_whole_topics(tiny):
    from jaxrl3m.llm import corpus
    m = load_model(str(tiny[0]))
    train, held, info = corpus.token_rows(m.tokenizer, 16)
    assert train.shape[1] == held.shape[1] == 16 and info["topics"] == len(corpus.topics())
    assert 0.05 < len(held) / (len(train) + len(held)) < 0.25
    assert json.dumps(info)
