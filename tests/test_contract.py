"""The algorithm contract (`jaxrl3m.algos.base.Algorithm`), checked for every registered
algorithm: its flags, `init` and `update` over 2 seeds (shapes, the required metrics, finite
losses, `env_steps` counting what `steps_per_update` says), static keys refused by `hp`, and a
checkpoint round trip; `train` (the base class's, one for all) equal to `init` then `update`.
Each algorithm's own behaviour (losses, priors, evaluation and resume through the driver) has
its own file; one compiled update per algorithm here."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl3m import algos
from jaxrl3m.algos.base import METRICS_REQUIRED
from jaxrl3m.collect import collect
from jaxrl3m.core.checkpoint import Checkpoints
from jaxrl3m.core.config import ConfigError
from jaxrl3m.core.parallel import vmap_seeds
from jaxrl3m.teacher.options import oracle_table
from jaxrl3m.teacher.teacher import Teacher

NET = {"hidden": (16,), "window": 5}
CONFIGS = {  # every registered algorithm, tiny, and whether it is built guided (PPO's is the
    # README's example, so that its `train` program is compiled once per run of the suite)
    "ppo": (dict(num_envs=4, num_steps=4, num_minibatches=2, update_epochs=1,
                 total_steps=32, kl_coef=1.0), True),
    "dqn": (dict(num_envs=4, num_steps=4, num_minibatches=2, update_epochs=1,
                 total_steps=32), True),
    "cql": (dict(batch_size=8, gradient_steps=6, steps_per_update=3), True),
    "bc": (dict(batch_size=8, gradient_steps=6, steps_per_update=3), False),
    "dt": (dict(transformer="scratch", tuning="full", lm_coef=0.0, scratch_dim=16,
                scratch_layers=1, scratch_heads=2, context=2, batch_size=4, gradient_steps=6,
                steps_per_update=3, target_return=0.5), False),
}


def test_every_registered_algorithm_is_covered():
    assert set(CONFIGS) == set(algos.REGISTRY)


@pytest.fixture(scope="module")
def dataset():
    # test_dt's dataset: the same collection program (compiled once per run of the suite)
    return collect("DoorKey", "random:1,oracle:1", 20, seed=3, batch=20)


def _built(name, dataset):
    over, guided = CONFIGS[name]
    spec = algos.get(name)
    algo = algos.make(name, spec.config(task="DoorKey", **NET, **over), guided=guided)
    teacher = Teacher.create("DoorKey", oracle_table("DoorKey")) if guided else None
    data = algo.prepare(dataset, teacher)[0] if algo.offline else None
    return algo, algos.Inputs(teacher=teacher, data=data, frozen=algo.frozen())


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_contract(name, dataset, tmp_path):
    algo, inputs = _built(name, dataset)
    assert isinstance(algo, algos.Algorithm) and set(METRICS_REQUIRED) <= set(algo.metrics)
    assert (algo.num_envs is None) == algo.offline
    c = algo.config
    assert algo.steps_per_update == (c.steps_per_update if algo.offline
                                     else c.num_envs * c.num_steps)
    # 2 seeds, 2 updates: every metric per update, losses finite, steps counted
    keys = jax.random.split(jax.random.key(0), 2)
    state = jax.jit(vmap_seeds(algo.init))(keys)
    chunk = jax.jit(vmap_seeds(lambda s, i: algo.update(s, i, 2), in_axes=(0, None)))
    new, m = chunk(state, inputs)
    assert set(m) == set(algo.metrics) and all(v.shape == (2, 2) for v in m.values())
    assert np.isfinite(m["loss"]).all() and not np.array_equal(m["loss"][0], m["loss"][1])
    np.testing.assert_array_equal(m["env_steps"][0], [algo.steps_per_update,
                                                      2 * algo.steps_per_update])
    assert np.asarray(new.update).tolist() == [2, 2]
    # a static key is refused, a traced one is taken
    static = next(f for f in ("num_envs", "batch_size") if hasattr(c, f))
    with pytest.raises(ConfigError, match=f"'{static}' is static"):
        algo.hp(c.replace(**{static: getattr(c, static) * 2}))
    assert float(algo.hp(c.replace(lr=0.5)).lr) == 0.5
    # a checkpoint restores the state as it was
    ckpt = Checkpoints(tmp_path / "checkpoints")
    ckpt.save(2, new)
    back = ckpt.restore(2, state)
    ckpt.close()
    assert jax.tree.structure(back) == jax.tree.structure(new)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(back)):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)


def test_train_is_init_then_every_update(dataset):
    algo, inputs = _built("ppo", dataset)
    assert algo.config.num_updates == 2
    keys = jax.random.split(jax.random.key(0), 2)
    _, m = jax.jit(vmap_seeds(algo.train, in_axes=(0, None)))(keys, inputs)
    state = jax.jit(vmap_seeds(algo.init))(keys)
    _, m2 = jax.jit(vmap_seeds(lambda s, i: algo.update(s, i, 2), in_axes=(0, None)))(state, inputs)
    # one program against two: XLA fuses differently, so equal up to float rounding
    np.testing.assert_allclose(m["loss"], m2["loss"], rtol=1e-5)
    np.testing.assert_array_equal(m["env_steps"], m2["env_steps"])


def test_inputs_are_a_record_not_a_tuple():
    algo = algos.make("ppo", algos.PPOConfig(task="DoorKey", **NET), guided=False)
    assert algos.as_inputs(None) == algos.Inputs()
    with pytest.raises(ConfigError, match="Inputs"):
        jax.eval_shape(lambda: algo.update(algo.init(jax.random.key(0)), (None, None)))
    with pytest.raises(ConfigError, match="not a registered algorithm.*ppo"):
        algos.make("ppp")


def test_packages_export_their_public_names():
    import jaxrl3m
    import jaxrl3m.llm
    import jaxrl3m.teacher
    for pkg in (jaxrl3m, jaxrl3m.llm, jaxrl3m.teacher, algos):
        for name in pkg.__all__:
            assert getattr(pkg, name) is not None, (pkg.__name__, name)
    assert jaxrl3m.Teacher is Teacher and jaxrl3m.make_algo is algos.make
    assert jaxrl3m.make_env("DoorKey").num_actions == 7
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        jaxrl3m.nope  # noqa: B018
